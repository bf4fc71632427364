"""Budget alerts: webhooks a tenant registers to hear when its spend reaches given percentages of its budget
(e.g. 50, 80, 100), sent once per threshold per budget period over the job webhooks' signed delivery.

The admin API stores alerts in the database and mirrors them, with the tenant's budget, into one Redis hash
(`mirror_budget_alerts`, after every change of alerts or budget, and at every spend seed). The worker checks
them (shared/budget_alert_check.py, which needs no database) after a job's settlement. `key_id`
on an alert is reserved for per-key budgets (issue 15): alerts with one are stored but not yet checked."""

import json
import secrets
from datetime import datetime

from redis.asyncio import Redis
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.budget_alert_check import ALERT_PREFIX
from shared.db.tables import BudgetAlert, Tenant
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
    "parse_thresholds",
    "render_budget_alert",
]

MAX_THRESHOLDS = 10
MAX_PERCENT = 1000  # past 100 %: spend can overshoot a budget by the last jobs' actual cost, or a lowered budget
MAX_ALERTS = 20  # per tenant, so one settlement's check stays small


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
                              allow_private: bool) -> BudgetAlert:
    """Add an alert for the tenant's budget (flushed, not committed: the caller audits, then commits)."""
    if await session.get(Tenant, tenant_id) is None:
        raise NotFound(f"tenant {tenant_id!r} not found")
    url = validate_callback_url(url, allow_private=allow_private)
    if len(await list_budget_alerts(session, tenant_id)) >= MAX_ALERTS:
        raise InvalidRequest(f"a tenant has at most {MAX_ALERTS} budget alerts")
    alert = BudgetAlert(id=_new_id(), tenant_id=tenant_id, url=url,
                        thresholds=",".join(map(str, parse_thresholds(thresholds))))
    session.add(alert)
    await session.flush()
    return alert


async def list_budget_alerts(session: AsyncSession, tenant_id: str) -> list[BudgetAlert]:
    statement = select(BudgetAlert).where(col(BudgetAlert.tenant_id) == tenant_id).order_by(
        col(BudgetAlert.created_at), col(BudgetAlert.id))
    return list((await session.exec(statement)).all())


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
                               budget_changed: bool = False) -> None:
    """Write the tenant's budget and alerts to Redis (committed state: call after the commit). After a change
    of budget the period's thresholds start afresh, since a threshold means an amount of the budget."""
    tenant = await session.get(Tenant, tenant_id)
    alerts = [a for a in await list_budget_alerts(session, tenant_id) if a.key_id is None]
    key = budget_alerts_key(tenant_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        if tenant is not None and tenant.budget_usd is not None and alerts:
            mapping: dict[str, str] = {"budget_micros": str(int(tenant.budget_usd * 1_000_000)),
                                       "period": tenant.budget_period}
            mapping.update({ALERT_PREFIX + a.id: json.dumps({"url": a.url, "thresholds": a.thresholds})
                            for a in alerts})
            pipe.hset(key, mapping=mapping)
        if budget_changed and tenant is not None:
            pipe.delete(budget_alerts_fired_key(tenant_id, budget_period(tenant.budget_period, now)[0]))
        await pipe.execute()


def _new_id() -> str:
    return "bal_" + secrets.token_hex(8)
