"""Admin API, guarded by `ADMIN_API_KEY`: create, list, read, update the limits of, disable and enable
tenants, rotate a tenant's key (the plain key is shown once), and read a tenant's usage. Every change to a
tenant drops its cached snapshot, so it applies at once in every API process."""

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field, ValidationError

from api.body import read_json_object
from api.deps import AdminDep, SessionDep, StateDep
from shared.db.tables import Tenant
from shared.db.usage import usage_report
from shared.errors import InvalidRequest
from shared.tenants import (
    TenantLimits,
    get_tenant,
    list_tenants,
    parse_limits,
    rotate_key,
    set_tenant_disabled,
    validation_problems,
)
from shared.tenants import create_tenant as create_tenant_record
from shared.tenants import update_tenant as update_tenant_record

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[AdminDep])


class TenantCreate(TenantLimits):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# The PATCH body is read by hand (for the size limit and our error shape); this documents it.
LIMITS_BODY = {"requestBody": {"required": True,
                               "content": {"application/json": {"schema": TenantLimits.model_json_schema()}}}}


@router.post("/tenants", status_code=201)
async def create_tenant(
    request: Request,
    session: SessionDep,
    name: Annotated[str | None, Query()] = None,
    rate_limit: Annotated[int | None, Query()] = None,
    tpm_limit: Annotated[int | None, Query()] = None,
    max_concurrent: Annotated[int | None, Query()] = None,
    budget_usd: Annotated[float | None, Query()] = None,
    budget_period: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    """Create a tenant from query parameters or a JSON body (query wins); the answer holds its API key,
    shown only once."""
    query = {"name": name, "rate_limit": rate_limit, "tpm_limit": tpm_limit, "max_concurrent": max_concurrent,
             "budget_usd": budget_usd, "budget_period": budget_period}
    params = await _tenant_params(request, {key: value for key, value in query.items() if value is not None})
    limits = TenantLimits.model_validate(params.model_dump(exclude={"name"}, exclude_unset=True))
    tenant, api_key = await create_tenant_record(session, params.name, limits=limits)
    return JSONResponse({**render_tenant(tenant), "api_key": api_key}, status_code=201)


@router.get("/tenants")
async def read_tenants(session: SessionDep) -> dict[str, object]:
    return {"object": "list", "data": [render_tenant(t) for t in await list_tenants(session)]}


@router.get("/tenants/{tenant_id}")
async def read_tenant(tenant_id: str, session: SessionDep) -> dict[str, object]:
    return render_tenant(await get_tenant(session, tenant_id))


@router.patch("/tenants/{tenant_id}", openapi_extra=LIMITS_BODY)
async def update_tenant(
    tenant_id: str, request: Request, session: SessionDep, state: StateDep
) -> dict[str, object]:
    """Change a tenant's limits: only the fields in the body change, and `null` removes a limit."""
    changes = parse_limits(await read_json_object(request, state.settings.max_body_bytes))
    tenant = await update_tenant_record(session, tenant_id, changes)
    await state.tenant_cache.invalidate_tenant(tenant_id)
    return render_tenant(tenant)


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
        "tpm_limit": tenant.tpm_limit, "max_concurrent": tenant.max_concurrent, "budget_usd": tenant.budget_usd,
        "budget_period": tenant.budget_period, "disabled": tenant.disabled,
        "created_at": tenant.created_at.isoformat(),
    }


async def _tenant_params(request: Request, query: dict[str, object]) -> TenantCreate:
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
    raw.update(query)
    try:
        return TenantCreate.model_validate(raw)
    except ValidationError as exc:
        raise InvalidRequest(f"Invalid tenant: {validation_problems(exc)}") from exc
