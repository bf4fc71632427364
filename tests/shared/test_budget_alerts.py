"""Budget alerts' threshold check on real Redis (database 3): thresholds are parsed strictly; a threshold the
spend reaches queues one signed-webhook delivery with its body, once per period, even when fifty settlements
on separate connections race past it; a counter still being seeded sends nothing; a change of budget starts
the period's thresholds afresh; the mirror follows the database (SQLite here). A key's alert watches the key's
own budget and spend only. Thresholds sent are recorded in the database, and a fired set Redis lost is
restored from that record: nothing goes twice."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.api_keys import KeyCreate, KeyScopes, create_key, revoke_key, update_key
from shared.budget import seed_spend
from shared.budget_alert_check import RESTORED, SentThreshold, check_budget_alerts
from shared.budget_alerts import (
    create_budget_alert,
    delete_budget_alert,
    mirror_budget_alerts,
    parse_thresholds,
)
from shared.db.budget_alert_log import SqlSentLog
from shared.db.engine import create_engine, create_session_factory
from shared.db.migrate import migrate
from shared.errors import InvalidRequest, NotFound
from shared.keys import WEBHOOK_STREAM, budget_alerts_fired_key, budget_alerts_key, spend_key, webhook_event_key
from shared.limits import budget_period, seed_budget
from shared.tenants import TenantLimits, create_tenant, update_tenant

REDIS_URL = "redis://127.0.0.1:6379/3"
NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
PERIOD_ID = budget_period("monthly", NOW)[0]


@dataclass
class Alerting:
    """A tenant with a $1 monthly budget and one alert at 50/80/100 %, mirrored; its database."""

    tenant_id: str
    alert_id: str
    sessions: async_sessionmaker[AsyncSession]
    log: SqlSentLog


@pytest.fixture
async def raw() -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def tenant(raw: redis.asyncio.Redis, tmp_path: Path) -> AsyncIterator[Alerting]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    await migrate(url)
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    async with sessions() as session:
        row, _ = await create_tenant(session, "alerts", limits=TenantLimits(budget_usd=1.0))
        alert = await create_budget_alert(session, row.id, "http://127.0.0.1:9/hook", [100, 50, 80],
                                          allow_private=True)
        await session.commit()
        await mirror_budget_alerts(raw, session, row.id, NOW)
    yield Alerting(row.id, alert.id, sessions, SqlSentLog(engine))
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
        raw: redis.asyncio.Redis, tenant: Alerting) -> None:
    tenant_id = tenant.tenant_id
    await seed_budget(raw, tenant_id, "monthly", NOW, 0.0)
    clients = [redis.asyncio.Redis.from_url(REDIS_URL) for _ in range(50)]

    async def settle(client: redis.asyncio.Redis) -> list[str]:
        await client.hincrby(spend_key(tenant_id, PERIOD_ID), "spent", 25_000)  # $0.025 a job, 50 jobs: $1.25
        return await check_budget_alerts(client, tenant_id, NOW, tenant.log)

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
    assert await check_budget_alerts(raw, tenant_id, NOW, tenant.log) == []  # nothing new to send in this period


async def test_nothing_is_sent_below_a_threshold_or_while_seeding(raw: redis.asyncio.Redis,
                                                                  tenant: Alerting) -> None:
    tenant_id = tenant.tenant_id
    assert await check_budget_alerts(raw, tenant_id, NOW, tenant.log) == []  # no counter yet
    await raw.hset(spend_key(tenant_id, PERIOD_ID), mapping={"spent": 900_000, "seeding": "token"})
    assert await check_budget_alerts(raw, tenant_id, NOW, tenant.log) == []  # incomplete counter
    await raw.hdel(spend_key(tenant_id, PERIOD_ID), "seeding")
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 490_000)
    assert await check_budget_alerts(raw, tenant_id, NOW, tenant.log) == []
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 850_000)
    assert [e.rsplit("_", 1)[1] for e in await check_budget_alerts(raw, tenant_id, NOW, tenant.log)] == ["50", "80"]


async def test_budget_change_starts_thresholds_afresh_and_mirror_follows_the_database(
        raw: redis.asyncio.Redis, tenant: Alerting) -> None:
    tenant_id, sessions = tenant.tenant_id, tenant.sessions
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 600_000)
    assert len(await check_budget_alerts(raw, tenant_id, NOW, tenant.log)) == 1  # 50 %
    async with sessions() as session:
        await update_tenant(session, tenant_id, TenantLimits(budget_usd=0.7))
        await mirror_budget_alerts(raw, session, tenant_id, NOW, budget_changed=True)
    assert [e.rsplit("_", 1)[1] for e in await check_budget_alerts(raw, tenant_id, NOW, tenant.log)] == ["50", "80"]
    async with sessions() as session:
        [alert_id] = [k.decode().split(":", 1)[1] for k in await raw.hkeys(budget_alerts_key(tenant_id))
                      if k.startswith(b"alert:")]
        await delete_budget_alert(session, tenant_id, alert_id)
        await session.commit()
        with pytest.raises(NotFound):
            await delete_budget_alert(session, tenant_id, alert_id)
        await mirror_budget_alerts(raw, session, tenant_id, NOW)
    assert not await raw.exists(budget_alerts_key(tenant_id))
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 2_000_000)
    assert await check_budget_alerts(raw, tenant_id, NOW, tenant.log) == []


async def test_a_seed_rebuilds_a_lost_mirror(raw: redis.asyncio.Redis, tenant: Alerting) -> None:
    tenant_id, sessions = tenant.tenant_id, tenant.sessions
    await raw.flushdb()  # Redis lost its data: counters and the mirror are gone
    await seed_spend(raw, sessions, tenant_id, "monthly", NOW)
    mirror = await raw.hgetall(budget_alerts_key(tenant_id))
    assert mirror[b"budget_micros"] == b"1000000" and mirror[b"period"] == b"monthly"
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 500_000)
    assert len(await check_budget_alerts(raw, tenant_id, NOW, tenant.log)) == 1


def pcts(events: list[str]) -> list[str]:
    return [event.rsplit("_", 1)[1] for event in events]


async def test_sent_thresholds_are_recorded_and_a_lost_fired_set_is_restored_from_them(
        raw: redis.asyncio.Redis, tenant: Alerting) -> None:
    tenant_id, fired = tenant.tenant_id, budget_alerts_fired_key(tenant.tenant_id, PERIOD_ID)
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 600_000)
    assert pcts(await check_budget_alerts(raw, tenant_id, NOW, tenant.log)) == ["50"]
    assert await tenant.log.sent_thresholds([tenant.alert_id], PERIOD_ID, 1_000_000) == [
        SentThreshold(tenant.alert_id, PERIOD_ID, 50, 1_000_000)]
    await raw.delete(fired)  # Redis lost the set (an eviction, a flush)
    assert await check_budget_alerts(raw, tenant_id, NOW, tenant.log) == []  # 50 % is not sent again
    assert RESTORED.encode() in await raw.smembers(fired)
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 850_000)
    await raw.delete(fired)
    assert pcts(await check_budget_alerts(raw, tenant_id, NOW, tenant.log)) == ["80"]
    await raw.delete(fired)
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 1_000_000)
    assert pcts(await check_budget_alerts(raw, tenant_id, NOW, tenant.log)) == ["100"]
    assert len(await deliveries(raw)) == 3
    sent = await tenant.log.sent_thresholds([tenant.alert_id], PERIOD_ID, 1_000_000)
    assert sorted(item.threshold_pct for item in sent) == [50, 80, 100]
    await tenant.log.record_thresholds(sent)  # recording again keeps one row each
    assert len(await tenant.log.sent_thresholds([tenant.alert_id], PERIOD_ID, 1_000_000)) == 3


async def test_a_restored_set_holds_only_the_current_budget_and_period(raw: redis.asyncio.Redis,
                                                                       tenant: Alerting) -> None:
    tenant_id = tenant.tenant_id
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 600_000)
    assert pcts(await check_budget_alerts(raw, tenant_id, NOW, tenant.log)) == ["50"]
    async with tenant.sessions() as session:
        await update_tenant(session, tenant_id, TenantLimits(budget_usd=2.0))
        await mirror_budget_alerts(raw, session, tenant_id, NOW, budget_changed=True)
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 1_100_000)
    assert pcts(await check_budget_alerts(raw, tenant_id, NOW, tenant.log)) == ["50"]  # 50 % of $2: new amount
    next_month = datetime(2027, 1, 2, tzinfo=UTC)
    await raw.hset(spend_key(tenant_id, "2027-01"), "spent", 1_100_000)
    assert pcts(await check_budget_alerts(raw, tenant_id, next_month, tenant.log)) == ["50"]  # a new period


async def test_a_fired_set_written_before_budgets_were_named_still_counts(raw: redis.asyncio.Redis,
                                                                         tenant: Alerting) -> None:
    tenant_id = tenant.tenant_id
    await raw.sadd(budget_alerts_fired_key(tenant_id, PERIOD_ID), f"{tenant.alert_id}:50")
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 850_000)
    assert pcts(await check_budget_alerts(raw, tenant_id, NOW, tenant.log)) == ["80"]


async def test_a_database_outage_sends_nothing_until_the_set_can_be_restored(raw: redis.asyncio.Redis,
                                                                             tenant: Alerting) -> None:
    tenant_id = tenant.tenant_id
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 600_000)
    broken = SqlSentLog(create_engine("sqlite+aiosqlite:////nonexistent/dir/alerts.db"))
    with pytest.raises(OperationalError, match="unable to open database"):
        await check_budget_alerts(raw, tenant_id, NOW, broken)
    assert await deliveries(raw) == []
    assert pcts(await check_budget_alerts(raw, tenant_id, NOW, tenant.log)) == ["50"]


async def key_with_budget(tenant: Alerting, budget_usd: float | None, name: str = "ci") -> str:
    async with tenant.sessions() as session:
        key, _ = await create_key(session, tenant.tenant_id,
                                  KeyCreate(name=name, budget_usd=budget_usd, budget_period="daily"), actor="test")
    return key.id


async def test_a_key_alert_watches_the_keys_own_budget_and_spend(raw: redis.asyncio.Redis,
                                                                 tenant: Alerting) -> None:
    tenant_id, key_id = tenant.tenant_id, await key_with_budget(tenant, 0.1)
    day = budget_period("daily", NOW)[0]
    async with tenant.sessions() as session:
        alert = await create_budget_alert(session, tenant_id, "http://127.0.0.1:9/key", [50, 100], key_id=key_id,
                                          allow_private=True)
        await session.commit()
        await mirror_budget_alerts(raw, session, tenant_id, NOW, key_id=key_id)
    mirror = await raw.hgetall(budget_alerts_key(key_id))
    assert mirror[b"budget_micros"] == b"100000" and mirror[b"period"] == b"daily"
    assert f"alert:{alert.id}".encode() in mirror
    assert f"alert:{alert.id}".encode() not in await raw.hgetall(budget_alerts_key(tenant_id))
    await raw.hset(spend_key(tenant_id, PERIOD_ID), "spent", 600_000)  # the tenant's spend, of other keys
    await raw.hset(spend_key(tenant_id, day), "spent", 600_000)
    assert await check_budget_alerts(raw, tenant_id, NOW, tenant.log, key_id=key_id) == []
    await raw.hset(spend_key(key_id, day), "spent", 60_000)  # the key's own: 60 % of its $0.10
    [event] = await check_budget_alerts(raw, tenant_id, NOW, tenant.log, key_id=key_id)
    body = json.loads(await raw.get(webhook_event_key(event)))
    assert body["key_id"] == key_id and body["tenant_id"] == tenant_id and body["alert_id"] == alert.id
    assert body["threshold_pct"] == 50 and body["budget_usd"] == 0.1 and body["period_id"] == day
    assert pcts(await check_budget_alerts(raw, tenant_id, NOW, tenant.log)) == ["50"]  # the tenant's own alert
    assert json.loads(await raw.get(webhook_event_key(
        f"evt_budget_{tenant.alert_id}_{PERIOD_ID}_50")))["key_id"] is None
    await raw.delete(budget_alerts_fired_key(key_id, day))
    assert await check_budget_alerts(raw, tenant_id, NOW, tenant.log, key_id=key_id) == []  # restored, not resent


async def test_a_key_alert_needs_an_active_key_of_the_tenant_with_a_budget(tenant: Alerting) -> None:
    unbudgeted, revoked = await key_with_budget(tenant, None), await key_with_budget(tenant, 1.0, "gone")
    async with tenant.sessions() as session:
        other, _ = await create_tenant(session, "other")
        foreign, _ = await create_key(session, other.id, KeyCreate(name="x", budget_usd=1.0), actor="test")
        await revoke_key(session, tenant.tenant_id, revoked, actor="test")
        for key_id, error, words in ((unbudgeted, InvalidRequest, "has no budget"), (revoked, NotFound, "revoked"),
                                     (foreign.id, NotFound, "not found"), ("key_missing", NotFound, "not found")):
            with pytest.raises(error, match=words):
                await create_budget_alert(session, tenant.tenant_id, "http://127.0.0.1:9/k", [50], key_id=key_id,
                                          allow_private=True)


async def test_a_key_alerts_mirror_follows_its_budget_its_revocation_and_a_seed(raw: redis.asyncio.Redis,
                                                                                tenant: Alerting) -> None:
    tenant_id, key_id = tenant.tenant_id, await key_with_budget(tenant, 0.1)
    async with tenant.sessions() as session:
        await create_budget_alert(session, tenant_id, "http://127.0.0.1:9/key", [50], key_id=key_id,
                                  allow_private=True)
        await session.commit()
        await update_key(session, tenant_id, key_id, KeyScopes.model_validate({"budget_usd": 0.3}), actor="test")
        await mirror_budget_alerts(raw, session, tenant_id, NOW, key_id=key_id, budget_changed=True)
    assert await raw.hget(budget_alerts_key(key_id), "budget_micros") == b"300000"
    await raw.flushdb()  # Redis lost everything: the key's next seed rebuilds its mirror
    await seed_spend(raw, tenant.sessions, tenant_id, "daily", NOW, key_id=key_id)
    assert await raw.hget(budget_alerts_key(key_id), "budget_micros") == b"300000"
    async with tenant.sessions() as session:
        await update_key(session, tenant_id, key_id, KeyScopes.model_validate({"budget_usd": None}), actor="test")
        await mirror_budget_alerts(raw, session, tenant_id, NOW, key_id=key_id, budget_changed=True)
    assert not await raw.exists(budget_alerts_key(key_id))  # no budget: the alert is kept but silent
    async with tenant.sessions() as session:
        await update_key(session, tenant_id, key_id, KeyScopes.model_validate({"budget_usd": 0.2}), actor="test")
        await mirror_budget_alerts(raw, session, tenant_id, NOW, key_id=key_id)
        assert await raw.exists(budget_alerts_key(key_id))
        await revoke_key(session, tenant_id, key_id, actor="test")
        await mirror_budget_alerts(raw, session, tenant_id, NOW, key_id=key_id)
    assert not await raw.exists(budget_alerts_key(key_id))
