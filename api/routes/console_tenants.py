"""Console pages for tenants: the list, creating one (its API key shown once, with a copy button), a tenant's
page with its limits, budget and weight, and disabling or enabling it. Changes go through the same shared
functions, cache invalidation and audit log (actor: the named admin key's id, or `console` for ADMIN_API_KEY) as
the admin API (api/routes/admin.py); a tenant
session sees its own tenant."""

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from api.console.auth import SessionUser, checked_form, visible_tenant
from api.console.forms import PERIODS, limits_from_form, tenant_from_form
from api.console.pages import ConsoleRoute, render
from api.deps import AppState, SessionDep, StateDep
from api.routes.admin import render_tenant
from api.routes.schemas import TenantId
from shared.audit import record_admin_action
from shared.budget import reset_budget_counters
from shared.budget_alerts import mirror_budget_alerts
from shared.console_sessions import ConsoleSession
from shared.tenants import TenantLimits, get_tenant, list_tenants, set_tenant_disabled
from shared.tenants import create_tenant as create_tenant_record
from shared.tenants import update_tenant as update_tenant_record

router = APIRouter(prefix="/console/tenants", include_in_schema=False, route_class=ConsoleRoute)


@router.get("")
async def read_tenants(request: Request, user: SessionUser, db: SessionDep) -> Response:
    tenants = await list_tenants(db) if user.sees_all_tenants else [await get_tenant(db, str(user.tenant_id))]
    return render(request, "tenants.html", user, active="tenants", tenants=tenants, periods=PERIODS)


@router.post("")
async def create_tenant(request: Request, user: SessionUser, db: SessionDep) -> Response:
    """Create a tenant; the page answering shows its key once."""
    form = await checked_form(request, user)
    params = tenant_from_form(form)
    limits = TenantLimits.model_validate(params.model_dump(exclude={"name"}, exclude_unset=True))
    tenant, api_key = await create_tenant_record(db, params.name, limits=limits, commit=False)
    await _audit(db, user, "tenant.created", tenant.id, None, render_tenant(tenant))
    return render(request, "tenant.html", user, status=201, active="tenants", tenant=tenant, api_key=api_key,
                  periods=PERIODS)


@router.get("/{tenant_id}")
async def read_tenant(tenant_id: TenantId, request: Request, user: SessionUser, db: SessionDep) -> Response:
    tenant = await visible_tenant(db, user, tenant_id)
    notice = "Saved." if request.query_params.get("saved") else None
    return render(request, "tenant.html", user, active="tenants", tenant=tenant, api_key=None, periods=PERIODS,
                  notice=notice)


@router.post("/{tenant_id}")
async def update_tenant(tenant_id: TenantId, request: Request, user: SessionUser, db: SessionDep,
                        state: StateDep) -> Response:
    """Replace the tenant's limits with the form's (an empty field removes that limit)."""
    changes = limits_from_form(await checked_form(request, user))
    before = render_tenant(await get_tenant(db, tenant_id))
    budget_before = (before["budget_usd"], before["budget_period"])
    tenant = await update_tenant_record(db, tenant_id, changes, commit=False)
    await _audit(db, user, "tenant.updated", tenant_id, before, render_tenant(tenant))
    await state.tenant_cache.invalidate_tenant(tenant_id)
    if (tenant.budget_usd, tenant.budget_period) != budget_before:  # recounted from the usage records, as the API does
        await reset_budget_counters(state.shards.for_tenant(tenant_id).redis, tenant_id, datetime.now(UTC))
        await mirror_budget_alerts(state.shards.for_tenant(tenant_id).redis, db, tenant_id, datetime.now(UTC),
                                   budget_changed=True)
    return RedirectResponse(f"/console/tenants/{tenant_id}?saved=1", status_code=303)


@router.post("/{tenant_id}/disable")
async def disable_tenant(tenant_id: TenantId, request: Request, user: SessionUser, db: SessionDep,
                         state: StateDep) -> Response:
    return await _set_disabled(tenant_id, request, user, db, state, True)


@router.post("/{tenant_id}/enable")
async def enable_tenant(tenant_id: TenantId, request: Request, user: SessionUser, db: SessionDep,
                        state: StateDep) -> Response:
    return await _set_disabled(tenant_id, request, user, db, state, False)


async def _set_disabled(tenant_id: str, request: Request, user: ConsoleSession, db: SessionDep, state: AppState,
                        disabled: bool) -> Response:
    await checked_form(request, user)
    before = render_tenant(await get_tenant(db, tenant_id))
    tenant = await set_tenant_disabled(db, tenant_id, disabled, commit=False)
    action = "tenant.disabled" if disabled else "tenant.enabled"
    await _audit(db, user, action, tenant_id, before, render_tenant(tenant))
    await state.tenant_cache.invalidate_tenant(tenant_id)
    return RedirectResponse(f"/console/tenants/{tenant_id}?saved=1", status_code=303)


async def _audit(db: SessionDep, user: ConsoleSession, action: str, tenant_id: str,
                 before: dict[str, object] | None, after: dict[str, object]) -> None:
    """Record the change (shared/audit.py) and commit it with the change. Only an admin session changes
    tenants."""
    await record_admin_action(db, actor=user.audit_actor, action=action, target_type="tenant", target_id=tenant_id,
                              before=before, after=after)
    await db.commit()
