"""Tenant limits enforced in Redis for every API process at once: requests and tokens per minute (sliding
window logs: exact, never 2x at a window boundary), concurrent jobs, and a USD budget per period that a
request reserves at its worst-case cost. Admission is one Lua script (all or nothing); settlement runs
inside the job's terminal transaction, so it happens exactly once.

Budget counters: the spend of each period (day, week, month, all time) of each tenant, added to at every
settlement whether or not a budget uses that period, so a changed budget or period finds its spend; and the
tenant's reservations in flight (holds), apart from any period. A missing spend counter is seeded from the
usage records: `open_seed` and `close_seed` here, the reading in shared/budget.py."""

import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.keys import (
    USAGE_STREAM,
    budget_holds_key,
    budget_holds_sum_key,
    concurrency_key,
    rpm_key,
    spend_key,
    tpm_key,
    tpm_sum_key,
)
from shared.pending_writes import PendingWrites
from shared.scripts import LuaScript, lua_source

__all__ = [
    "PERIODS",
    "SETTLE_ARGS",
    "SETTLE_KEYS",
    "UNBOUNDED_RESERVE_MICROS",
    "Admission",
    "AdmissionResult",
    "Budget",
    "KeyLimits",
    "LimitRequest",
    "SeedTicket",
    "admission_of",
    "admit",
    "budget_period",
    "close_seed",
    "late_settlements",
    "open_seed",
    "period_start",
    "queue_settlement",
    "seed_budget",
    "settlement_call",
    "spend_keys",
]

ADMIT = LuaScript(lua_source("admit_fn.lua", "admit.lua"))
ADMIT_CREATE = LuaScript(lua_source("admit_fn.lua", "admit_create.lua"))
ADMIT_KEYS = 16
SEED_OPEN = LuaScript(lua_source("seed_open.lua"))
SEED_CLOSE = LuaScript(lua_source("seed_close.lua"))
SETTLE_SCRIPT = lua_source("settle_fn.lua", "settle.lua")
SETTLE_KEYS, SETTLE_ARGS = 18, 7
BUDGET_GRACE = timedelta(days=7)
PERIODS = ("daily", "weekly", "monthly", "none")
# The reservation of a request whose cost has no known bound: more than any budget (at most $1e9, 1e15 micros).
UNBOUNDED_RESERVE_MICROS = 2**50
LATE_PREFIX = "late:"


class Admission(BaseModel):
    """What a job holds after admission, so that its end can settle it (kept in the job record).
    `budgeted`: the tenant had a budget, so the job must not answer past what was reserved for it."""

    tenant_id: str
    tokens_estimated: int = 0
    tpm_limit: int = 0
    concurrency: bool = False
    reserved_micros: int = 0
    budgeted: bool = False
    # The API key whose own counters the admission moved (issue 15); None for records from before keys had them.
    key_id: str | None = None
    key_tokens_estimated: int = 0
    # Whether the key's concurrency slots counted this job; None in records from before this was kept (then its
    # settlement frees a slot in any case, as it always did).
    key_concurrency: bool | None = None


@dataclass(frozen=True)
class Budget:
    limit_usd: float
    period: str

    @property
    def limit_micros(self) -> int:
        return int(self.limit_usd * 1_000_000)


@dataclass(frozen=True)
class KeyLimits:
    """An API key's own limits, counted under its id inside the tenant's (0: none of that kind)."""

    key_id: str
    rpm_limit: int = 0
    tpm_limit: int = 0
    concurrency_limit: int = 0
    budget: Budget | None = None


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
    reserve_usd: float | None  # None: no known bound (UNBOUNDED_RESERVE_MICROS)
    # How long a reservation is held at most: past it the job can no longer end (its record is gone).
    hold_expiry_s: float = 86_400.0
    # Backpressure: refuse ('queue_full') when these two ready sets hold `queue_limit` jobs (0: never).
    queue_keys: tuple[str, str] | None = None
    queue_limit: int = 0
    key: KeyLimits | None = None


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
    key_budget_unseeded: bool = False
    budget_used_micros: int | None = None

    @property
    def budget_used_usd(self) -> float | None:
        return self.budget_used_micros / 1_000_000 if self.budget_used_micros is not None else None


@dataclass(frozen=True)
class SeedTicket:
    """An open seed of one spend counter. Settlements up to `last_usage_id` in the usage stream are the seed's
    to count; later ones add to the counter themselves (and are noted as late)."""

    key: str
    token: str
    last_usage_id: str
    ready: bool


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


