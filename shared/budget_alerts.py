"""Budget alerts: webhooks a tenant registers to hear when its spend reaches given percentages of its budget
(e.g. 50, 80, 100), sent once per threshold per budget period over the job webhooks' signed delivery. An
alert with a `key_id` watches that API key's own budget (`budget_usd`, `budget_period` of the key) and the
key's own spend, counted under its id; the tenant's other keys' spend does not count toward it.

The admin API stores alerts in the database and mirrors them, with their owner's budget, into one Redis hash
per owner, the tenant or a key (`mirror_budget_alerts`, after every change of alerts, of a budget or of a key,
and at every spend seed). The worker checks them (shared/budget_alert_check.py, which needs no SQLAlchemy)
after a job's settlement. A key alert needs an active key with a budget; when the key later loses its budget
or is revoked, its alerts stay listed but send nothing (its mirror is empty) until it has a budget again."""

import json
import secrets
from datetime import datetime

from redis.asyncio import Redis
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from shared.budget_alert_check import ALERT_PREFIX
from shared.db.tables import ApiKey, BudgetAlert, Tenant
from shared.errors import InvalidRequest, NotFound
from shared.keys import budget_alerts_fired_key, budget_alerts_key
from shared.limits import budget_period
from shared.webhooks import validate_callback_url

__all__ = [
    "MAX_ALERTS",
    "MAX_THRESHOLDS",
    "create_budget_alert",
    "delete_budget_alert",
    "list_budget_alerts",
    "mirror_budget_alerts",
    "owner_alerts",
    "parse_thresholds",
    "render_budget_alert",
]

MAX_THRESHOLDS = 10
MAX_PERCENT = 1000  # past 100 %: spend can overshoot a budget by the last jobs' actual cost, or a lowered budget
MAX_ALERTS = 20  # per owner (the tenant, or one key), so one settlement's check stays small


def parse_thresholds(values: object) -> list[int]:
    """Percentages of the budget: 1 to 10 distinct integers in 1..1000, returned ascending; else InvalidRequest."""
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_THRESHOLDS:
        raise InvalidRequest(f"thresholds must be a list of 1 to {MAX_THRESHOLDS} percentages")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_PERCENT for v in values):
        raise InvalidRequest(f"thresholds must be integers from 1 to {MAX_PERCENT} (percent of the budget)")
    if len(set(values)) != len(values):
        raise InvalidRequest("thresholds must not repeat")
    return sorted(values)


async def create_budget_alert(session: AsyncSession, tenant_id: str, url: str, thresholds: list[int], *,
                              allow_private: bool, key_id: str | None = None) -> BudgetAlert:
    """Add an alert for the tenant's budget, or with `key_id` for that key's own budget (flushed, not committed:
    the caller audits, then commits). NotFound for an unknown tenant, or a key not the tenant's or revoked;
    InvalidRequest for a key without a budget, whose percentages would mean nothing."""
    if await session.get(Tenant, tenant_id) is None:
        raise NotFound(f"tenant {tenant_id!r} not found")
    if key_id is not None:
        await _budgeted_key(session, tenant_id, key_id)
    url = validate_callback_url(url, allow_private=allow_private)
    if len(await owner_alerts(session, tenant_id, key_id)) >= MAX_ALERTS:
        raise InvalidRequest(f"a tenant, and each of its keys, has at most {MAX_ALERTS} budget alerts")
    alert = BudgetAlert(id=_new_id(), tenant_id=tenant_id, key_id=key_id, url=url,
                        thresholds=",".join(map(str, parse_thresholds(thresholds))))
    session.add(alert)
    await session.flush()
    return alert


async def _budgeted_key(session: AsyncSession, tenant_id: str, key_id: str) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None or key.tenant_id != tenant_id:
        raise NotFound(f"key {key_id!r} of tenant {tenant_id!r} not found")
    if key.revoked_at is not None:
        raise NotFound(f"key {key_id!r} of tenant {tenant_id!r} is revoked")
    if key.budget_usd is None:
        raise InvalidRequest(f"key {key_id!r} has no budget of its own: set its budget_usd first "
                             "(PATCH /api/v1/admin/tenants/{tenant_id}/keys/{key_id}), or omit key_id "
                             "to watch the tenant's budget")
    return key


