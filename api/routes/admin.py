"""Admin API, guarded by `ADMIN_API_KEY`: create, list, read, update the limits of, disable and enable
tenants, rotate a tenant's key (the plain key is shown once); usage reads are in admin_usage.py. Every change to a
tenant drops its cached snapshot, so it applies at once in every API process; a change of budget also drops
its spend counters, which the next request seeds from the usage records of the new period."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field, ValidationError

from api.body import read_body, read_json_object
from api.deps import AdminActorDep, SessionDep, StateDep, ViewerDep
from api.routes.schemas import TenantId
from shared.audit import record_admin_action
from shared.budget import reset_budget_counters
from shared.budget_alerts import mirror_budget_alerts
from shared.db.tables import Tenant
from shared.errors import InvalidRequest
from shared.json_input import loads_strict
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

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[ViewerDep])


MAX_INT_LIMIT = 2**31 - 1  # the database's INTEGER columns; more failed in PostgreSQL (found by fuzzing)
MAX_BUDGET_USD = 1e9  # keeps micro-dollars exact in Redis's Lua numbers (doubles, exact below 2**53)


class BoundedLimits(TenantLimits):
    """`TenantLimits` with upper bounds, so an absurd value is a 400 here rather than a database error."""

    rate_limit: int | None = Field(default=None, ge=0, le=MAX_INT_LIMIT, strict=True, description="requests per minute")
    tpm_limit: int | None = Field(default=None, ge=0, le=MAX_INT_LIMIT, strict=True, description="tokens per minute")
    max_concurrent: int | None = Field(default=None, ge=1, le=MAX_INT_LIMIT, strict=True,
                                       description="requests in flight")
    budget_usd: float | None = Field(default=None, ge=0, le=MAX_BUDGET_USD, strict=True, allow_inf_nan=False)
    max_running: int | None = Field(default=None, ge=1, le=MAX_INT_LIMIT, strict=True,
                                    description="jobs running at once")


class TenantCreate(BoundedLimits):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# Bodies are read by hand (for the size and time limits and our error shape); these document them.
LIMITS_BODY = {"requestBody": {"required": True,
                               "content": {"application/json": {"schema": BoundedLimits.model_json_schema()}}}}
CREATE_BODY = {"requestBody": {"required": False,
                               "content": {"application/json": {"schema": TenantCreate.model_json_schema()}}}}


@router.post("/tenants", status_code=201, openapi_extra=CREATE_BODY)
async def create_tenant(
    request: Request,
    session: SessionDep,
    state: StateDep,
    actor: AdminActorDep,
    name: Annotated[str | None, Query()] = None,
    rate_limit: Annotated[int | None, Query()] = None,
    tpm_limit: Annotated[int | None, Query()] = None,
    max_concurrent: Annotated[int | None, Query()] = None,
    budget_usd: Annotated[float | None, Query()] = None,
    budget_period: Annotated[str | None, Query()] = None,
    weight: Annotated[int | None, Query()] = None,
    max_running: Annotated[int | None, Query()] = None,
) -> JSONResponse:
    """Create a tenant from query parameters or a JSON body (query wins); the answer holds its API key,
    shown only once."""
    query = {"name": name, "rate_limit": rate_limit, "tpm_limit": tpm_limit, "max_concurrent": max_concurrent,
             "budget_usd": budget_usd, "budget_period": budget_period, "weight": weight, "max_running": max_running}
    body = await read_body(request, state.settings.max_body_bytes, state.settings.body_read_timeout_s)
    params = await _tenant_params(body, {key: value for key, value in query.items() if value is not None})
    limits = TenantLimits.model_validate(params.model_dump(exclude={"name"}, exclude_unset=True))
    tenant, api_key = await create_tenant_record(session, params.name, limits=limits, commit=False)
    await _audit(session, actor, "tenant.created", tenant.id, None, render_tenant(tenant))
    await session.commit()
    return JSONResponse({**render_tenant(tenant), "api_key": api_key}, status_code=201)


@router.get("/tenants")
async def read_tenants(session: SessionDep) -> dict[str, object]:
    return {"object": "list", "data": [render_tenant(t) for t in await list_tenants(session)]}


@router.get("/tenants/{tenant_id}")
async def read_tenant(tenant_id: TenantId, session: SessionDep) -> dict[str, object]:
    return render_tenant(await get_tenant(session, tenant_id))


@router.patch("/tenants/{tenant_id}", openapi_extra=LIMITS_BODY)
async def update_tenant(
    tenant_id: TenantId, request: Request, session: SessionDep, state: StateDep, actor: AdminActorDep
) -> dict[str, object]:
    """Change a tenant's limits: only the fields in the body change, and `null` removes a limit."""
    changes = _bounded_limits(await read_json_object(request, state.settings.max_body_bytes))
    before = render_tenant(await get_tenant(session, tenant_id))
    tenant = await update_tenant_record(session, tenant_id, changes, commit=False)
    await _audit(session, actor, "tenant.updated", tenant_id, before, render_tenant(tenant))
    await session.commit()
    await state.tenant_cache.invalidate_tenant(tenant_id)
    if changes.model_fields_set & {"budget_usd", "budget_period"}:
        await reset_budget_counters(state.shards.for_tenant(tenant_id).redis, tenant_id, datetime.now(UTC))
        await mirror_budget_alerts(state.shards.for_tenant(tenant_id).redis, session, tenant_id, datetime.now(UTC),
                                   budget_changed=True)
    return render_tenant(tenant)


