"""Console pages of the request log (issue 15): the entries newest first, filtered by tenant (operators), key,
model, status and time, and paged; and one request with every field, and its prompt and answer text when the
tenant stores them. The same queries as `GET /api/v1/requests` and the admin API's (shared/db/request_log.py);
as there, the stored text is for an admin or the tenant itself, not for a viewer."""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from api.console.auth import SessionUser, visible_tenant
from api.console.forms import parse_utc_time
from api.console.pages import ConsoleRoute, render
from api.deps import SessionDep
from api.routes.schemas import JobId, TenantId
from shared.api_keys import list_keys
from shared.console_sessions import ConsoleSession
from shared.db.request_log import RequestLogFilters, read_request_entry, read_request_log
from shared.db.tables import utc_now
from shared.models import JobStatus
from shared.tenants import list_tenants

router = APIRouter(prefix="/console/requests", include_in_schema=False, route_class=ConsoleRoute)

PAGE_SIZE = 50
STATUSES = [status.value for status in JobStatus if status.is_terminal]
Text = Annotated[str, Query(max_length=200)]


@router.get("")
async def read_requests(
    request: Request, user: SessionUser, db: SessionDep, tenant_id: Annotated[str, Query(max_length=64)] = "",
    key: Text = "", model: Text = "", status: Text = "", since: Text = "", until: Text = "",
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> Response:
    """An operator sees every tenant's requests unless one is chosen; a tenant session its own."""
    chosen = await _chosen_tenant(db, user, tenant_id)
    filters = RequestLogFilters(key=key or None, model=model or None, status=status or None,
                                since=parse_utc_time(since, "since"), until=parse_utc_time(until, "until"))
    page = await read_request_log(db, chosen, filters, limit=PAGE_SIZE, cursor=cursor)
    tenants = await list_tenants(db) if user.sees_all_tenants else []
    keys = await list_keys(db, chosen, include_revoked=True) if chosen else []
    shown = {"tenant_id": tenant_id if user.sees_all_tenants else "", "key": key, "model": model,
             "status": status, "since": since, "until": until}
    older = None
    if page.next_cursor:
        older = "/console/requests?" + urlencode({**{k: v for k, v in shown.items() if v}, "cursor": page.next_cursor})
    return render(request, "requests.html", user, active="requests", entries=page.data, shown=shown,
                  tenants=tenants, tenant_names={t.id: t.name for t in tenants}, keys=keys,
                  key_names={k.id: k.name for k in keys}, statuses=STATUSES, older=older)


@router.get("/{tenant_id}/{request_id}")
async def read_request(tenant_id: TenantId, request_id: JobId, request: Request, user: SessionUser,
                       db: SessionDep) -> Response:
    tenant = await visible_tenant(db, user, tenant_id)
    entry = await read_request_entry(db, tenant_id, request_id, utc_now())
    key_names = {k.id: k.name for k in await list_keys(db, tenant_id, include_revoked=True)}
    content_hidden = entry.content is not None and user.role == "viewer"
    return render(request, "request.html", user, active="requests", tenant=tenant, entry=entry,
                  key_name=key_names.get(entry.key_id or ""), content=None if content_hidden else entry.content,
                  content_hidden=content_hidden)


async def _chosen_tenant(db: SessionDep, user: ConsoleSession, tenant_id: str) -> str | None:
    if not user.sees_all_tenants:
        if tenant_id and tenant_id != user.tenant_id:
            await visible_tenant(db, user, tenant_id)  # 404, as for any other tenant's page
        return user.tenant_id
    return (await visible_tenant(db, user, tenant_id)).id if tenant_id else None
