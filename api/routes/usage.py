"""A tenant's own usage report and request log: the same queries as the admin API's, for the calling tenant
only."""

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from api.deps import SessionDep, TenantDep
from api.routes.schemas import JobId
from api.usage_query import PageLimit, ReportQuery, answer_request_log, answer_usage, log_filters, report_query
from shared.db.request_log import RequestLogFilters, read_request_entry
from shared.db.tables import utc_now

router = APIRouter(prefix="/api/v1", tags=["gateway"])


@router.get("/usage", responses={200: {"content": {"application/json": {}, "text/csv": {}}}})
async def read_own_usage(tenant: TenantDep, session: SessionDep,
                         query: Annotated[ReportQuery, Depends(report_query)]) -> Response:
    """The calling tenant's totals and breakdowns; `group_by` and filters give grouped totals, `format=csv` CSV."""
    return await answer_usage(session, tenant.id, query)


@router.get("/requests")
async def list_own_requests(tenant: TenantDep, session: SessionDep,
                            filters: Annotated[RequestLogFilters, Depends(log_filters)],
                            limit: PageLimit = 50, cursor: str | None = None) -> dict[str, object]:
    """The calling tenant's request log, newest first; `next_cursor` pages to older entries."""
    return await answer_request_log(session, tenant.id, filters, limit, cursor)


@router.get("/requests/{request_id}")
async def read_own_request(request_id: JobId, tenant: TenantDep, session: SessionDep) -> dict[str, object]:
    """One entry of the calling tenant's request log, with its prompt and answer text if the tenant opted in."""
    return (await read_request_entry(session, tenant.id, request_id, utc_now())).model_dump(mode="json")
