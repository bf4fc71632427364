"""Usage reports grouped and filtered by any dimension of a usage record (issue 15): day, model, provider,
endpoint, status, key, end user and tag (`tag:<key>`), plus CSV export. The admin API, the tenant API and the
CLI all call `grouped_usage`. Money is summed as integer nano-dollars, the unit every cost is stored in
(shared.pricing.COST_DECIMALS), so the groups of a report add up exactly to its totals and to the plain
report's (float sums in a different order would not; micro-dollars rounded per record would not either, a
request costing a fraction of a micro-dollar)."""

import csv
import io
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    Subquery,
    case,
    func,
    literal_column,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from shared.db.tables import UsageRecord, utc_now
from shared.db.usage import NANOS_PER_USD, nanos
from shared.errors import InvalidRequest

__all__ = [
    "DIMENSIONS",
    "MAX_GROUPS",
    "GroupedTotals",
    "GroupedUsage",
    "UsageFilters",
    "grouped_usage",
    "parse_group_by",
    "parse_tag_filters",
    "usage_csv",
]

# Dimension name -> the usage record's column; `tag:<key>` is a dimension too.
DIMENSIONS: dict[str, str] = {"day": "", "model": "public_model", "provider": "provider", "endpoint": "endpoint",
                              "status": "status", "key": "key_id", "user": "end_user"}
TAG_PREFIX = "tag:"
TAG_KEY = re.compile(r"[^,=]{1,64}")
MAX_GROUPS = 10_000  # a report with more is refused (narrow the filters), never cut short
SUMMED = 7  # the summed columns `_measures` selects, ahead of the dimensions
MEASURES = ("requests", "prompt_tokens", "completion_tokens", "cost_nanos", "cost_usd", "cache_hits",
            "saved_cost_nanos", "failed")


class GroupedTotals(BaseModel):
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_nanos: int = 0
    cost_usd: float = 0.0
    cache_hits: int = 0
    saved_cost_nanos: int = 0
    failed: int = 0


class UsageFilters(BaseModel):
    """Equality filters; None is no filter. `tags` must all match (`tag=team=search&tag=env=prod`)."""

    day: str | None = None
    model: str | None = None
    provider: str | None = None
    endpoint: str | None = None
    status: str | None = None
    key: str | None = None
    user: str | None = None
    tags: dict[str, str] = {}


class GroupedUsage(BaseModel):
    """`groups` hold each dimension's value (None: the record has none, e.g. no user) and their totals."""

    tenant_id: str
    days: int
    group_by: list[str]
    filters: UsageFilters
    totals: GroupedTotals
    groups: list[dict[str, Any]]


def parse_group_by(raw: str | None) -> list[str]:
    """`day,key,tag:team` -> ["day", "key", "tag:team"]; an unknown dimension is a 400 naming it."""
    names = [name.strip() for name in (raw or "").split(",") if name.strip()]
    for name in names:
        tag = name.removeprefix(TAG_PREFIX)
        if name not in DIMENSIONS and not (name.startswith(TAG_PREFIX) and TAG_KEY.fullmatch(tag)):
            raise InvalidRequest(f"group_by: unknown dimension {name!r}; use {', '.join(DIMENSIONS)} or "
                                 f"tag:<key>", code="invalid_group_by")
    if len(set(names)) != len(names):
        raise InvalidRequest("group_by names a dimension twice", code="invalid_group_by")
    return names


def parse_tag_filters(values: Sequence[str]) -> dict[str, str]:
    """`["team=search", "env=prod"]` -> {"team": "search", "env": "prod"}."""
    tags: dict[str, str] = {}
    for value in values:
        key, separator, wanted = value.partition("=")
        if not separator or not TAG_KEY.fullmatch(key) or key in tags:
            raise InvalidRequest(f"tag filter must be key=value with each key once, not {value!r}",
                                 code="invalid_tags")
        tags[key] = wanted
    return tags


async def grouped_usage(session: AsyncSession, tenant_id: str, days: int, group_by: list[str],
                        filters: UsageFilters) -> GroupedUsage:
    """The tenant's usage of the last `days` x 24 hours matching `filters`: totals, and one group per distinct
    combination of the `group_by` dimensions, ordered by them."""
    if days < 1:
        raise InvalidRequest("days must be at least 1")
    dialect = session.get_bind().dialect.name
    rows = _rows(tenant_id, utc_now() - timedelta(days=days), group_by, filters, dialect)
    dims = [rows.c[f"d{i}"] for i in range(len(group_by))]
    totals: Select[*tuple[Any, ...]] = Select(*_measures(rows))
    statement: Select[*tuple[Any, ...]] = (
        Select(*_measures(rows), *dims).group_by(*dims).order_by(*(dim.asc().nulls_last() for dim in dims)))
    found = list(await session.exec(statement.limit(MAX_GROUPS + 1)))
    if len(found) > MAX_GROUPS:
        raise InvalidRequest(f"More than {MAX_GROUPS} groups: narrow the filters or the group_by",
                             code="too_many_groups")
    groups = [{**dict(zip(group_by, row[SUMMED:], strict=True)), **_totals(row).model_dump()}
              for row in found]
    return GroupedUsage(tenant_id=tenant_id, days=days, group_by=group_by, filters=filters,
                        totals=_totals((await session.exec(totals)).one()), groups=groups)