async def admit(redis: Redis, request: LimitRequest, now: datetime,
                create: Callable[[Admission], PendingWrites] | None = None) -> AdmissionResult:
    """Run the admission script. Every request with a cost records a hold (the reservation in flight),
    budget or not, so that a budget set while it runs counts it; so does its API key's. With `create`, the
    writes it returns for the admission (the job's creation) run in the same script when it admits, and only
    then (shared/lua/admit_create.lua)."""
    spend = _spend_of(request.tenant_id, request.budget, now)
    reserve_micros = _micros(request.reserve_usd)
    admission = admission_of(request)
    now_ms = int(now.timestamp() * 1000)
    keys = [*_owner_keys(request.tenant_id, spend)[:5], *(request.queue_keys or (spend, spend)),
            budget_holds_key(request.tenant_id), budget_holds_sum_key(request.tenant_id)]
    key = request.key
    keys += _owner_keys(key.key_id, _spend_of(key.key_id, key.budget, now)) if key else keys[:7]
    args = [now_ms, request.rpm_limit, request.tpm_limit, request.tokens, request.concurrency_limit, request.job_id,
            int(request.concurrency_expiry_s * 1000), request.budget.limit_micros if request.budget else -1,
            reserve_micros, int(request.hold_expiry_s * 1000), request.queue_limit if request.queue_keys else 0,
            *_key_args(key)]
    if create is None:
        reply = _items(await ADMIT.run(redis, keys, args), "admit.lua")
    else:
        write_keys, write_args = create(admission).script_args(first_key=ADMIT_KEYS + 1)
        reply = _items(await ADMIT_CREATE.run(redis, keys + write_keys, args + write_args), "admit_create.lua")
    allowed, reason, wait_ms, rpm_rem, rpm_reset, tpm_rem, tpm_reset, budget_state, budget_used = reply
    return AdmissionResult(
        allowed=bool(allowed), reason=_text(reason), retry_after_s=_int(wait_ms) / 1000,
        rpm_remaining=_int(rpm_rem), rpm_reset_s=_int(rpm_reset) / 1000, tpm_remaining=_int(tpm_rem),
        tpm_reset_s=_int(tpm_reset) / 1000, budget_unseeded=_text(budget_state) == "missing", admission=admission,
        budget_used_micros=_int(budget_used) if _int(budget_used) >= 0 else None,
        key_budget_unseeded=_text(budget_state) == "key_missing",
    )


def admission_of(request: LimitRequest) -> Admission:
    """What the job holds once `request` is admitted: known before the script runs, so the job record written
    with the admission can carry it."""
    key = request.key
    return Admission(
        tenant_id=request.tenant_id, tokens_estimated=request.tokens if request.tpm_limit else 0,
        tpm_limit=request.tpm_limit, concurrency=request.concurrency_limit > 0,
        reserved_micros=_micros(request.reserve_usd),
        budgeted=request.budget is not None or bool(key and key.budget),
        key_id=key.key_id if key else None, key_tokens_estimated=request.tokens if key and key.tpm_limit else 0,
        key_concurrency=bool(key and key.concurrency_limit > 0),
    )


def _spend_of(owner: str, budget: Budget | None, now: datetime) -> str:
    return spend_key(owner, budget_period(budget.period if budget else "none", now)[0])


def _owner_keys(owner: str, spend: str) -> list[str]:
    """An owner's (tenant's or key's) counters in admit.lua's order: requests, tokens, token sum, slots, spend,
    holds, holds sum."""
    return [rpm_key(owner), tpm_key(owner), tpm_sum_key(owner), concurrency_key(owner), spend,
            budget_holds_key(owner), budget_holds_sum_key(owner)]


def _key_args(key: KeyLimits | None) -> list[int]:
    if key is None:
        return [0, 0, 0, 0, -1]
    return [1, key.rpm_limit, key.tpm_limit, key.concurrency_limit, key.budget.limit_micros if key.budget else -1]


def spend_keys(tenant_id: str, now: datetime) -> list[str]:
    """The tenant's spend counters of the day, week, month and all time that `now` falls in."""
    return [spend_key(tenant_id, budget_period(period, now)[0]) for period in PERIODS]


async def open_seed(redis: Redis, owner: str, period: str, now: datetime) -> SeedTicket:
    """Start seeding the period's spend counter of `owner` (a tenant id, or an API key id: settle_fn.lua notes
    late settlements on both), or join a seed under way (a seeder that died is finished by the next). From
    here on, settlements add to the counter; admission waits for the seed to close."""
    period_id, reset_at = budget_period(period, now)
    key = spend_key(owner, period_id)
    reply = await SEED_OPEN.run(redis, [key, USAGE_STREAM], [uuid.uuid4().hex, _budget_ttl_s(now, reset_at)])
    state, token, last_id = (_text(part) for part in _items(reply, "seed_open.lua"))
    return SeedTicket(key=key, token=token, last_usage_id=last_id, ready=state == "ready")