@router.post("/tenants/{tenant_id}/disable")
async def disable_tenant(tenant_id: TenantId, session: SessionDep, state: StateDep,
                         actor: AdminActorDep) -> dict[str, object]:
    """Disable a tenant: its keys get 403 from the next request on, in every API process."""
    return await _set_disabled(session, state, actor, tenant_id, True)


@router.post("/tenants/{tenant_id}/enable")
async def enable_tenant(tenant_id: TenantId, session: SessionDep, state: StateDep,
                        actor: AdminActorDep) -> dict[str, object]:
    return await _set_disabled(session, state, actor, tenant_id, False)


@router.post("/tenants/{tenant_id}/rotate-key")
async def rotate_tenant_key(tenant_id: TenantId, session: SessionDep, state: StateDep,
                            actor: AdminActorDep) -> dict[str, object]:
    """Replace the tenant's `default` key (other named keys stay), the new one shown only in this answer."""
    api_key = await rotate_key(session, tenant_id, commit=False)
    # The key itself never enters the log: only that a rotation happened, with its display prefix.
    await _audit(session, actor, "tenant.key_rotated", tenant_id, None, {"key_prefix": api_key[:12]})
    await session.commit()
    await state.tenant_cache.invalidate_tenant(tenant_id)
    return {**render_tenant(await get_tenant(session, tenant_id)), "api_key": api_key}


def render_tenant(tenant: Tenant) -> dict[str, object]:
    return {
        "id": tenant.id, "object": "tenant", "name": tenant.name, "rate_limit": tenant.rate_limit,
        "tpm_limit": tenant.tpm_limit, "max_concurrent": tenant.max_concurrent, "budget_usd": tenant.budget_usd,
        "budget_period": tenant.budget_period, "weight": tenant.weight, "max_running": tenant.max_running,
        "allowed_models": tenant.allowed_models, "disabled": tenant.disabled,
        "log_content_days": tenant.log_content_days,
        "created_at": tenant.created_at.isoformat(),
    }


async def _set_disabled(session: SessionDep, state: StateDep, actor: AdminActorDep, tenant_id: str,
                        disabled: bool) -> dict[str, object]:
    before = render_tenant(await get_tenant(session, tenant_id))
    tenant = await set_tenant_disabled(session, tenant_id, disabled, commit=False)
    after = render_tenant(tenant)
    await _audit(session, actor, "tenant.disabled" if disabled else "tenant.enabled", tenant_id, before, after)
    await session.commit()
    await state.tenant_cache.invalidate_tenant(tenant_id)
    return after


async def _audit(session: SessionDep, actor: AdminActorDep, action: str, tenant_id: str,
                 before: dict[str, object] | None, after: dict[str, object] | None) -> None:
    await record_admin_action(session, actor=actor.id, action=action, target_type="tenant", target_id=tenant_id,
                              before=before, after=after)


def _bounded_limits(data: dict[str, object]) -> BoundedLimits:
    parse_limits(data)  # the shared checks and their messages first
    try:
        return BoundedLimits.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"Invalid tenant limits: {validation_problems(exc)}") from exc


async def _tenant_params(body: bytes, query: dict[str, object]) -> TenantCreate:
    """The optional JSON body (already read within the size and time limits), overridden by the query."""
    raw: dict[str, object] = {}
    if body.strip():
        parsed = loads_strict(body)
        if not isinstance(parsed, dict):
            raise InvalidRequest("Request body must be a JSON object")
        raw.update(parsed)
    raw.update(query)
    try:
        return TenantCreate.model_validate(raw)
    except ValidationError as exc:
        raise InvalidRequest(f"Invalid tenant: {validation_problems(exc)}") from exc
