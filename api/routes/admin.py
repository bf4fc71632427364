"""Admin API, guarded by `ADMIN_API_KEY`: create, list, read, disable and enable tenants, rotate a tenant's
key (the plain key is shown once), and read a tenant's usage."""

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from api.deps import AdminDep, SessionDep, StateDep
from shared.db.tables import Tenant
from shared.db.usage import usage_report
from shared.errors import InvalidRequest
from shared.tenants import create_tenant as create_tenant_record
from shared.tenants import get_tenant, list_tenants, rotate_key, set_tenant_disabled

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[AdminDep])


class TenantCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    rate_limit: int | None = Field(default=None, ge=0)


@router.post("/tenants", status_code=201)
async def create_tenant(
    request: Request,
    session: SessionDep,
    name: Annotated[str | None, Query()] = None,
    rate_limit: Annotated[int | None, Query(ge=0)] = None,
) -> JSONResponse:
    """Create a tenant from query parameters or a JSON body; the answer holds its API key, shown only once."""
    params = await _tenant_params(request, name, rate_limit)
    tenant, api_key = await create_tenant_record(session, params.name, params.rate_limit)
    return JSONResponse({**render_tenant(tenant), "api_key": api_key}, status_code=201)


@router.get("/tenants")
async def read_tenants(session: SessionDep) -> dict[str, object]:
    return {"object": "list", "data": [render_tenant(t) for t in await list_tenants(session)]}


@router.get("/tenants/{tenant_id}")
async def read_tenant(tenant_id: str, session: SessionDep) -> dict[str, object]:
    return render_tenant(await get_tenant(session, tenant_id))


@router.post("/tenants/{tenant_id}/disable")
async def disable_tenant(tenant_id: str, session: SessionDep, state: StateDep) -> dict[str, object]:
    """Disable a tenant: its keys get 403 from the next request on, in every API process."""
    tenant = await set_tenant_disabled(session, tenant_id, True)
    await state.tenant_cache.invalidate_tenant(tenant_id)
    return render_tenant(tenant)


@router.post("/tenants/{tenant_id}/enable")
async def enable_tenant(tenant_id: str, session: SessionDep, state: StateDep) -> dict[str, object]:
    tenant = await set_tenant_disabled(session, tenant_id, False)
    await state.tenant_cache.invalidate_tenant(tenant_id)
    return render_tenant(tenant)


@router.post("/tenants/{tenant_id}/rotate-key")
async def rotate_tenant_key(tenant_id: str, session: SessionDep, state: StateDep) -> dict[str, object]:
    """Revoke the tenant's keys and issue a new one, shown only in this answer."""
    api_key = await rotate_key(session, tenant_id)
    await state.tenant_cache.invalidate_tenant(tenant_id)
    return {**render_tenant(await get_tenant(session, tenant_id)), "api_key": api_key}


@router.get("/tenants/{tenant_id}/usage")
async def read_tenant_usage(
    tenant_id: str, session: SessionDep, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> dict[str, object]:
    """Totals and breakdowns by day, model and provider over the last `days` days."""
    await get_tenant(session, tenant_id)
    report = await usage_report(session, tenant_id, days)
    return report.model_dump(mode="json")


def render_tenant(tenant: Tenant) -> dict[str, object]:
    return {
        "id": tenant.id, "object": "tenant", "name": tenant.name, "rate_limit": tenant.rate_limit,
        "disabled": tenant.disabled, "created_at": tenant.created_at.isoformat(),
    }


async def _tenant_params(request: Request, name: str | None, rate_limit: int | None) -> TenantCreate:
    raw: dict[str, object] = {}
    body = await request.body()
    if body.strip():
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"Malformed JSON body: {exc}") from exc
        if not isinstance(parsed, dict):
            raise InvalidRequest("Request body must be a JSON object")
        raw.update(parsed)
    if name is not None:
        raw["name"] = name
    if rate_limit is not None:
        raw["rate_limit"] = rate_limit
    try:
        return TenantCreate.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidRequest(f"Invalid tenant: {problems}") from exc
