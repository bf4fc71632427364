"""Admin API for webhooks (reads: any admin key; redelivery: the `admin` role, audited): the deliveries that
were dead-lettered (refused for good by the receiver, or failed on every attempt), and sending chosen ones
again once the receiver is fixed (shared/webhook_dead.py)."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, ValidationError

from api.body import read_json_object
from api.deps import AdminActorDep, SessionDep, StateDep, ViewerDep
from api.shards import ShardQuery, shard_by_index
from shared.audit import record_admin_action
from shared.errors import InvalidRequest
from shared.tenants import validation_problems
from shared.webhook_dead import MAX_REDELIVER, list_dead, redeliver

router = APIRouter(prefix="/api/v1/admin/webhooks", tags=["admin"], dependencies=[ViewerDep])


class Redeliver(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=MAX_REDELIVER, description="dead-letter entry ids")
    shard: int = Field(default=0, ge=0, description="the Redis shard whose dead letters these are (REDIS_SHARDS)")


REDELIVER_BODY = {"requestBody": {"required": True,
                                  "content": {"application/json": {"schema": Redeliver.model_json_schema()}}}}


@router.get("/dead")
async def read_dead_letters(
    state: StateDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[str | None, Query(max_length=41)] = None,
    shard: ShardQuery = 0,
) -> dict[str, object]:
    """Dead-lettered deliveries of one Redis shard (a tenant's webhooks live on its shard), newest first; page
    with `next_cursor` as `before`."""
    page = await list_dead(shard_by_index(state.shards, shard).redis, limit=limit, before=before)
    return {"object": "list", "shard": shard, "shards": len(state.shards),
            "data": [entry.as_dict() for entry in page.entries],
            "has_more": page.next_cursor is not None, "next_cursor": page.next_cursor}


@router.post("/dead/redeliver", openapi_extra=REDELIVER_BODY)
async def redeliver_dead_letters(request: Request, state: StateDep, session: SessionDep,
                                 actor: AdminActorDep) -> dict[str, object]:
    """Send these dead letters again, each as a first attempt due now (with the usual retries); ids no longer
    in the dead-letter stream (redelivered already, or trimmed) are listed as `not_found`."""
    try:
        body = Redeliver.model_validate(await read_json_object(request, state.settings.max_body_bytes))
    except ValidationError as exc:
        raise InvalidRequest(f"Invalid redelivery: {validation_problems(exc)}") from exc
    moved, missing = await redeliver(shard_by_index(state.shards, body.shard).redis, body.ids)
    # The move is in Redis, so it cannot share a transaction with the entry: it is recorded right after.
    await record_admin_action(session, actor=actor.id, action="webhooks.redelivered", target_type="webhook",
                              target_id="dead-letters", before=None,
                              after={"redelivered": moved, "not_found": missing})
    await session.commit()
    return {"redelivered": moved, "not_found": missing}
