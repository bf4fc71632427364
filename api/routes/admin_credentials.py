"""Admin API for admin credentials: create (the plain key is shown once), list and delete named admin keys
with a role, `admin` or `viewer` (shared/admin_keys.py). Only the `admin` role may manage them; each change is
audited in the same transaction. ADMIN_API_KEY, the bootstrap admin, is configuration and not listed here."""

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.body import read_json_object
from api.deps import AdminActorDep, SessionDep, StateDep, ViewerDep
from api.routes.schemas import RESOURCE_ID_PATTERN
from shared.admin_keys import (
    AdminRole,
    create_admin_key,
    get_admin_key,
    list_admin_keys,
    render_admin_key,
    revoke_admin_key,
)
from shared.audit import record_admin_action
from shared.errors import InvalidRequest
from shared.tenants import validation_problems

AdminKeyId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN, description="an admin key id (`adm_...`)")]

router = APIRouter(prefix="/api/v1/admin/keys", tags=["admin"], dependencies=[ViewerDep])


class AdminKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    role: AdminRole = "viewer"


CREATE_BODY = {"requestBody": {"required": True,
                               "content": {"application/json": {"schema": AdminKeyCreate.model_json_schema()}}}}


@router.post("", status_code=201, openapi_extra=CREATE_BODY)
async def create_admin_key_route(request: Request, session: SessionDep, state: StateDep,
                                 actor: AdminActorDep) -> JSONResponse:
    """Issue an admin key with a role (`viewer` unless `role` says `admin`); the plain key is in this answer
    only."""
    try:
        body = AdminKeyCreate.model_validate(await read_json_object(request, state.settings.max_body_bytes))
    except ValidationError as exc:
        raise InvalidRequest(f"Invalid admin key: {validation_problems(exc)}") from exc
    row, plain = await create_admin_key(session, body.name, body.role)
    await record_admin_action(session, actor=actor.id, action="admin_key.created", target_type="admin_key",
                              target_id=row.id, before=None, after=render_admin_key(row))
    await session.commit()
    return JSONResponse({**render_admin_key(row), "api_key": plain}, status_code=201)


@router.get("")
async def read_admin_keys(session: SessionDep) -> dict[str, object]:
    return {"object": "list", "data": [render_admin_key(row) for row in await list_admin_keys(session)]}


@router.get("/{admin_key_id}")
async def read_admin_key(admin_key_id: AdminKeyId, session: SessionDep) -> dict[str, object]:
    return render_admin_key(await get_admin_key(session, admin_key_id))


@router.delete("/{admin_key_id}")
async def delete_admin_key(admin_key_id: AdminKeyId, session: SessionDep,
                           actor: AdminActorDep) -> dict[str, object]:
    """Revoke an admin key: it is refused from the next request on (admin keys are not cached)."""
    row = await get_admin_key(session, admin_key_id)
    before = render_admin_key(row)
    await revoke_admin_key(session, admin_key_id)
    await record_admin_action(session, actor=actor.id, action="admin_key.deleted", target_type="admin_key",
                              target_id=admin_key_id, before=before, after=None)
    await session.commit()
    return {"id": admin_key_id, "object": "admin_key", "deleted": True}
