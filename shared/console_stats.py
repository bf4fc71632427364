"""Read-only views of the usage table for the admin console: requests, failures, cost, latency and cache hits per
time bucket, top tenants and models, and recent failures and fallbacks, for one tenant or the whole gateway.
Aggregated in SQL, on PostgreSQL and SQLite alike; nothing here writes."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import ColumnElement, case, func, literal_column, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from shared.db.tables import Tenant, UsageRecord

__all__ = ["Bucket", "Problem", "SeriesPoint", "TopEntry", "recent_problems", "top_models", "top_tenants",
           "usage_series"]

Bucket = Literal["hour", "day"]
_FORMATS: dict[Bucket, tuple[str, str]] = {"hour": ("YYYY-MM-DD\"T\"HH24", "%Y-%m-%dT%H"),
                                           "day": ("YYYY-MM-DD", "%Y-%m-%d")}


Rows = Select[*tuple[Any, ...]]


class SeriesPoint(BaseModel):
    bucket: str  # UTC: `YYYY-MM-DD` or `YYYY-MM-DDTHH`
    requests: int
    failed: int
    cost_usd: float
    latency_ms: float  # mean over the bucket's requests
    cache_hits: int


class TopEntry(BaseModel):
    key: str  # a tenant id or a public model name
    label: str
    requests: int
    cost_usd: float


class Problem(BaseModel):
    created_at: datetime
    tenant_id: str
    request_id: str
    public_model: str
    provider: str
    model: str
    status: str
    error_code: str | None
    fallback_used: bool


async def usage_series(session: AsyncSession, tenant_id: str | None, since: datetime,
                       bucket: Bucket) -> list[SeriesPoint]:
    """One point per bucket that has usage since `since`, oldest first (empty buckets are the caller's)."""
    key = _bucket_column(session.get_bind().dialect.name, bucket).label("bucket")
    statement: Rows = Select(
        key,
        func.count().label("requests"),
        func.coalesce(func.sum(case((col(UsageRecord.status) == "failed", 1), else_=0)), 0).label("failed"),
        func.coalesce(func.sum(col(UsageRecord.cost_usd)), 0.0).label("cost_usd"),
        func.coalesce(func.avg(col(UsageRecord.latency_ms)), 0.0).label("latency_ms"),
        func.coalesce(func.sum(case((col(UsageRecord.cache_hit), 1), else_=0)), 0).label("cache_hits"),
    ).select_from(UsageRecord)
    statement = _scoped(statement, tenant_id, since).group_by(key).order_by(key)
    names = statement.selected_columns.keys()
    return [SeriesPoint.model_validate(dict(zip(names, row, strict=True))) for row in await session.exec(statement)]


async def top_tenants(session: AsyncSession, since: datetime, limit: int) -> list[TopEntry]:
    """The tenants with the most spend since `since` (then the most requests), with their names."""
    cost = func.coalesce(func.sum(col(UsageRecord.cost_usd)), 0.0)
    statement: Rows = (
        Select(col(UsageRecord.tenant_id), func.coalesce(func.max(col(Tenant.name)), col(UsageRecord.tenant_id)),
               func.count(), cost)
        .select_from(UsageRecord)
        .join(Tenant, col(Tenant.id) == col(UsageRecord.tenant_id), isouter=True)
        .where(col(UsageRecord.created_at) >= since)
        .group_by(col(UsageRecord.tenant_id))
        .order_by(cost.desc(), func.count().desc())
        .limit(limit)
    )
    return [TopEntry(key=row[0], label=row[1], requests=row[2], cost_usd=row[3])
            for row in await session.exec(statement)]


async def top_models(session: AsyncSession, tenant_id: str | None, since: datetime, limit: int) -> list[TopEntry]:
    """The public model names with the most requests since `since`."""
    statement: Rows = Select(col(UsageRecord.public_model), func.count(),
                             func.coalesce(func.sum(col(UsageRecord.cost_usd)), 0.0)).select_from(UsageRecord)
    statement = _scoped(statement, tenant_id, since).group_by(col(UsageRecord.public_model))
    statement = statement.order_by(func.count().desc()).limit(limit)
    return [TopEntry(key=row[0], label=row[0], requests=row[1], cost_usd=row[2])
            for row in await session.exec(statement)]


async def recent_problems(session: AsyncSession, tenant_id: str | None, since: datetime,
                          limit: int) -> list[Problem]:
    """The newest failed requests and requests served by fallback: what a provider's trouble looks like."""
    statement = select(UsageRecord).where(col(UsageRecord.created_at) >= since).where(
        or_(col(UsageRecord.status) == "failed", col(UsageRecord.fallback_used)))
    if tenant_id is not None:
        statement = statement.where(col(UsageRecord.tenant_id) == tenant_id)
    statement = statement.order_by(col(UsageRecord.created_at).desc()).limit(limit)
    return [Problem.model_validate(row, from_attributes=True) for row in await session.exec(statement)]


def _scoped(statement: Rows, tenant_id: str | None, since: datetime) -> Rows:
    statement = statement.where(col(UsageRecord.created_at) >= since)
    if tenant_id is not None:
        statement = statement.where(col(UsageRecord.tenant_id) == tenant_id)
    return statement


def _bucket_column(dialect: str, bucket: Bucket) -> ColumnElement[str]:
    postgres_format, sqlite_format = _FORMATS[bucket]
    if dialect == "postgresql":
        # Literals, not bind parameters: PostgreSQL must see the SELECT and GROUP BY expressions as identical.
        utc_time = func.timezone(literal_column("'UTC'"), col(UsageRecord.created_at))
        return func.to_char(utc_time, literal_column(f"'{postgres_format}'"))
    return func.strftime(literal_column(f"'{sqlite_format}'"), col(UsageRecord.created_at))