async def late_settlements(redis: Redis, ticket: SeedTicket) -> set[str]:
    """Job ids settled since the seed opened: their cost is in the counter already."""
    # redis-py's asyncio client shares the sync client's annotations (`Awaitable[list] | list`).
    fields = await cast("Awaitable[list[bytes]]", redis.hkeys(ticket.key))
    names = (_text(field) for field in fields)
    return {name.removeprefix(LATE_PREFIX) for name in names if name.startswith(LATE_PREFIX)}


async def close_seed(redis: Redis, ticket: SeedTicket, spent_micros: int, late: set[str] | None) -> bool | None:
    """Add what was spent before the seed opened and end the seed. With `late`, only if no job settled since
    the caller read it (None means commit regardless). True when committed; False when another seeder
    committed, or the counter was reset; None when a job settled meanwhile (read `late` again and retry)."""
    count = -1 if late is None else len(late)
    committed = _int(await SEED_CLOSE.run(redis, [ticket.key], [ticket.token, spent_micros, count]))
    return None if committed < 0 else committed == 1


async def seed_budget(redis: Redis, owner: str, period: str, now: datetime, spent_usd: float) -> None:
    """Seed a period's spend counter with a known amount (tests and tools; the API reads the usage records)."""
    ticket = await open_seed(redis, owner, period, now)
    if not ticket.ready:
        await close_seed(redis, ticket, math.ceil(spent_usd * 1_000_000), None)


def queue_settlement(pipe: Pipeline, admission: Admission, job_id: str, *, tokens_used: int,
                     cost_usd: float, now: datetime) -> None:
    """Queue the settle script on a transaction (a cancelled queued job, a released admission)."""
    keys, args = settlement_call(admission, job_id, tokens_used=tokens_used, cost_usd=cost_usd, now=now)
    # redis-py annotates `eval`'s keys and arguments as `str`, but its encoder takes int and float as well
    # (the other `*keys_and_args` commands say `EncodableT`).
    pipe.eval(SETTLE_SCRIPT, len(keys), *keys, *args)  # type: ignore[arg-type]


def settlement_call(admission: Admission, job_id: str, *, tokens_used: int, cost_usd: float,
                    now: datetime | None = None) -> tuple[list[str], list[str | int]]:
    """The keys and arguments of `settle` (shared/lua/settle_fn.lua), also passed inside finish.lua. The cost
    counts as spent in the periods `now` falls in, by the tenant and by the key its admission counted."""
    actual_micros = math.ceil(cost_usd * 1_000_000) if cost_usd > 0 else 0
    when = now or datetime.now(UTC)
    keys = _settled_keys(admission.tenant_id, when, admission.concurrency)
    keys += _settled_keys(admission.key_id, when, admission.key_concurrency is not False) if admission.key_id else keys
    args: list[str | int] = [job_id, admission.tokens_estimated, tokens_used, admission.reserved_micros, actual_micros,
                             1 if admission.key_id else 0, admission.key_tokens_estimated]
    return keys, args


def _settled_keys(owner: str, now: datetime, slot_counted: bool) -> list[str]:
    """An owner's keys in settle_fn.lua's order. A job its concurrency slots did not count (no limit when it was
    admitted) passes the tokens log again in the slots' place: settle_fn.lua then has no slot to free."""
    slots = concurrency_key(owner) if slot_counted else tpm_key(owner)
    return [tpm_key(owner), tpm_sum_key(owner), slots, budget_holds_key(owner), budget_holds_sum_key(owner),
            *spend_keys(owner, now)]


def _micros(usd: float | None) -> int:
    return UNBOUNDED_RESERVE_MICROS if usd is None else math.ceil(usd * 1_000_000)


def _budget_ttl_s(now: datetime, reset_at: datetime | None) -> int:
    if reset_at is None:
        return 365 * 86_400
    return int((reset_at - now + BUDGET_GRACE).total_seconds())


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: object) -> int:
    """An integer of a script's reply (Redis gives Lua numbers as int; a string number is taken too)."""
    if isinstance(value, int | str | bytes):
        return int(value)
    raise RuntimeError(f"a Lua script answered {value!r} where a number was due")


def _items(reply: object, script: str) -> list[object]:
    """A script's reply that is a Lua table."""
    if not isinstance(reply, list):
        raise RuntimeError(f"{script} answered {reply!r}")
    return reply
