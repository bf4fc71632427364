"""Admin reads of a tenant's usage report and request log (issue 15), with the same queries as the tenant's
own routes (api/usage_query.py). Read-only: a viewer admin key may call the reports and the log once roles
exist; an entry's stored content stays admin-only."""

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from api.deps import AdminDep, SessionDep, ViewerDep
from api.routes.schemas import JobId, TenantId
from api.usage_query import PageLimit, ReportQuery, answer_request_log, answer_usage, log_filters, report_query
from shared.db.request_log import RequestLogFilters, read_request_entry
from shared.db.tables import utc_now
from shared.tenants import get_tenant

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[ViewerDep])


# viewer-readable
@router.get("/tenants/{tenant_id}/usage", responses={200: {"content": {"application/json": {}, "text/csv": {}}}})
async def read_tenant_usage(tenant_id: TenantId, session: SessionDep,
                            query: Annotated[ReportQuery, Depends(report_query)]) -> Response:
    """Totals and breakdowns by day, model, provider and endpoint over the last `days` days; `group_by`
    (day, model, provider, endpoint, status, key, user, tag:<key>) and filters give grouped totals that add
    up exactly to the totals; `format=csv` or `Accept: text/csv` answers CSV."""
    await get_tenant(session, tenant_id)
    return await answer_usage(session, tenant_id, query)


# viewer-readable
@router.get("/tenants/{tenant_id}/requests")
async def list_tenant_requests(tenant_id: TenantId, session: SessionDep,
                               filters: Annotated[RequestLogFilters, Depends(log_filters)],
                               limit: PageLimit = 50, cursor: str | None = None) -> dict[str, object]:
    """The tenant's request log, newest first, filtered; `next_cursor` pages to older entries."""
    await get_tenant(session, tenant_id)
    return await answer_request_log(session, tenant_id, filters, limit, cursor)


# admin only, not viewer-readable: the answer may hold a tenant's prompt and answer text
@router.get("/tenants/{tenant_id}/requests/{request_id}", dependencies=[AdminDep])
async def read_tenant_request(tenant_id: TenantId, request_id: JobId, session: SessionDep) -> dict[str, object]:
    """One entry of the tenant's request log, with its prompt and answer text if the tenant opted in."""
    await get_tenant(session, tenant_id)
    return (await read_request_entry(session, tenant_id, request_id, utc_now())).model_dump(mode="json")
