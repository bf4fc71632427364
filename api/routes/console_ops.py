"""Console pages for operators: routes and providers (each public model's targets in order, with the circuit
breaker every worker shares, and the recent failures and fallbacks from the usage records), and webhooks (the
dead-letter list, and sending chosen deliveries again). Not shown to tenant sessions."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.console.auth import SessionUser, checked_form, require_all_tenants
from api.console.pages import ConsoleRoute, render
from api.deps import SessionDep, StateDep
from api.shards import ShardQuery, read_breakers_everywhere, shard_by_index
from shared.audit import record_admin_action
from shared.console_stats import recent_problems
from shared.errors import InvalidRequest
from shared.webhook_dead import MAX_REDELIVER, list_dead, redeliver

router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)

PROBLEMS_SHOWN = 50
DEAD_PAGE = 100


@router.get("/routes")
async def read_routes(request: Request, user: SessionUser, state: StateDep, db: SessionDep) -> Response:
    require_all_tenants(user)
    table = state.routing_table
    routes = [(model, table.targets_for(model) or []) for model in table.public_models()]
    target_ids = sorted({target.target_id for _, targets in routes for target in targets})
    breakers = await read_breakers_everywhere(state.shards, target_ids)
    problems = await recent_problems(db, None, datetime.now(UTC) - timedelta(hours=24), PROBLEMS_SHOWN)
    return render(request, "routes.html", user, active="routes", routes=routes, breakers=breakers,
                  problems=problems)


@router.get("/webhooks")
async def read_webhooks(request: Request, user: SessionUser, state: StateDep,
                        before: Annotated[str | None, Query(max_length=41)] = None,
                        shard: ShardQuery = 0) -> Response:
    require_all_tenants(user)
    return await _webhooks_page(request, user, state, shard, before, None)


@router.post("/webhooks/redeliver")
async def redeliver_webhooks(request: Request, user: SessionUser, state: StateDep, db: SessionDep) -> Response:
    """Send the ticked dead letters again (each as a first attempt due now)."""
    require_all_tenants(user)
    await checked_form(request, user)
    form = await request.form()
    ids = [value for value in form.getlist("ids") if isinstance(value, str)]
    shard = _form_shard(form.get("shard"), len(state.shards))
    if not ids or len(ids) > MAX_REDELIVER:
        raise InvalidRequest(f"Tick between 1 and {MAX_REDELIVER} dead letters to send again")
    moved, missing = await redeliver(shard_by_index(state.shards, shard).redis, ids)
    await record_admin_action(db, actor=user.audit_actor, action="webhooks.redelivered", target_type="webhook",
                              target_id="dead-letters", before=None, after={"redelivered": moved, "not_found": missing})
    await db.commit()
    notice = f"Sent again: {len(moved)}." + (f" No longer dead-lettered: {len(missing)}." if missing else "")
    return await _webhooks_page(request, user, state, shard, None, notice)


async def _webhooks_page(request: Request, user: SessionUser, state: StateDep, shard: int, before: str | None,
                         notice: str | None) -> Response:
    """One Redis shard's dead letters (a tenant's webhooks live on its shard); the page links the others."""
    page = await list_dead(shard_by_index(state.shards, shard).redis, limit=DEAD_PAGE, before=before)
    return render(request, "webhooks.html", user, active="webhooks", entries=page.entries,
                  next_cursor=page.next_cursor, notice=notice, shard=shard, shard_count=len(state.shards))


def _form_shard(raw: object, count: int) -> int:
    """The form's `shard` field (absent: 0); 400 unless it names a configured shard."""
    if raw is None:
        return 0
    text = raw if isinstance(raw, str) else ""
    if not text.isascii() or not text.isdigit() or int(text) >= count:
        raise InvalidRequest(f"shard must be a shard number from 0 to {count - 1}")
    return int(text)
