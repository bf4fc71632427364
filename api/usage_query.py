"""The query parameters of usage reports and of the request log, and their answers, shared by the tenant's
own routes (api/routes/usage.py) and the admin routes (api/routes/admin_usage.py), so both take exactly the
same filters. Without grouping, filters or CSV a report keeps its original shape (`by_day`, `by_model`, ...)."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query, Request, Response
from fastapi.responses import JSONResponse
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.request_log import MAX_PAGE, RequestLogFilters, read_request_log
from shared.db.usage import usage_report
from shared.db.usage_groups import UsageFilters, grouped_usage, parse_group_by, parse_tag_filters, usage_csv

TagQuery = Annotated[list[str] | None, Query(description="key=value; repeat to require several tags")]


@dataclass(frozen=True)
class ReportQuery:
    days: int
    group_by: list[str]
    filters: UsageFilters
    csv: bool


def report_query(
    request: Request,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    group_by: Annotated[str | None, Query(description="day, model, provider, endpoint, status, key, user, "
                                                      "tag:<key>; comma-separated")] = None,
    day: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")] = None,
    model: str | None = None, provider: str | None = None, endpoint: str | None = None,
    status: str | None = None, key: str | None = None, user: str | None = None, tag: TagQuery = None,
    output: Annotated[str | None, Query(alias="format", pattern="^(json|csv)$")] = None,
) -> ReportQuery:
    """`format=csv` or `Accept: text/csv` answers CSV (grouped by day when no group_by is given)."""
    filters = UsageFilters(day=day, model=model, provider=provider, endpoint=endpoint, status=status, key=key,
                           user=user, tags=parse_tag_filters(tag or []))
    wants_csv = output == "csv" or (output is None and "text/csv" in request.headers.get("accept", ""))
    return ReportQuery(days=days, group_by=parse_group_by(group_by), filters=filters, csv=wants_csv)


def log_filters(
    key: str | None = None, user: str | None = None, model: str | None = None, status: str | None = None,
    endpoint: str | None = None, tag: TagQuery = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; inclusive")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; exclusive")] = None,
) -> RequestLogFilters:
    return RequestLogFilters(key=key, user=user, model=model, status=status, endpoint=endpoint,
                             tags=parse_tag_filters(tag or []), since=_utc(since), until=_utc(until))


PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


async def answer_usage(session: AsyncSession, tenant_id: str, query: ReportQuery) -> Response:
    plain = not query.group_by and not query.csv and query.filters == UsageFilters()
    if plain:
        return JSONResponse((await usage_report(session, tenant_id, query.days)).model_dump(mode="json"))
    report = await grouped_usage(session, tenant_id, query.days, query.group_by or (["day"] if query.csv else []),
                                 query.filters)
    if query.csv:
        return Response(usage_csv(report), media_type="text/csv; charset=utf-8", headers={
            "content-disposition": f'attachment; filename="usage-{tenant_id}.csv"'})
    return JSONResponse(report.model_dump(mode="json"))


async def answer_request_log(session: AsyncSession, tenant_id: str, filters: RequestLogFilters, limit: int,
                             cursor: str | None) -> dict[str, object]:
    page = await read_request_log(session, tenant_id, filters, limit=limit, cursor=cursor)
    return page.model_dump(mode="json")


def _utc(value: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC, as the stored times are."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
