"""Console pages over the usage table: the overview (the last 24 hours by hour: requests, errors, cost, latency,
cache hits, with top tenants and models) and a tenant's usage by day, model, provider, endpoint, key, end user
and (when a tag key is given) tag, with charts and a CSV export (the reports of
`GET /api/v1/admin/tenants/{id}/usage`, plain and with `group_by=key`, `user`, `tag:<key>`)."""

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.console.auth import SessionUser, require_all_tenants
from api.console.charts import Chart, bar_chart, day_buckets, hour_buckets
from api.console.pages import ConsoleRoute, format_count, format_money, render
from api.deps import SessionDep
from shared.api_keys import list_keys
from shared.attribution import TAG_KEY
from shared.console_sessions import ConsoleSession
from shared.console_stats import SeriesPoint, top_models, top_tenants, usage_series
from shared.db.usage import NANOS_PER_USD, UsageReport, usage_report
from shared.db.usage_groups import UsageFilters, grouped_usage
from shared.errors import InvalidRequest, NotFound
from shared.tenants import get_tenant, list_tenants

router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)

Days = Annotated[int, Query(ge=1, le=366)]
TagKey = Annotated[str, Query(max_length=64)]
CSV_COLUMNS = ("requests", "prompt_tokens", "completion_tokens", "cost_usd", "cache_hits", "saved_cost_usd", "failed")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
Section = tuple[str, str, list[dict[str, object]]]


@router.get("/")
async def read_overview(request: Request, user: SessionUser, db: SessionDep) -> Response:
    now = datetime.now(UTC)
    since = now - timedelta(hours=24)
    series = await usage_series(db, user.tenant_id, since, "hour")
    charts = _series_charts(series, hour_buckets(now, 24))
    totals = {"requests": sum(p.requests for p in series), "failed": sum(p.failed for p in series),
              "cost_usd": sum(p.cost_usd for p in series), "cache_hits": sum(p.cache_hits for p in series)}
    tenants = await top_tenants(db, since, 10) if user.sees_all_tenants else []
    return render(request, "overview.html", user, active="overview", charts=charts, totals=totals,
                  top_tenants=tenants, top_models=await top_models(db, user.tenant_id, since, 10))


@router.get("/usage")
async def read_usage(request: Request, user: SessionUser, db: SessionDep, days: Days = 30,
                     tenant_id: Annotated[str | None, Query(max_length=32)] = None, tag: TagKey = "") -> Response:
    """A tenant's report; an operator without a tenant chosen sees the whole gateway by day."""
    chosen = await _chosen_tenant(db, user, tenant_id)
    now = datetime.now(UTC)
    report = await usage_report(db, chosen, days) if chosen else None
    sections = await _sections(db, report, _tag_key(tag)) if report else []
    series = await usage_series(db, None, now - timedelta(days=days), "day") if chosen is None else []
    if report is not None:
        series = [SeriesPoint(bucket=d.day, requests=d.requests, failed=d.failed, cost_usd=d.cost_usd,
                              latency_ms=0.0, cache_hits=d.cache_hits) for d in report.by_day]
    charts = _series_charts(series, day_buckets(now, days))[:3]
    tenants = await list_tenants(db) if user.sees_all_tenants else []
    return render(request, "usage.html", user, active="usage", report=report, charts=charts, days=days,
                  tenants=tenants, tenant_id=chosen or "", sections=sections, tag=tag)


