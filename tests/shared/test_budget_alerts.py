"""Budget alerts' threshold check on real Redis (database 3): thresholds are parsed strictly; a threshold the
spend reaches queues one signed-webhook delivery with its body, once per period, even when fifty settlements
on separate connections race past it; a counter still being seeded sends nothing; a change of budget starts
the period's thresholds afresh; the mirror follows the database (SQLite here)."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio

from shared.budget import seed_spend
from shared.budget_alert_check import check_budget_alerts
from shared.budget_alerts import (
    create_budget_alert,
    delete_budget_alert,
    mirror_budget_alerts,
    parse_thresholds,
)
from shared.db.engine import create_engine, create_session_factory
from shared.db.migrate import migrate
from shared.errors import InvalidRequest, NotFound
from shared.keys import WEBHOOK_STREAM, budget_alerts_key, spend_key, webhook_event_key
from shared.limits import budget_period, seed_budget
from shared.tenants import TenantLimits, create_tenant, update_tenant

REDIS_URL = "redis://127.0.0.1:6379/3"
NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
PERIOD_ID = budget_period("monthly", NOW)[0]


@pytest.fixture
async def raw() -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def tenant(raw: redis.asyncio.Redis, tmp_path: Path) -> AsyncIterator[tuple[str, object]]:
    """A tenant with a $1 monthly budget and one alert at 50/80/100 %, mirrored; and its session factory."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    await migrate(url)
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    async with sessions() as session:
        row, _ = await create_tenant(session, "alerts", limits=TenantLimits(budget_usd=1.0))
        await create_budget_alert(session, row.id, "http://127.0.0.1:9/hook", [100, 50, 80], allow_private=True)
        await session.commit()
        await mirror_budget_alerts(raw, session, row.id, NOW)
    yield row.id, sessions
    await engine.dispose()


async def deliveries(raw: redis.asyncio.Redis) -> list[str]:
    return [fields[b"job_id"].decode() for _, fields in await raw.xrange(WEBHOOK_STREAM)]


@pytest.mark.parametrize("values", [[], [0], [1001], [50, 50], ["50"], [True], list(range(1, 12)), "50"])
def test_parse_thresholds_refuses_bad_values(values: object) -> None:
    with pytest.raises(InvalidRequest):
        parse_thresholds(values)


def test_parse_thresholds_sorts() -> None:
    assert parse_thresholds([100, 50, 80]) == [50, 80, 100]


async def test_each_threshold_is_sent_once_under_concurrent_settlements(
        raw: redis.asyncio.Redis, tenant: tuple[str, object]) -> None:
    tenant_id, _ = tenant
    await seed_budget(raw, tenant_id, "monthly", NOW, 0.0)
    clients = [redis.asyncio.Redis.from_url(REDIS_URL) for _ in range(50)]

    async def settle(client: redis.asyncio.Redis) -> list[str]:
        await client.hincrby(spend_key(tenant_id, PERIOD_ID), "spent", 25_000)  # $0.025 a job, 50 jobs: $1.25
        return await check_budget_alerts(client, tenant_id, NOW)

    try:
        sent = [event for result in await asyncio.gather(*(settle(c) for c in clients)) for event in result]
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    assert sorted(sent) == sorted(await deliveries(raw)) and len(sent) == 3
    assert {event.rsplit("_", 1)[1] for event in sent} == {"50", "80", "100"}
    for event in sent:
        body = json.loads(await raw.get(webhook_event_key(event)))
        assert body["id"] == event and body["object"] == "budget.alert" and body["tenant_id"] == tenant_id
        assert body["period"] == "monthly" and body["period_id"] == PERIOD_ID and body["budget_usd"] == 1.0
        assert body["spent_usd"] >= body["threshold_pct"] / 100 * body["budget_usd"]
    assert await check_budget_alerts(raw, tenant_id, NOW) == []  # nothing new to send in this period


async def test_nothing_is_sent_below_a_threshold_or_while_seeding(raw: redis.asyncio.Redis,
                                                                  tenant: tuple[str, object]) -> None:
    tenant_id, _ = tenant
    assert await check_budget_alerts(raw, tenant_id, NOW) == []  # no counter yet
    await raw.hset(spend_key(tenant_id, PERIOD_ID), mapping={"spent": 900_000, "seeding": "token"})
    assert await check_budget_alerts(raw, tenant_id, NOW) == []  # incomplete counter
    await raw.hdel(spend_key(tenant_id, PERIOD_ID), "seeding")
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 490_000)
    assert await check_budget_alerts(raw, tenant_id, NOW) == []
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 850_000)
    assert [e.rsplit("_", 1)[1] for e in await check_budget_alerts(raw, tenant_id, NOW)] == ["50", "80"]


async def test_budget_change_starts_thresholds_afresh_and_mirror_follows_the_database(
        raw: redis.asyncio.Redis, tenant: tuple[str, object]) -> None:
    tenant_id, sessions = tenant
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 600_000)
    assert len(await check_budget_alerts(raw, tenant_id, NOW)) == 1  # 50 %
    async with sessions() as session:  # type: ignore[operator]
        await update_tenant(session, tenant_id, TenantLimits(budget_usd=0.7))
        await mirror_budget_alerts(raw, session, tenant_id, NOW, budget_changed=True)
    assert [e.rsplit("_", 1)[1] for e in await check_budget_alerts(raw, tenant_id, NOW)] == ["50", "80"]
    async with sessions() as session:  # type: ignore[operator]
        [alert_id] = [k.decode().split(":", 1)[1] for k in await raw.hkeys(budget_alerts_key(tenant_id))
                      if k.startswith(b"alert:")]
        await delete_budget_alert(session, tenant_id, alert_id)
        await session.commit()
        with pytest.raises(NotFound):
            await delete_budget_alert(session, tenant_id, alert_id)
        await mirror_budget_alerts(raw, session, tenant_id, NOW)
    assert not await raw.exists(budget_alerts_key(tenant_id))
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 2_000_000)
    assert await check_budget_alerts(raw, tenant_id, NOW) == []


async def test_a_seed_rebuilds_a_lost_mirror(raw: redis.asyncio.Redis, tenant: tuple[str, object]) -> None:
    tenant_id, sessions = tenant
    await raw.flushdb()  # Redis lost its data: counters and the mirror are gone
    await seed_spend(raw, sessions, tenant_id, "monthly", NOW)  # type: ignore[arg-type]
    mirror = await raw.hgetall(budget_alerts_key(tenant_id))
    assert mirror[b"budget_micros"] == b"1000000" and mirror[b"period"] == b"monthly"
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 500_000)
    assert len(await check_budget_alerts(raw, tenant_id, NOW)) == 1
