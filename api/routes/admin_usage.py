"""Admin reads of a tenant's usage report and request log (issue 15), with the same queries as the tenant's
own routes (api/usage_query.py). Read-only: a viewer admin key may call them once roles exist."""

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from api.deps import AdminDep, SessionDep
from api.routes.schemas import TenantId
from api.usage_query import PageLimit, ReportQuery, answer_request_log, answer_usage, log_filters, report_query
from shared.db.request_log import RequestLogFilters
from shared.tenants import get_tenant

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[AdminDep])


# viewer-readable
@router.get("/tenants/{tenant_id}/usage")
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