@router.get("/usage.csv")
async def read_usage_csv(user: SessionUser, db: SessionDep, tenant_id: Annotated[str, Query(max_length=32)],
                         days: Days = 30, tag: TagKey = "") -> Response:
    chosen = await _chosen_tenant(db, user, tenant_id)
    if chosen is None:
        raise NotFound("Choose a tenant to export its usage")
    sections = await _sections(db, await usage_report(db, chosen, days), _tag_key(tag))
    filename = f"usage-{chosen}-{days}d.csv"
    return Response(_csv(sections), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{filename}"'})


async def _chosen_tenant(db: SessionDep, user: ConsoleSession, tenant_id: str | None) -> str | None:
    if not user.sees_all_tenants:
        if tenant_id and tenant_id != user.tenant_id:
            raise NotFound(f"tenant {tenant_id!r} not found")
        return user.tenant_id
    if not tenant_id:
        require_all_tenants(user)
        return None
    return (await get_tenant(db, tenant_id)).id


def _series_charts(series: list[SeriesPoint], buckets: list[str]) -> list[Chart]:
    by_bucket = {point.bucket: point for point in series}
    empty = SeriesPoint(bucket="", requests=0, failed=0, cost_usd=0.0, latency_ms=0.0, cache_hits=0)
    points = [(bucket, by_bucket.get(bucket, empty)) for bucket in buckets]
    return [
        bar_chart("Requests", [(b, p.requests) for b, p in points], format_count),
        bar_chart("Errors", [(b, p.failed) for b, p in points], format_count),
        bar_chart("Cost", [(b, p.cost_usd) for b, p in points], format_money),
        bar_chart("Mean latency (ms)", [(b, p.latency_ms) for b, p in points], format_count),
        bar_chart("Cache hit rate (%)",
                  [(b, 100.0 * p.cache_hits / p.requests if p.requests else 0.0) for b, p in points], format_count),
    ]


def _tag_key(raw: str) -> str | None:
    """The tag key to break usage down by (`tag:<key>` in the API), or None; a malformed one is a 400."""
    key = raw.strip()
    if key and not TAG_KEY.fullmatch(key):
        raise InvalidRequest(f"A tag key is 1 to 64 of A-Z a-z 0-9 _ . : / -, not {key!r}")
    return key or None


async def _sections(db: SessionDep, report: UsageReport, tag: str | None) -> list[Section]:
    """The report's breakdowns as (title, group, rows of `label` and CSV_COLUMNS): the plain report's four,
    then by key (named), by end user and by the tag, which the grouped report of shared/db/usage_groups gives."""
    plain: list[tuple[str, str, list[dict[str, object]]]] = [
        ("By day", "day", [{**r.model_dump(), "label": r.day} for r in report.by_day]),
        ("By model", "model", [{**r.model_dump(), "label": r.model} for r in report.by_model]),
        ("By provider", "provider", [{**r.model_dump(), "label": r.provider} for r in report.by_provider]),
        ("By endpoint", "endpoint", [{**r.model_dump(), "label": r.endpoint} for r in report.by_endpoint]),
    ]
    names = {key.id: key.name for key in await list_keys(db, report.tenant_id, include_revoked=True)}
    dimensions = [("By key", "key", "key"), ("By user", "user", "user")]
    if tag:
        dimensions.append((f"By tag {tag}", f"tag:{tag}", f"tag:{tag}"))
    for title, group, dimension in dimensions:
        grouped = await grouped_usage(db, report.tenant_id, report.days, [dimension], UsageFilters())
        plain.append((title, group, [{**row, "label": _group_label(dimension, row[dimension], names),
                                      "saved_cost_usd": row["saved_cost_nanos"] / NANOS_PER_USD}
                                     for row in grouped.groups]))
    return plain


def _group_label(dimension: str, value: object, key_names: dict[str, str]) -> str:
    """A key by its name and id (names of revoked keys may repeat); a record without the value says so."""
    if value is None:
        return "(none)"
    if dimension == "key" and str(value) in key_names:
        return f"{key_names[str(value)]} ({value})"
    return str(value)


def _csv(sections: list[Section]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["group", "key", *CSV_COLUMNS])
    for _, group, rows in sections:
        for row in rows:
            writer.writerow([group, _cell(row["label"]), *(row[column] for column in CSV_COLUMNS)])
    return out.getvalue()


def _cell(value: object) -> str:
    """A model name is client input: a spreadsheet must not run it as a formula (CSV injection)."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text
