"""Tenant limits enforced in Redis for every API process at once: requests and tokens per minute (sliding
window logs: exact, never 2x at a window boundary), concurrent jobs, and a USD budget per period that a
request reserves at its worst-case cost. Admission is one Lua script (all or nothing); settlement runs
inside the job's terminal transaction, so it happens exactly once."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.keys import budget_key, concurrency_key, rpm_key, tpm_key, tpm_sum_key
from shared.scripts import LuaScript, lua_source

__all__ = [
    "Admission",
    "AdmissionResult",
    "Budget",
    "LimitRequest",
    "admit",
    "budget_period",
    "queue_settlement",
    "seed_budget",
    "settlement_call",
]

ADMIT = LuaScript(lua_source("admit.lua"))
SETTLE_SCRIPT = lua_source("settle_fn.lua", "settle.lua")
BUDGET_GRACE = timedelta(days=7)


class Admission(BaseModel):
    """What a job holds after admission, so that its end can settle it (kept in the job record)."""

    tenant_id: str
    tokens_estimated: int = 0
    tpm_limit: int = 0
    concurrency: bool = False
    budget_key: str | None = None
    reserved_micros: int = 0
    budget_ttl_s: int = 0


@dataclass(frozen=True)
class Budget:
    limit_usd: float
    period: str

    @property
    def limit_micros(self) -> int:
        return int(self.limit_usd * 1_000_000)


@dataclass(frozen=True)
class LimitRequest:
    tenant_id: str
    job_id: str
    rpm_limit: int
    tpm_limit: int
    tokens: int
    concurrency_limit: int
    concurrency_expiry_s: float
    budget: Budget | None
    reserve_usd: float
    # Backpressure: refuse ('queue_full') when these two ready sets hold `queue_limit` jobs (0: never).
    queue_keys: tuple[str, str] | None = None
    queue_limit: int = 0


@dataclass(frozen=True)
class AdmissionResult:
    allowed: bool
    reason: str
    retry_after_s: float
    rpm_remaining: int
    rpm_reset_s: float
    tpm_remaining: int
    tpm_reset_s: float
    budget_unseeded: bool
    admission: Admission
    budget_used_usd: float | None = None


def budget_period(period: str, now: datetime) -> tuple[str, datetime | None]:
    """The period's id and when the next one starts (None for a budget that never resets)."""
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if period == "daily":
        return day.strftime("%Y-%m-%d"), day + timedelta(days=1)
    if period == "weekly":
        start = day - timedelta(days=day.weekday())
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}", start + timedelta(days=7)
    if period == "monthly":
        following = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
        return now.strftime("%Y-%m"), following
    return "all", None


def period_start(period: str, now: datetime) -> datetime | None:
    """When the current period began (None for a budget that never resets)."""
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    starts = {"daily": day, "weekly": day - timedelta(days=day.weekday()),
              "monthly": datetime(now.year, now.month, 1, tzinfo=UTC)}
    return starts.get(period)


async def admit(redis: Redis, request: LimitRequest, now: datetime) -> AdmissionResult:
    period_id, reset_at = budget_period(request.budget.period if request.budget else "none", now)
    key_budget = budget_key(request.tenant_id, period_id)
    ttl_s = _budget_ttl_s(now, reset_at)
    reserve_micros = math.ceil(request.reserve_usd * 1_000_000) if request.budget else 0
    now_ms = int(now.timestamp() * 1000)
    keys = [rpm_key(request.tenant_id), tpm_key(request.tenant_id), tpm_sum_key(request.tenant_id),
            concurrency_key(request.tenant_id), key_budget, *(request.queue_keys or (key_budget, key_budget))]
    args = [now_ms, request.rpm_limit, request.tpm_limit, request.tokens, request.concurrency_limit, request.job_id,
            int(request.concurrency_expiry_s * 1000), request.budget.limit_micros if request.budget else -1,
            reserve_micros, ttl_s, request.queue_limit if request.queue_keys else 0]
    reply = await ADMIT.run(redis, keys, args)  # type: ignore[arg-type]
    allowed, reason, wait_ms, rpm_rem, rpm_reset, tpm_rem, tpm_reset, budget_state, budget_used = reply
    admission = Admission(
        tenant_id=request.tenant_id, tokens_estimated=request.tokens if request.tpm_limit else 0,
        tpm_limit=request.tpm_limit, concurrency=request.concurrency_limit > 0,
        budget_key=key_budget, reserved_micros=reserve_micros, budget_ttl_s=ttl_s,
    )
    return AdmissionResult(
        allowed=bool(allowed), reason=_text(reason), retry_after_s=int(wait_ms) / 1000,
        rpm_remaining=int(rpm_rem), rpm_reset_s=int(rpm_reset) / 1000, tpm_remaining=int(tpm_rem),
        tpm_reset_s=int(tpm_reset) / 1000, budget_unseeded=_text(budget_state) == "missing", admission=admission,
        budget_used_usd=int(budget_used) / 1_000_000 if int(budget_used) >= 0 else None,
    )


async def seed_budget(redis: Redis, tenant_id: str, period: str, now: datetime, spent_usd: float) -> None:
    """Start a period's budget counters from what the database says was spent (after a Redis loss, or on
    the first request of a period). HSETNX keeps a concurrent seed from double counting."""
    period_id, reset_at = budget_period(period, now)
    key = budget_key(tenant_id, period_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hsetnx(key, "spent", math.ceil(spent_usd * 1_000_000))
        pipe.hsetnx(key, "reserved", 0)
        pipe.expire(key, _budget_ttl_s(now, reset_at))
        await pipe.execute()


def queue_settlement(pipe: Pipeline, admission: Admission, job_id: str, *, tokens_used: int,
                     cost_usd: float, now: datetime) -> None:
    """Queue the settle script on a transaction (a cancelled queued job, a released admission)."""
    keys, args = settlement_call(admission, job_id, tokens_used=tokens_used, cost_usd=cost_usd)
    pipe.eval(SETTLE_SCRIPT, len(keys), *keys, *args)


def settlement_call(admission: Admission, job_id: str, *, tokens_used: int,
                    cost_usd: float) -> tuple[list[str], list[object]]:
    """The keys and arguments of `settle` (shared/lua/settle_fn.lua), also passed inside finish.lua."""
    actual_micros = math.ceil(cost_usd * 1_000_000) if cost_usd > 0 else 0
    keys = [tpm_key(admission.tenant_id), tpm_sum_key(admission.tenant_id), concurrency_key(admission.tenant_id),
            admission.budget_key or budget_key(admission.tenant_id, "all")]
    args: list[object] = [job_id, admission.tokens_estimated, tokens_used, admission.reserved_micros,
                          actual_micros, admission.budget_ttl_s or 86_400]
    return keys, args


def _budget_ttl_s(now: datetime, reset_at: datetime | None) -> int:
    if reset_at is None:
        return 365 * 86_400
    return int((reset_at - now + BUDGET_GRACE).total_seconds())


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