async def list_budget_alerts(session: AsyncSession, tenant_id: str) -> list[BudgetAlert]:
    """All the tenant's alerts, its own and its keys', oldest first."""
    return await _alerts(session, select(BudgetAlert).where(col(BudgetAlert.tenant_id) == tenant_id))


async def owner_alerts(session: AsyncSession, tenant_id: str, key_id: str | None) -> list[BudgetAlert]:
    """The alerts of the tenant's own budget (`key_id` None) or of one key's, oldest first."""
    statement = select(BudgetAlert).where(col(BudgetAlert.tenant_id) == tenant_id)
    key = col(BudgetAlert.key_id)
    return await _alerts(session, statement.where(key.is_(None) if key_id is None else key == key_id))


async def _alerts(session: AsyncSession, statement: SelectOfScalar[BudgetAlert]) -> list[BudgetAlert]:
    return list((await session.exec(statement.order_by(col(BudgetAlert.created_at), col(BudgetAlert.id)))).all())


async def delete_budget_alert(session: AsyncSession, tenant_id: str, alert_id: str) -> BudgetAlert:
    """Remove the alert (flushed, not committed); raises NotFound. Returns it as it was."""
    alert = await session.get(BudgetAlert, alert_id)
    if alert is None or alert.tenant_id != tenant_id:
        raise NotFound(f"budget alert {alert_id!r} not found for tenant {tenant_id!r}")
    await session.delete(alert)
    await session.flush()
    return alert


def render_budget_alert(alert: BudgetAlert) -> dict[str, object]:
    return {"id": alert.id, "object": "budget_alert", "tenant_id": alert.tenant_id, "key_id": alert.key_id,
            "url": alert.url, "thresholds": [int(p) for p in alert.thresholds.split(",")],
            "created_at": alert.created_at.isoformat()}


async def mirror_budget_alerts(redis: Redis, session: AsyncSession, tenant_id: str, now: datetime, *,
                               key_id: str | None = None, budget_changed: bool = False) -> None:
    """Write the tenant's budget and alerts (with `key_id`: that key's) to Redis (committed state: call after
    the commit). After a change of budget the period's thresholds start afresh, since a threshold means an
    amount of the budget."""
    budget = await _owner_budget(session, tenant_id, key_id)
    alerts = await owner_alerts(session, tenant_id, key_id)
    owner = key_id if key_id is not None else tenant_id
    key = budget_alerts_key(owner)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        if budget is not None and alerts:
            mapping: dict[str, str] = {"budget_micros": str(int(budget[0] * 1_000_000)), "period": budget[1]}
            mapping.update({ALERT_PREFIX + a.id: json.dumps({"url": a.url, "thresholds": a.thresholds})
                            for a in alerts})
            pipe.hset(key, mapping=mapping)
        if budget_changed and budget is not None:
            pipe.delete(budget_alerts_fired_key(owner, budget_period(budget[1], now)[0]))
        await pipe.execute()


async def _owner_budget(session: AsyncSession, tenant_id: str, key_id: str | None) -> tuple[float, str] | None:
    """The budget (USD, period) the owner's alerts watch; None when it has none, or is a key revoked or not
    the tenant's."""
    if key_id is None:
        tenant = await session.get(Tenant, tenant_id, populate_existing=True)
        return (tenant.budget_usd, tenant.budget_period) if tenant and tenant.budget_usd is not None else None
    api_key = await session.get(ApiKey, key_id, populate_existing=True)
    if api_key is None or api_key.tenant_id != tenant_id or api_key.revoked_at is not None \
            or api_key.budget_usd is None:
        return None
    return api_key.budget_usd, api_key.budget_period


def _new_id() -> str:
    return "bal_" + secrets.token_hex(8)
