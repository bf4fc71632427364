"""Admin API for a tenant's named API keys (issue 15): issue (the plain key is shown once), list, read, change
the scopes of, and revoke. Every change drops the tenant's cached snapshots, so it applies to the next request
of every API process. A key's spend is counted in Redis under its id (api/admission.py), and recounted from its
usage records after a change of its budget; its budget alerts' mirror follows its budget and its revocation."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from api.body import read_json_object
from api.deps import AdminActorDep, SessionDep, StateDep, ViewerDep
from api.routes.schemas import RESOURCE_ID_PATTERN, TenantId
from shared.api_keys import (
    KeyCreate,
    KeyScopes,
    create_key,
    get_key,
    list_keys,
    parse_key,
    render_key,
    revoke_key,
    update_key,
)
from shared.budget import reset_budget_counters
from shared.budget_alerts import mirror_budget_alerts

router = APIRouter(prefix="/api/v1/admin/tenants/{tenant_id}/keys", tags=["admin"],
                   dependencies=[ViewerDep])  # reads: any admin key; writes: the admin role (api/deps.py)

KeyId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN, description="an API key id (`key_...`)")]
CREATE_BODY = {"requestBody": {"required": True,
                               "content": {"application/json": {"schema": KeyCreate.model_json_schema()}}}}
SCOPES_BODY = {"requestBody": {"required": True,
                               "content": {"application/json": {"schema": KeyScopes.model_json_schema()}}}}


@router.post("", status_code=201, openapi_extra=CREATE_BODY)
async def create_tenant_key(tenant_id: TenantId, request: Request, session: SessionDep,
                            state: StateDep, actor: AdminActorDep) -> JSONResponse:
    """Issue a named key with optional scopes; the answer holds the plain key, shown only once."""
    params = parse_key(await read_json_object(request, state.settings.max_body_bytes), KeyCreate)
    key, plain = await create_key(session, tenant_id, params, actor=actor.id)
    return JSONResponse({**render_key(key), "api_key": plain}, status_code=201)


@router.get("")
async def read_tenant_keys(  # viewer-readable
    tenant_id: TenantId, session: SessionDep, include_revoked: Annotated[bool, Query()] = False,
) -> dict[str, object]:
    keys = await list_keys(session, tenant_id, include_revoked=include_revoked)
    return {"object": "list", "data": [render_key(key) for key in keys]}


@router.get("/{key_id}")
async def read_tenant_key(  # viewer-readable
    tenant_id: TenantId, key_id: KeyId, session: SessionDep,
) -> dict[str, object]:
    return render_key(await get_key(session, tenant_id, key_id))


@router.patch("/{key_id}", openapi_extra=SCOPES_BODY)
async def update_tenant_key(tenant_id: TenantId, key_id: KeyId, request: Request, session: SessionDep,
                            state: StateDep, actor: AdminActorDep) -> dict[str, object]:
    """Change a key's scopes: only the fields in the body change, and `null` removes a restriction."""
    changes = parse_key(await read_json_object(request, state.settings.max_body_bytes), KeyScopes)
    key = await update_key(session, tenant_id, key_id, changes, actor=actor.id)
    await state.tenant_cache.invalidate_tenant(tenant_id)
    # Spend made while the key had no budget did not reach its counters: the next budgeted request seeds them
    # from the key's usage records (they carry its id), as for the tenant's (api/routes/admin.py).
    if changes.model_fields_set & {"budget_usd", "budget_period"}:
        await reset_budget_counters(state.shards.for_tenant(tenant_id).redis, key_id, datetime.now(UTC))
        # The key's budget alerts watch the new budget, their thresholds afresh (shared/budget_alerts.py).
        await mirror_budget_alerts(state.shards.for_tenant(tenant_id).redis, session, tenant_id, datetime.now(UTC),
                                   key_id=key_id,
                                   budget_changed=True)
    return render_key(key)


@router.delete("/{key_id}")
async def revoke_tenant_key(tenant_id: TenantId, key_id: KeyId, session: SessionDep,
                            state: StateDep, actor: AdminActorDep) -> dict[str, object]:
    """Revoke a key: 401 from the next request on, in every API process."""
    key = await revoke_key(session, tenant_id, key_id, actor=actor.id)
    await state.tenant_cache.invalidate_tenant(tenant_id)
    await mirror_budget_alerts(state.shards.for_tenant(tenant_id).redis, session, tenant_id, datetime.now(UTC),
                               key_id=key_id)  # now silent
    return render_key(key)
