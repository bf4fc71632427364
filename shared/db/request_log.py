"""The request log (issue 15): one entry per request that reached the queue or the cache, read from the usage
table, which already holds exactly one row per such request (its `request_id` is the job id, or `hit_...` for a
cache hit); a second table would double every write for the same facts. Filtered and paged newest first by
an opaque cursor for the admin API and the tenant's own API; `prune_usage` enforces the retention period.
Prompt and answer text only for a tenant that opted in (`log_content_days`), in `request_content`, which
expires on its own."""

import base64
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Delete, delete, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.tables import RequestContent, UsageRecord
from shared.errors import InvalidRequest, NotFound

__all__ = ["MAX_PAGE", "PRUNE_BATCH", "RequestContentPublic", "RequestLogDetail", "RequestLogEntry",
           "RequestLogFilters", "RequestLogPage", "prune_usage", "read_request_entry", "read_request_log"]

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


class RequestContentPublic(BaseModel):
    request: dict[str, Any]  # as the job ran it: the gateway's internal request model
    answer: str
    expires_at: datetime


class RequestLogDetail(RequestLogEntry):
    """One entry with its prompt and answer text: None unless the tenant opted in (and it has not expired)."""

    content: RequestContentPublic | None = None


class RequestLogPage(BaseModel):
    object: str = "list"
    data: list[RequestLogEntry]
    has_more: bool
    next_cursor: str | None  # pass as `cursor` for the next (older) page


async def read_request_log(session: AsyncSession, tenant_id: str | None, filters: RequestLogFilters, *,
                           limit: int, cursor: str | None) -> RequestLogPage:
    """The tenant's entries matching `filters`, newest first (in the order they were stored); every tenant's
    for None (the console's operators)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be from 1 to {MAX_PAGE}")
    statement = select(UsageRecord)
    if tenant_id is not None:
        statement = statement.where(col(UsageRecord.tenant_id) == tenant_id)
    for clause in _clauses(filters, session.get_bind().dialect.name):
        statement = statement.where(clause)
    if cursor is not None:
        statement = statement.where(col(UsageRecord.id) < _cursor_id(cursor))
    rows = list(await session.exec(statement.order_by(col(UsageRecord.id).desc()).limit(limit + 1)))
    page, more = rows[:limit], len(rows) > limit
    return RequestLogPage(data=[RequestLogEntry.of(row) for row in page], has_more=more,
                          next_cursor=_encode_cursor(page[-1].id) if more and page[-1].id is not None else None)


async def read_request_entry(session: AsyncSession, tenant_id: str, request_id: str, now: datetime) -> RequestLogDetail:
    """One entry of the tenant's request log, with its content when stored; NotFound for another tenant's."""
    row = (await session.exec(select(UsageRecord).where(col(UsageRecord.request_id) == request_id,
                                                        col(UsageRecord.tenant_id) == tenant_id))).first()
    if row is None:
        raise NotFound(f"No request {request_id!r} in this tenant's request log")
    content = await session.get(RequestContent, request_id)
    stored = content is not None and content.tenant_id == tenant_id and content.expires_at > now
    public = RequestContentPublic(request=content.request, answer=content.answer, expires_at=content.expires_at) \
        if stored and content is not None else None
    return RequestLogDetail(**RequestLogEntry.of(row).model_dump(), content=public)


async def prune_usage(engine: AsyncEngine, usage_before: datetime | None, now: datetime) -> int:
    """Delete usage records (the request log) created before `usage_before` (None keeps them) and request
    content expired at `now`, in batches; how many rows went."""
    removed = 0
    if usage_before is not None:
        usage = select(UsageRecord.id).where(col(UsageRecord.created_at) < usage_before).limit(PRUNE_BATCH)
        removed = await _delete_all(engine, delete(UsageRecord).where(col(UsageRecord.id).in_(usage)))
    content = select(RequestContent.request_id).where(col(RequestContent.expires_at) < now).limit(PRUNE_BATCH)
    return removed + await _delete_all(engine, delete(RequestContent).where(
        col(RequestContent.request_id).in_(content)))


async def _delete_all(engine: AsyncEngine, statement: Delete) -> int:
    removed = 0
    while True:
        async with engine.begin() as connection:
            result = await connection.execute(statement)
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
    """The row id a cursor names; 400 for anything this API did not return: non-ASCII text (base64 refuses it
    with a ValueError), bad base64, or an id outside the id column's int64 range (the database would fail)."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix == "rl" and number.isascii() and number.isdigit() and len(number) <= 18:
            return int(number)
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        pass
    raise InvalidRequest("cursor is not one this API returned", code="invalid_cursor")
