"""shared.budget: a spend counter seeded from the usage records counts every job of the period once, wherever
its record is (the database, the usage stream not yet written, both for a moment, or a settlement during the
seed), and a reset makes the next seed start from the records again. Real Redis; PostgreSQL and SQLite."""

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.budget import reset_budget_counters, seed_spend
from shared.db.engine import create_session_factory
from shared.db.usage import insert_usage
from shared.keys import USAGE_STREAM, spend_key
from shared.limits import (
    Budget,
    KeyLimits,
    LimitRequest,
    admit,
    budget_period,
    open_seed,
    queue_settlement,
)
from tests.shared.db_support import BACKENDS, migrated_engine, usage_row

REDIS_URL = "redis://127.0.0.1:6379/5"


@pytest.fixture
async def client() -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(REDIS_URL)
    await connection.delete(USAGE_STREAM)
    yield connection
    await connection.delete(USAGE_STREAM)
    await connection.aclose()


@pytest.fixture(params=BACKENDS)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine(request.param, tmp_path) as migrated:
        yield migrated


async def _streamed(client: redis.asyncio.Redis, request_id: str, tenant: str, cost_usd: float,
                    created: datetime, key_id: str | None = None) -> None:
    row = {"request_id": request_id, "tenant_id": tenant, "cost_usd": cost_usd, "created_at": created.timestamp(),
           "key_id": key_id}
    await client.xadd(USAGE_STREAM, {"row": json.dumps(row)})


async def _spent(client: redis.asyncio.Redis, tenant: str, now: datetime) -> int:
    return int(await client.hget(spend_key(tenant, budget_period("monthly", now)[0]), "spent"))


async def test_seed_counts_database_and_unwritten_records_of_the_period_once(
        client: redis.asyncio.Redis, engine: AsyncEngine) -> None:
    tenant, now = f"ten_{uuid.uuid4().hex[:8]}", datetime.now(UTC)
    last_month = now.replace(day=1) - timedelta(days=2)
    await insert_usage(engine, [
        usage_row("in-db", tenant_id=tenant, cost_usd=0.25, created_at=now),
        usage_row("in-both", tenant_id=tenant, cost_usd=0.125, created_at=now),  # written, not yet acknowledged
        usage_row("last-month", tenant_id=tenant, cost_usd=5.0, created_at=last_month),
        usage_row("other-tenant", tenant_id="ten_other", cost_usd=7.0, created_at=now),
    ])
    await _streamed(client, "in-both", tenant, 0.125, now)
    await _streamed(client, "unwritten", tenant, 0.0625, now)
    await _streamed(client, "stream-last-month", tenant, 3.0, last_month)
    await seed_spend(client, create_session_factory(engine), tenant, "monthly", now)
    assert await _spent(client, tenant, now) == 437_500


async def test_seed_does_not_count_twice_a_job_settled_while_it_ran(
        client: redis.asyncio.Redis, engine: AsyncEngine) -> None:
    tenant, now = f"ten_{uuid.uuid4().hex[:8]}", datetime.now(UTC)
    await insert_usage(engine, [usage_row("before", tenant_id=tenant, cost_usd=0.25, created_at=now)])
    await open_seed(client, tenant, "monthly", now)  # a seeder that has not finished (or died)
    request = LimitRequest(tenant_id=tenant, job_id="during", rpm_limit=0, tpm_limit=0, tokens=0,
                           concurrency_limit=0, concurrency_expiry_s=60, budget=None, reserve_usd=0.5)
    admission = (await admit(client, request, now)).admission
    async with client.pipeline(transaction=True) as pipe:
        queue_settlement(pipe, admission, "during", tokens_used=10, cost_usd=0.5, now=now)
        await pipe.execute()
    # Its record goes through the stream into the database before the seed reads either.
    await _streamed(client, "during", tenant, 0.5, now)
    await insert_usage(engine, [usage_row("during", tenant_id=tenant, cost_usd=0.5, created_at=now)])
    await client.delete(USAGE_STREAM)
    await seed_spend(client, create_session_factory(engine), tenant, "monthly", now)
    assert await _spent(client, tenant, now) == 750_000
    budget = Budget(1.0, "monthly")
    refused = await admit(client, LimitRequest(**{**request.__dict__, "job_id": "next", "budget": budget,
                                                  "reserve_usd": 0.3}), now)
    assert refused.reason == "budget" and refused.budget_used_micros == 750_000


async def test_reset_makes_the_next_seed_recount_the_records(client: redis.asyncio.Redis, engine: AsyncEngine) -> None:
    tenant, now = f"ten_{uuid.uuid4().hex[:8]}", datetime.now(UTC)
    sessions = create_session_factory(engine)
    await seed_spend(client, sessions, tenant, "monthly", now)
    assert await _spent(client, tenant, now) == 0
    await insert_usage(engine, [usage_row("written-later", tenant_id=tenant, cost_usd=1.5, created_at=now)])
    await seed_spend(client, sessions, tenant, "monthly", now)
    assert await _spent(client, tenant, now) == 0  # seeded already: the settlement would have added it
    await reset_budget_counters(client, tenant, now)
    await seed_spend(client, sessions, tenant, "monthly", now)
    assert await _spent(client, tenant, now) == 1_500_000


