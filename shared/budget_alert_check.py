"""The worker's side of budget alerts (shared/budget_alerts.py has the database side): after a job's settlement
added its cost to the spend counters of its tenant and of its API key, queue the webhook of each threshold now
reached. Each owner (the tenant, or a key with a budget of its own) has its own mirror of budget and alerts, and
its own fired set. shared/lua/budget_alert.lua decides atomically which thresholds are newly reached, so
concurrent jobs on many workers crossing one threshold send it once.

The fired set lives in Redis, and Redis can lose it (a restart without persistence, a flush, an eviction);
then every threshold already reached would go again. So each threshold sent is also recorded in the database
(`SentLog`: table budget_alert_sent, written by the worker that queued it), and a fired set found missing is
rebuilt from that record before anything is sent. The worker reaches the database through its usage sink's
plain connection (shared/db/pg_usage.py), so it still never loads SQLAlchemy on PostgreSQL. A repeat needs
the set lost in the instant between a threshold's queueing and its record; it then carries the same event id,
by which a receiver drops it."""

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from redis.asyncio import Redis

from shared.keys import WEBHOOK_STREAM, budget_alerts_fired_key, budget_alerts_key, spend_key, webhook_event_key
from shared.limits import budget_period
from shared.scripts import LuaScript, lua_source

__all__ = ["ALERT_PREFIX", "EVENT_TTL_S", "RESTORED", "SentLog", "SentThreshold", "check_budget_alerts"]

logger = logging.getLogger(__name__)

CHECK = LuaScript(lua_source("budget_alert.lua"))
EVENT_TTL_S = 7 * 86_400  # an alert's body outlives every retry of its delivery (WEBHOOK_RETRY_MAX_S caps each)
FIRED_GRACE = timedelta(days=7)
ALERT_PREFIX = "alert:"  # the mirror's field of each alert: `alert:<id>` -> {"url", "thresholds"}
RESTORED = "restored"  # the fired set's member saying it holds every threshold the database records as sent
LOST = -1  # the script's answer when the fired set has to be restored first


@dataclass(frozen=True)
class SentThreshold:
    """One threshold of one alert sent in a budget period, for a budget amount (micro-dollars)."""

    alert_id: str
    period_id: str
    threshold_pct: int
    budget_micros: int

    @property
    def member(self) -> str:
        """Its member of the period's fired set (as shared/lua/budget_alert.lua writes it)."""
        return f"{self.alert_id}:{self.threshold_pct}:{self.budget_micros}"


class SentLog(Protocol):
    """The database's record of the thresholds sent (PostgreSQL: shared/db/pg_usage.py; SQLite and tests:
    shared/db/budget_alert_log.py). Both are idempotent: recording a threshold twice keeps one row."""

    async def sent_thresholds(self, alert_ids: Sequence[str], period_id: str,
                              budget_micros: int) -> list[SentThreshold]: ...

    async def record_thresholds(self, sent: Sequence[SentThreshold]) -> None: ...


@dataclass(frozen=True)
class _Check:
    """One owner's mirror, read for a check at `now`."""

    tenant_id: str
    key_id: str | None
    budget_micros: int
    period: str
    alerts: dict[str, dict[str, str]]  # alert id -> {"url", "thresholds"}
    now: datetime

    @property
    def owner(self) -> str:
        return self.key_id if self.key_id is not None else self.tenant_id

    @property
    def period_id(self) -> str:
        return budget_period(self.period, self.now)[0]

    @property
    def fired_key(self) -> str:
        return budget_alerts_fired_key(self.owner, self.period_id)

    @property
    def fired_ttl_s(self) -> int:
        reset_at = budget_period(self.period, self.now)[1]
        left = (reset_at - self.now) if reset_at is not None else timedelta(days=365)
        return int((left + FIRED_GRACE).total_seconds())


async def check_budget_alerts(redis: Redis, tenant_id: str, now: datetime, log: SentLog, *,
                              key_id: str | None = None) -> list[str]:
    """Queue the webhook of every threshold the tenant's spend (with `key_id`: that API key's) has reached and
    that was not sent yet in this period, and record them in `log`; the event ids queued (the worker calls this
    after settling a job that cost something)."""
    check = await _read_mirror(redis, tenant_id, key_id, now)
    if check is None:
        return []
    reply = await _run(redis, check)
    if reply == LOST:
        await _restore_fired(redis, check, log)
        reply = await _run(redis, check)
    if not isinstance(reply, list) or not reply:
        return []  # nothing reached, a counter being seeded, or the fired set lost again meanwhile
    sent = [SentThreshold(_text(alert_id), check.period_id, int(_text(pct)), check.budget_micros)
            for _, alert_id, pct in reply]
    await log.record_thresholds(sent)
    return [_text(event_id) for event_id, _, _ in reply]


async def _read_mirror(redis: Redis, tenant_id: str, key_id: str | None, now: datetime) -> _Check | None:
    raw: dict[bytes, bytes] = await redis.hgetall(  # type: ignore[misc]
        budget_alerts_key(key_id if key_id is not None else tenant_id))
    mirror = {k.decode(): v.decode() for k, v in raw.items()}
    if "budget_micros" not in mirror:
        return None
    alerts = {name.removeprefix(ALERT_PREFIX): json.loads(value) for name, value in sorted(mirror.items())
              if name.startswith(ALERT_PREFIX)}
    return _Check(tenant_id, key_id, int(mirror["budget_micros"]), mirror["period"], alerts, now)


async def _run(redis: Redis, check: _Check) -> object:
    fields = {"object": "budget.alert", "tenant_id": check.tenant_id, "key_id": check.key_id,
              "period": check.period, "period_id": check.period_id, "budget_usd": check.budget_micros / 1_000_000,
              "created_at": check.now.isoformat()}
    args: list[object] = [check.budget_micros, check.fired_ttl_s, webhook_event_key(""), EVENT_TTL_S,
                          json.dumps(fields)]
    for alert_id, alert in check.alerts.items():
        args += [alert_id, alert["url"], alert["thresholds"]]
    keys = [spend_key(check.owner, check.period_id), check.fired_key, WEBHOOK_STREAM]
    return await CHECK.run(redis, keys, args)


async def _restore_fired(redis: Redis, check: _Check, log: SentLog) -> None:
    """Rebuild the period's fired set from the database's record. Adding is safe against a concurrent check:
    what another worker sent meanwhile stays in the set, and is in the record too."""
    sent = await log.sent_thresholds(sorted(check.alerts), check.period_id, check.budget_micros)
    logger.info("budget alert fired set of %s restored from the database (%d sent this period)",
                check.owner, len(sent))
    async with redis.pipeline(transaction=True) as pipe:
        pipe.sadd(check.fired_key, RESTORED, *(threshold.member for threshold in sent))
        pipe.expire(check.fired_key, check.fired_ttl_s)
        await pipe.execute()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
