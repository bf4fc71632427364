"""Console pages for a tenant's named API keys (issue 15): the list (scopes, last use, expiry, revoked), issuing
one with scopes (its secret shown once, with a copy button), and revoking one after a confirmation page. The
same shared functions as the admin API (shared/api_keys.py), which audit each change with this session's actor;
changes drop the tenant's cached snapshots, so a revoked key is refused from the next request. Operators with
the admin role write; viewers read. A tenant session (its own tenant only) reads, and, when its key has the
`manage` scope, issues keys within that key's own scopes and revokes keys (shared/key_grants.py), audited as
`tenant:<tenant_id>:<key_id>`."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import RedirectResponse

from api.console.auth import SessionUser, checked_form, require_writer, visible_tenant
from api.console.forms import PERIODS, key_from_form
from api.console.pages import ConsoleRoute, render
from api.deps import SessionDep, StateDep
from api.routes.schemas import RESOURCE_ID_PATTERN, TenantId
from shared.api_keys import KEY_ENDPOINTS, create_key, get_key, list_keys, revoke_key
from shared.budget_alerts import mirror_budget_alerts
from shared.console_sessions import ConsoleSession
from shared.db.tables import ApiKey
from shared.errors import NotFound, PermissionDenied
from shared.key_grants import check_grant, managing_key, tenant_actor

router = APIRouter(prefix="/console/tenants/{tenant_id}/keys", include_in_schema=False, route_class=ConsoleRoute)

KeyId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN)]


@router.get("")
async def read_keys(tenant_id: TenantId, request: Request, user: SessionUser, db: SessionDep) -> Response:
    notice = "Key revoked: it is refused from the next request on." if request.query_params.get("revoked") else None
    return await _keys_page(request, user, db, tenant_id, notice=notice)


@router.post("")
async def create_tenant_key(tenant_id: TenantId, request: Request, user: SessionUser, db: SessionDep) -> Response:
    """Issue a key with the form's scopes; the page answering shows its secret once."""
    form = await checked_form(request, user, admin_only=False)
    issuer = await _key_manager(db, user)
    await visible_tenant(db, user, tenant_id)
    endpoints = [value for value in (await request.form()).getlist("allowed_endpoints") if isinstance(value, str)]
    params = key_from_form(form, endpoints)
    if issuer is not None:
        check_grant(issuer, params)
    key, secret = await create_key(db, tenant_id, params, actor=_actor(user, issuer))
    return await _keys_page(request, user, db, tenant_id, created=key, secret=secret, status=201)


@router.get("/{key_id}/revoke")
async def read_key_revocation(tenant_id: TenantId, key_id: KeyId, request: Request, user: SessionUser,
                              db: SessionDep) -> Response:
    """The confirmation page: what the key is, and the one button that revokes it (works without a script)."""
    await _key_manager(db, user)
    tenant = await visible_tenant(db, user, tenant_id)
    key = await _active_key(db, tenant_id, key_id)
    return render(request, "key_revoke.html", user, active="tenants", tenant=tenant, key=key)


@router.post("/{key_id}/revoke")
async def revoke_tenant_key(tenant_id: TenantId, key_id: KeyId, request: Request, user: SessionUser,
                            db: SessionDep, state: StateDep) -> Response:
    await checked_form(request, user, admin_only=False)
    issuer = await _key_manager(db, user)
    await visible_tenant(db, user, tenant_id)
    await revoke_key(db, tenant_id, key_id, actor=_actor(user, issuer))
    await state.tenant_cache.invalidate_tenant(tenant_id)
    # As the admin API's revoke does: the key's budget alerts fall silent (their mirror in Redis is dropped).
    await mirror_budget_alerts(state.shards.for_tenant(tenant_id).redis, db, tenant_id, datetime.now(UTC),
                               key_id=key_id)
    return RedirectResponse(f"/console/tenants/{tenant_id}/keys?revoked={key_id}", status_code=303)


async def _keys_page(request: Request, user: ConsoleSession, db: SessionDep, tenant_id: str, *,
                     created: ApiKey | None = None, secret: str | None = None, status: int = 200,
                     notice: str | None = None) -> Response:
    tenant = await visible_tenant(db, user, tenant_id)
    keys = await list_keys(db, tenant_id, include_revoked=True)
    keys.sort(key=lambda key: key.revoked_at is not None)  # active keys first, each group oldest first
    return render(request, "keys.html", user, status=status, active="tenants", tenant=tenant, keys=keys,
                  created=created, secret=secret, endpoints=KEY_ENDPOINTS, periods=PERIODS, notice=notice,
                  manages=await _manages(db, user))


async def _key_manager(db: SessionDep, user: ConsoleSession) -> ApiKey | None:
    """Who may change keys: an admin session (None: no scope to stay within), or a tenant session whose key has
    the `manage` scope (that key, read afresh: its scopes bound what it grants). Anyone else: 403."""
    if user.can_write:
        return None
    if user.role != "tenant" or user.tenant_id is None:
        require_writer(user)
        return None
    return await managing_key(db, user.tenant_id, user.credential)


async def _manages(db: SessionDep, user: ConsoleSession) -> bool:
    """Whether the page shows the key write controls to this session."""
    try:
        await _key_manager(db, user)
    except PermissionDenied:
        return False
    return True


def _actor(user: ConsoleSession, issuer: ApiKey | None) -> str:
    return user.audit_actor if issuer is None else tenant_actor(issuer.tenant_id, issuer.id)


async def _active_key(db: SessionDep, tenant_id: str, key_id: str) -> ApiKey:
    key = await get_key(db, tenant_id, key_id)
    if key.revoked_at is not None:
        raise NotFound(f"key {key_id!r} of tenant {tenant_id!r} is already revoked")
    return key