def usage_csv(report: GroupedUsage) -> str:
    """One line per group: its dimensions, then its totals; an empty cell is a record without that value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*report.group_by, *MEASURES])
    for group in report.groups:
        writer.writerow(["" if group[name] is None else group[name] for name in (*report.group_by, *MEASURES)])
    return out.getvalue()


def day_expression(dialect: str) -> ColumnElement[str]:
    """The UTC calendar day of a record, as `YYYY-MM-DD`."""
    created = col(UsageRecord.created_at)
    if dialect == "postgresql":
        return func.to_char(func.timezone(literal_column("'UTC'"), created), literal_column("'YYYY-MM-DD'"))
    return func.strftime(literal_column("'%Y-%m-%d'"), created)  # SQLite stores the UTC time as text


def _dimension(name: str, dialect: str) -> SQLColumnExpression[Any]:
    if name == "day":
        return day_expression(dialect)
    if name.startswith(TAG_PREFIX):
        tag: SQLColumnExpression[Any] = col(UsageRecord.tags)[name.removeprefix(TAG_PREFIX)].as_string()
        return tag
    columns: dict[str, SQLColumnExpression[Any]] = {
        "model": col(UsageRecord.public_model), "provider": col(UsageRecord.provider),
        "endpoint": col(UsageRecord.endpoint), "status": col(UsageRecord.status), "key": col(UsageRecord.key_id),
        "user": col(UsageRecord.end_user)}
    return columns[name]


def _rows(tenant_id: str, since: datetime, group_by: list[str], filters: UsageFilters, dialect: str) -> Subquery:
    """Each matching record's measures and its dimensions `d0..dn`: grouping the subquery's plain columns
    keeps PostgreSQL from seeing a bound JSON path in SELECT and GROUP BY as two different expressions."""
    record = UsageRecord
    statement: Select[*tuple[Any, ...]] = Select(
        literal_column("1").label("request"), col(record.prompt_tokens), col(record.completion_tokens),
        nanos(col(record.cost_usd)).label("cost_nanos"),
        case((col(record.cache_hit), 1), else_=0).label("cache_hit"),
        nanos(col(record.saved_cost_usd)).label("saved_cost_nanos"),
        case((col(record.status) == "failed", 1), else_=0).label("failed"),
        *(_dimension(name, dialect).label(f"d{i}") for i, name in enumerate(group_by)),
    ).where(col(record.tenant_id) == tenant_id, col(record.created_at) >= since)
    for clause in _filter_clauses(filters, dialect):
        statement = statement.where(clause)
    return statement.subquery()


def _filter_clauses(filters: UsageFilters, dialect: str) -> list[ColumnElement[bool]]:
    clauses = [_dimension(name, dialect) == value
               for name, value in filters.model_dump(exclude={"tags"}).items() if value is not None]
    if filters.tags and dialect == "postgresql":
        # Containment, which the GIN index on tags serves.
        clauses.append(type_coerce(col(UsageRecord.tags), JSONB).contains(filters.tags))
    elif filters.tags:
        clauses.extend(_dimension(TAG_PREFIX + key, dialect) == value for key, value in filters.tags.items())
    return clauses


def _measures(rows: Subquery) -> list[ColumnElement[Any]]:
    def total(name: str) -> ColumnElement[Any]:
        return func.coalesce(func.sum(rows.c[name]), 0)

    return [total("request").label("requests"), total("prompt_tokens"), total("completion_tokens"),
            total("cost_nanos"), total("cache_hit"), total("saved_cost_nanos"), total("failed")]


def _totals(row: Sequence[Any]) -> GroupedTotals:
    requests, prompt, completion, cost_nanos, hits, saved_nanos, failed = (int(value) for value in row[:SUMMED])
    return GroupedTotals(requests=requests, prompt_tokens=prompt, completion_tokens=completion,
                         cost_nanos=cost_nanos, cost_usd=cost_nanos / NANOS_PER_USD, cache_hits=hits,
                         saved_cost_nanos=saved_nanos, failed=failed)
