"""The worker's side of budget alerts (shared/budget_alerts.py has the database side): after a job's settlement
added its cost to the tenant's spend counter, queue the webhook of each threshold now reached. Redis only, so
the worker never loads SQLAlchemy; shared/lua/budget_alert.lua decides atomically which thresholds are newly
reached, so concurrent jobs on many workers crossing one threshold send it once."""

import json
from datetime import datetime, timedelta

from redis.asyncio import Redis

from shared.keys import WEBHOOK_STREAM, budget_alerts_fired_key, budget_alerts_key, spend_key, webhook_event_key
from shared.limits import budget_period
from shared.scripts import LuaScript, lua_source

__all__ = ["ALERT_PREFIX", "EVENT_TTL_S", "check_budget_alerts"]

CHECK = LuaScript(lua_source("budget_alert.lua"))
EVENT_TTL_S = 7 * 86_400  # an alert's body outlives every retry of its delivery (WEBHOOK_RETRY_MAX_S caps each)
FIRED_GRACE = timedelta(days=7)
ALERT_PREFIX = "alert:"  # the mirror's field of each alert: `alert:<id>` -> {"url", "thresholds"}


async def check_budget_alerts(redis: Redis, tenant_id: str, now: datetime) -> list[str]:
    """Queue the webhook of every threshold the tenant's spend has reached and that was not sent yet in this
    period; the event ids queued (the worker calls this after settling a job that cost something)."""
    raw: dict[bytes, bytes] = await redis.hgetall(budget_alerts_key(tenant_id))  # type: ignore[misc]
    mirror = {k.decode(): v.decode() for k, v in raw.items()}
    if "budget_micros" not in mirror:
        return []
    period = mirror["period"]
    period_id, reset_at = budget_period(period, now)
    fired_ttl_s = int(((reset_at - now) if reset_at else timedelta(days=365)).total_seconds()
                      + FIRED_GRACE.total_seconds())
    fields = {"object": "budget.alert", "tenant_id": tenant_id, "period": period, "period_id": period_id,
              "budget_usd": int(mirror["budget_micros"]) / 1_000_000, "created_at": now.isoformat()}
    args: list[object] = [mirror["budget_micros"], fired_ttl_s, webhook_event_key(""), EVENT_TTL_S,
                          json.dumps(fields)]
    for name, value in sorted(mirror.items()):
        if name.startswith(ALERT_PREFIX):
            alert = json.loads(value)
            args += [name.removeprefix(ALERT_PREFIX), alert["url"], alert["thresholds"]]
    keys = [spend_key(tenant_id, period_id), budget_alerts_fired_key(tenant_id, period_id), WEBHOOK_STREAM]
    sent = await CHECK.run(redis, keys, args)
    return [item.decode() if isinstance(item, bytes) else str(item) for item in sent] if isinstance(sent, list) else []