async def test_seed_reads_a_long_usage_stream_in_pages(client: redis.asyncio.Redis, engine: AsyncEngine) -> None:
    tenant, now = f"ten_{uuid.uuid4().hex[:8]}", datetime.now(UTC)
    started = time.monotonic()
    async with client.pipeline(transaction=False) as pipe:
        for index in range(2500):
            row = {"request_id": f"r{index}", "tenant_id": tenant if index % 2 else "ten_other",
                   "cost_usd": 0.001, "created_at": now.timestamp()}
            pipe.xadd(USAGE_STREAM, {"row": json.dumps(row)})
        await pipe.execute()
    await seed_spend(client, create_session_factory(engine), tenant, "monthly", now)
    assert await _spent(client, tenant, now) == 1250 * 1000
    assert time.monotonic() - started < 10


async def test_key_seed_counts_only_that_keys_records_in_database_and_stream_once(
        client: redis.asyncio.Redis, engine: AsyncEngine) -> None:
    tenant, now = f"ten_{uuid.uuid4().hex[:8]}", datetime.now(UTC)
    key, other = f"key_{uuid.uuid4().hex[:8]}", f"key_{uuid.uuid4().hex[:8]}"
    last_month = now.replace(day=1) - timedelta(days=2)
    await insert_usage(engine, [
        usage_row("k-db", tenant_id=tenant, key_id=key, cost_usd=0.25, created_at=now),
        usage_row("k-both", tenant_id=tenant, key_id=key, cost_usd=0.125, created_at=now),
        usage_row("k-last-month", tenant_id=tenant, key_id=key, cost_usd=5.0, created_at=last_month),
        usage_row("other-key", tenant_id=tenant, key_id=other, cost_usd=7.0, created_at=now),
        usage_row("no-key", tenant_id=tenant, cost_usd=11.0, created_at=now),
        usage_row("other-tenant", tenant_id="ten_other", key_id=key, cost_usd=13.0, created_at=now),
    ])
    await _streamed(client, "k-both", tenant, 0.125, now, key)
    await _streamed(client, "k-unwritten", tenant, 0.0625, now, key)
    await _streamed(client, "other-unwritten", tenant, 2.0, now, other)
    await _streamed(client, "no-key-unwritten", tenant, 4.0, now)
    await _streamed(client, "k-stream-last-month", tenant, 3.0, last_month, key)
    sessions = create_session_factory(engine)
    await seed_spend(client, sessions, tenant, "monthly", now, key_id=key)
    assert await _spent(client, key, now) == 437_500
    assert await client.exists(spend_key(tenant, budget_period("monthly", now)[0])) == 0  # the key's seed only
    await seed_spend(client, sessions, tenant, "monthly", now)  # the tenant's counts every key's and none
    assert await _spent(client, tenant, now) == 437_500 + 7_000_000 + 11_000_000 + 2_000_000 + 4_000_000


async def test_key_seed_does_not_count_twice_a_job_of_the_key_settled_while_it_ran(
        client: redis.asyncio.Redis, engine: AsyncEngine) -> None:
    tenant, now = f"ten_{uuid.uuid4().hex[:8]}", datetime.now(UTC)
    key = f"key_{uuid.uuid4().hex[:8]}"
    await insert_usage(engine, [usage_row("before", tenant_id=tenant, key_id=key, cost_usd=0.25, created_at=now)])
    await open_seed(client, key, "monthly", now)  # a seeder of the key's counter that has not finished
    request = LimitRequest(tenant_id=tenant, job_id="during", rpm_limit=0, tpm_limit=0, tokens=0,
                           concurrency_limit=0, concurrency_expiry_s=60, budget=None, reserve_usd=0.5,
                           key=KeyLimits(key_id=key, rpm_limit=1000))
    admission = (await admit(client, request, now)).admission
    assert admission is not None and admission.key_id == key
    async with client.pipeline(transaction=True) as pipe:
        queue_settlement(pipe, admission, "during", tokens_used=10, cost_usd=0.5, now=now)
        await pipe.execute()
    assert await client.hget(spend_key(key, budget_period("monthly", now)[0]), "late:during") == b"1"
    await _streamed(client, "during", tenant, 0.5, now, key)
    await insert_usage(engine, [usage_row("during", tenant_id=tenant, key_id=key, cost_usd=0.5, created_at=now)])
    await client.delete(USAGE_STREAM)
    await seed_spend(client, create_session_factory(engine), tenant, "monthly", now, key_id=key)
    assert await _spent(client, key, now) == 750_000
    key_budget = KeyLimits(key_id=key, budget=Budget(1.0, "monthly"))
    refused = await admit(client, LimitRequest(**{**request.__dict__, "job_id": "next", "key": key_budget,
                                                  "reserve_usd": 0.3}), now)
    assert refused.reason == "key_budget" and refused.budget_used_micros == 750_000
