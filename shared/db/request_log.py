"""The request log (issue 15): one entry per request that reached the queue or the cache, read from the usage
table, which already holds exactly one row per such request (its `request_id` is the job id, or `hit_...` for a
cache hit); a second table would double every write for the same facts. Filtered and paged newest first by
an opaque cursor for the admin API and the tenant's own API; `prune_usage` enforces the retention period.
No prompt or answer text is kept here."""

import base64
import binascii
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import ColumnElement, delete, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.tables import UsageRecord
from shared.errors import InvalidRequest

__all__ = ["MAX_PAGE", "PRUNE_BATCH", "RequestLogEntry", "RequestLogFilters", "RequestLogPage", "prune_usage",
           "read_request_log"]

MAX_PAGE = 500
PRUNE_BATCH = 10_000  # rows per DELETE: a long prune never holds one huge lock on the usage table


class RequestLogFilters(BaseModel):
    """Equality filters (None: any); `tags` must all match; `since` inclusive, `until` exclusive."""

    key: str | None = None
    user: str | None = None
    model: str | None = None
    status: str | None = None
    endpoint: str | None = None
    tags: dict[str, str] = {}
    since: datetime | None = None
    until: datetime | None = None


class RequestLogEntry(BaseModel):
    id: str  # the job id (`job_...`), or `hit_...` for an answer served from the cache
    object: str = "request_log.entry"
    created_at: datetime
    tenant_id: str
    key_id: str | None
    user: str | None
    tags: dict[str, str]
    endpoint: str
    model: str  # as the client asked for it
    provider: str
    provider_model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: int
    status: str
    error_code: str | None
    cache_hit: bool
    fallback_used: bool

    @classmethod
    def of(cls, row: UsageRecord) -> "RequestLogEntry":
        return cls(id=row.request_id, created_at=row.created_at, tenant_id=row.tenant_id, key_id=row.key_id,
                   user=row.end_user, tags=row.tags, endpoint=row.endpoint, model=row.public_model,
                   provider=row.provider, provider_model=row.model, prompt_tokens=row.prompt_tokens,
                   completion_tokens=row.completion_tokens, cost_usd=row.cost_usd, latency_ms=row.latency_ms,
                   status=row.status, error_code=row.error_code, cache_hit=row.cache_hit,
                   fallback_used=row.fallback_used)


class RequestLogPage(BaseModel):
    object: str = "list"
    data: list[RequestLogEntry]
    has_more: bool
    next_cursor: str | None  # pass as `cursor` for the next (older) page


async def read_request_log(session: AsyncSession, tenant_id: str, filters: RequestLogFilters, *,
                           limit: int, cursor: str | None) -> RequestLogPage:
    """The tenant's entries matching `filters`, newest first (in the order they were stored)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be from 1 to {MAX_PAGE}")
    statement = select(UsageRecord).where(col(UsageRecord.tenant_id) == tenant_id)
    for clause in _clauses(filters, session.get_bind().dialect.name):
        statement = statement.where(clause)
    if cursor is not None:
        statement = statement.where(col(UsageRecord.id) < _cursor_id(cursor))
    rows = list(await session.exec(statement.order_by(col(UsageRecord.id).desc()).limit(limit + 1)))
    page, more = rows[:limit], len(rows) > limit
    return RequestLogPage(data=[RequestLogEntry.of(row) for row in page], has_more=more,
                          next_cursor=_encode_cursor(page[-1].id) if more and page[-1].id is not None else None)


async def prune_usage(engine: AsyncEngine, before: datetime) -> int:
    """Delete usage records (the request log) created before `before`, in batches; how many went."""
    removed = 0
    while True:
        oldest = select(UsageRecord.id).where(col(UsageRecord.created_at) < before).limit(PRUNE_BATCH)
        async with engine.begin() as connection:
            result = await connection.execute(delete(UsageRecord).where(col(UsageRecord.id).in_(oldest)))
        removed += result.rowcount
        if result.rowcount < PRUNE_BATCH:
            return removed


def _clauses(filters: RequestLogFilters, dialect: str) -> list[ColumnElement[bool]]:
    equal = {"key": col(UsageRecord.key_id), "user": col(UsageRecord.end_user),
             "model": col(UsageRecord.public_model), "status": col(UsageRecord.status),
             "endpoint": col(UsageRecord.endpoint)}
    values = filters.model_dump(include=set(equal))
    clauses = [equal[name] == value for name, value in values.items() if value is not None]
    if filters.since is not None:
        clauses.append(col(UsageRecord.created_at) >= filters.since)
    if filters.until is not None:
        clauses.append(col(UsageRecord.created_at) < filters.until)
    if filters.tags and dialect == "postgresql":
        clauses.append(type_coerce(col(UsageRecord.tags), JSONB).contains(filters.tags))  # GIN-indexed
    elif filters.tags:
        clauses.extend(col(UsageRecord.tags)[key].as_string() == value for key, value in filters.tags.items())
    return clauses


def _encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"rl:{row_id}".encode()).decode().rstrip("=")


def _cursor_id(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix == "rl" and number.isascii() and number.isdigit():
            return int(number)
    except (binascii.Error, UnicodeDecodeError):
        pass
    raise InvalidRequest("cursor is not one this API returned", code="invalid_cursor")
