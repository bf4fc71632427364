"""Seeding a spend counter for a budget period from what was really spent, and resetting the counters when an
admin changes a budget. A counter is a tenant's or one of its API keys' (issue 15: usage records carry the key
id, so a key's counter is seeded from its own records exactly as the tenant's is from all of them). The API
seeds on admission when the counter is missing (a new period, a changed budget, Redis lost); the admin API and
the CLI reset. Knows the usage record, not the wire formats.

A job's cost is in exactly one of three places when the seed opens: already added to the counter (it settled
later), still in the usage stream (not yet written), or in the database. The seed counts the stream up to
the entry that was newest when it opened, and the database without those entries' rows or the rows of jobs
that settled since (which the counter has): nothing is missed or counted twice (shared/lua/seed_*.lua)."""

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.budget_alerts import mirror_budget_alerts
from shared.db.tables import UsageRecord
from shared.keys import USAGE_STREAM
from shared.limits import SeedTicket, close_seed, late_settlements, open_seed, period_start, spend_keys

__all__ = ["SpendScope", "reset_budget_counters", "seed_spend"]

STREAM_PAGE = 1000
ID_CHUNK = 500  # request ids per IN (...) query: within SQLite's and asyncpg's parameter limits
# Recounts while jobs keep settling during a seed; then it commits counting those few twice (refusing early).
SEED_ATTEMPTS = 5


@dataclass(frozen=True)
class SpendScope:
    """Whose spend a counter holds: the tenant's (`key_id` None), or one API key's of the tenant. The counter
    is named by its owner (shared/limits.py spend_key); the records are the tenant's, filtered by key id."""

    tenant_id: str
    key_id: str | None = None

    @property
    def owner(self) -> str:
        return self.key_id if self.key_id is not None else self.tenant_id

    def holds(self, row: dict[str, object]) -> bool:
        """Whether a usage stream row is this scope's spend."""
        if row.get("tenant_id") != self.tenant_id:
            return False
        return self.key_id is None or row.get("key_id") == self.key_id


async def seed_spend(redis: Redis, sessions: async_sessionmaker[AsyncSession], tenant_id: str, period: str,
                     now: datetime, *, key_id: str | None = None) -> None:
    """Make sure the spend counter for `period` at `now` of the tenant, or with `key_id` of that API key,
    holds everything spent in that period."""
    scope = SpendScope(tenant_id, key_id)
    ticket = await open_seed(redis, scope.owner, period, now)
    if ticket.ready:
        return
    await _count_into(redis, sessions, ticket, scope, period, now)
    # A seed means a new period, a changed budget or lost Redis data: the owner's budget-alert mirror is
    # refreshed too (the tenant's, or the key's own).
    async with sessions() as session:
        await mirror_budget_alerts(redis, session, tenant_id, now, key_id=key_id)


async def _count_into(redis: Redis, sessions: async_sessionmaker[AsyncSession], ticket: SeedTicket,
                      scope: SpendScope, period: str, now: datetime) -> None:
    start = period_start(period, now)
    streamed_micros, streamed_ids = await _stream_spend(redis, ticket, scope, start)
    for _ in range(SEED_ATTEMPTS):
        late = await late_settlements(redis, ticket)
        recorded_micros = await _recorded_spend(sessions, scope, start, streamed_ids | late)
        committed = await close_seed(redis, ticket, streamed_micros + recorded_micros, late)
        if committed is not None:
            return
    await close_seed(redis, ticket, streamed_micros + recorded_micros, None)


async def reset_budget_counters(redis: Redis, owner: str, now: datetime) -> None:
    """Drop the spend counters of the current periods of a tenant, or of an API key (`owner`: its id): the next
    request with a budget seeds its period's from the usage records, whatever was counted before (a changed
    budget or period starts right)."""
    await redis.delete(*spend_keys(owner, now))


async def _stream_spend(redis: Redis, ticket: SeedTicket, scope: SpendScope,
                        start: datetime | None) -> tuple[int, set[str]]:
    """The scope's cost in the usage stream's entries up to the seed's, in micro-dollars as settlement
    rounds them (each record rounded up), and those records' job ids."""
    since = start.timestamp() if start is not None else float("-inf")
    total, ids = 0, set()
    low = "-"
    while True:
        entries = await redis.xrange(USAGE_STREAM, min=low, max=ticket.last_usage_id, count=STREAM_PAGE)
        for entry_id, fields in entries:
            row = _row(fields)
            if row is not None and scope.holds(row) and _number(row.get("created_at")) >= since:
                total += math.ceil(_number(row.get("cost_usd")) * 1_000_000)
                ids.add(str(row.get("request_id")))
            low = f"({entry_id.decode() if isinstance(entry_id, bytes) else entry_id}"
        if len(entries) < STREAM_PAGE:
            return total, ids


async def _recorded_spend(sessions: async_sessionmaker[AsyncSession], scope: SpendScope, start: datetime | None,
                          exclude: set[str]) -> int:
    """The scope's cost in the database since `start`, without the records of `exclude`, in micro-dollars."""
    async with sessions() as session:
        total = await _sum_cost(session, scope, start, None)
        for chunk in _chunks(sorted(exclude), ID_CHUNK):
            total -= await _sum_cost(session, scope, start, chunk)
    return max(0, math.ceil(round(total * 1_000_000, 3)))


async def _sum_cost(session: AsyncSession, scope: SpendScope, start: datetime | None,
                    request_ids: list[str] | None) -> float:
    statement = select(func.coalesce(func.sum(col(UsageRecord.cost_usd)), 0.0)).where(
        col(UsageRecord.tenant_id) == scope.tenant_id)
    if scope.key_id is not None:  # (tenant_id, key_id) is indexed: ix_usage_record_tenant_key
        statement = statement.where(col(UsageRecord.key_id) == scope.key_id)
    if start is not None:
        statement = statement.where(col(UsageRecord.created_at) >= start)
    if request_ids is not None:
        statement = statement.where(col(UsageRecord.request_id).in_(request_ids))
    return float(await session.scalar(statement) or 0.0)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for index in range(0, len(items), size):
        yield items[index:index + size]


def _row(fields: dict[bytes, bytes]) -> dict[str, object] | None:
    try:
        row = json.loads(fields[b"row"])
    except (KeyError, ValueError):
        return None  # a malformed entry: the usage writer sets it aside, it was never billed
    return row if isinstance(row, dict) else None


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
