"""An API key's own limits and budget inside its tenant's (issue 15), in the one admission script: a request
must fit both; a key's refusal leaves the tenant's other keys working; settlement frees the key's slots and
holds and adds the cost to the key's spend. Runs the real Lua scripts on fakeredis (unit level; the e2e tests
drive the same on real Redis). And the auth cache refusing a snapshot loaded before an invalidation."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import fakeredis
import pytest
import redis.asyncio

from shared.keys import budget_holds_sum_key, concurrency_key, spend_key
from shared.limits import (
    Admission,
    Budget,
    KeyLimits,
    LimitRequest,
    admit,
    budget_period,
    queue_settlement,
    seed_budget,
    settlement_call,
)
from shared.tenant_cache import TenantCache, TenantSnapshot

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
async def client() -> AsyncIterator[redis.asyncio.Redis]:
    connection = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    yield connection
    await connection.aclose()


def _request(key: KeyLimits | None, **overrides: object) -> LimitRequest:
    values: dict[str, object] = {
        "tenant_id": "ten_a", "job_id": f"job_{uuid.uuid4().hex}", "rpm_limit": 0, "tpm_limit": 0, "tokens": 10,
        "concurrency_limit": 0, "concurrency_expiry_s": 60, "budget": None, "reserve_usd": 0.0, "key": key,
    }
    values.update(overrides)
    return LimitRequest(**values)  # type: ignore[arg-type]


async def test_key_rpm_refuses_only_that_key(client: redis.asyncio.Redis) -> None:
    limited = KeyLimits(key_id="key_ci", rpm_limit=2)
    other = KeyLimits(key_id="key_web", rpm_limit=100)
    results = [await admit(client, _request(limited, rpm_limit=10), NOW) for _ in range(3)]
    assert [result.allowed for result in results] == [True, True, False]
    assert results[2].reason == "key_requests" and results[2].retry_after_s > 0
    assert (await admit(client, _request(other, rpm_limit=10), NOW)).allowed
    assert (await admit(client, _request(None, rpm_limit=10), NOW)).allowed


async def test_tenant_rpm_still_binds_a_key_with_a_higher_limit(client: redis.asyncio.Redis) -> None:
    key = KeyLimits(key_id="key_ci", rpm_limit=100)
    results = [await admit(client, _request(key, rpm_limit=2), NOW) for _ in range(3)]
    assert [(result.allowed, result.reason) for result in results][2] == (False, "requests")


async def test_key_refusal_moves_no_counter(client: redis.asyncio.Redis) -> None:
    key = KeyLimits(key_id="key_ci", concurrency_limit=1)
    assert (await admit(client, _request(key, concurrency_limit=5), NOW)).allowed
    refused = await admit(client, _request(key, concurrency_limit=5), NOW)
    assert refused.reason == "key_concurrency"
    assert await client.zcard(concurrency_key("ten_a")) == 1  # the refused request took no tenant slot


async def test_key_tokens_too_large_and_per_minute(client: redis.asyncio.Redis) -> None:
    key = KeyLimits(key_id="key_ci", tpm_limit=25)
    assert (await admit(client, _request(key, tokens=30), NOW)).reason == "key_tokens_too_large"
    assert (await admit(client, _request(key, tokens=20), NOW)).allowed
    assert (await admit(client, _request(key, tokens=20), NOW)).reason == "key_tokens"


async def test_key_budget_exhausted_leaves_the_tenants_other_keys_working(client: redis.asyncio.Redis) -> None:
    period = "monthly"
    key = KeyLimits(key_id="key_ci", budget=Budget(1.0, period))
    unseeded = await admit(client, _request(key, reserve_usd=0.6), NOW)
    assert unseeded.key_budget_unseeded and not unseeded.allowed
    await seed_budget(client, "key_ci", period, NOW, 0.0)
    await seed_budget(client, "ten_a", period, NOW, 0.0)
    first = await admit(client, _request(key, reserve_usd=0.6, budget=Budget(100.0, period)), NOW)
    assert first.allowed is True
    second = await admit(client, _request(key, reserve_usd=0.6, budget=Budget(100.0, period)), NOW)
    assert (second.allowed, second.reason, second.budget_used_micros) == (False, "key_budget", 600_000)
    web = await admit(client, _request(KeyLimits(key_id="key_web", rpm_limit=5), reserve_usd=0.6,
                                       budget=Budget(100.0, period)), NOW)
    assert web.allowed is True


async def test_settlement_frees_the_keys_hold_and_counts_its_spend(client: redis.asyncio.Redis) -> None:
    key = KeyLimits(key_id="key_ci", concurrency_limit=1, budget=Budget(1.0, "daily"))
    await seed_budget(client, "key_ci", "daily", NOW, 0.0)
    request = _request(key, reserve_usd=0.5)
    result = await admit(client, request, NOW)
    assert result.allowed and result.admission.key_id == "key_ci"
    assert int(await client.get(budget_holds_sum_key("key_ci"))) == 500_000
    async with client.pipeline(transaction=True) as pipe:
        queue_settlement(pipe, result.admission, request.job_id, tokens_used=10, cost_usd=0.2, now=NOW)
        await pipe.execute()
    assert int(await client.get(budget_holds_sum_key("key_ci"))) == 0
    assert await client.zcard(concurrency_key("key_ci")) == 0
    day = spend_key("key_ci", budget_period("daily", NOW)[0])
    assert int(await client.hget(day, "spent")) == 200_000
    assert (await admit(client, _request(key, reserve_usd=0.5), NOW)).allowed


def test_settlement_of_an_older_admission_without_a_key_touches_only_the_tenant() -> None:
    keys, args = settlement_call(Admission(tenant_id="ten_a"), "job_1", tokens_used=1, cost_usd=0.0, now=NOW)
    assert len(keys) == 18 and keys[9:] == keys[:9] and args[5:] == [0, 0]


async def test_tenant_cache_does_not_store_a_snapshot_loaded_before_an_invalidation(
        client: redis.asyncio.Redis) -> None:
    cache = TenantCache(client, ttl_s=60)
    snapshot = TenantSnapshot(id="ten_a", name="a", key_id="key_1")
    before = await cache.generation()
    await cache.invalidate_tenant("ten_a")  # a revocation commits while the lookup was running
    assert await cache.put("hash", snapshot, before) is False
    assert await cache.get("hash") is None
    assert await cache.put("hash", snapshot, await cache.generation()) is True
    assert await cache.get("hash") == snapshot
    await cache.invalidate_tenant("ten_a")
    assert await cache.get("hash") is None
