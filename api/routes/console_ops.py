"""Console pages for operators: routes and providers (each public model's targets in order, with the circuit
breaker every worker shares, and the recent failures and fallbacks from the usage records), and webhooks (the
dead-letter list, and sending chosen deliveries again). Not shown to tenant sessions."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.console.auth import SessionUser, checked_form, require_all_tenants
from api.console.pages import ConsoleRoute, render
from api.deps import SessionDep, StateDep
from shared.audit import record_admin_action
from shared.breaker_state import read_breakers
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
    breakers = await read_breakers(state.redis, target_ids)
    problems = await recent_problems(db, None, datetime.now(UTC) - timedelta(hours=24), PROBLEMS_SHOWN)
    return render(request, "routes.html", user, active="routes", routes=routes, breakers=breakers,
                  problems=problems)


@router.get("/webhooks")
async def read_webhooks(request: Request, user: SessionUser, state: StateDep,
                        before: Annotated[str | None, Query(max_length=41)] = None) -> Response:
    require_all_tenants(user)
    return await _webhooks_page(request, user, state, before, None)


@router.post("/webhooks/redeliver")
async def redeliver_webhooks(request: Request, user: SessionUser, state: StateDep, db: SessionDep) -> Response:
    """Send the ticked dead letters again (each as a first attempt due now)."""
    require_all_tenants(user)
    await checked_form(request, user)
    ids = [value for value in (await request.form()).getlist("ids") if isinstance(value, str)]
    if not ids or len(ids) > MAX_REDELIVER:
        raise InvalidRequest(f"Tick between 1 and {MAX_REDELIVER} dead letters to send again")
    moved, missing = await redeliver(state.redis, ids)
    await record_admin_action(db, actor=user.audit_actor, action="webhooks.redelivered", target_type="webhook",
                              target_id="dead-letters", before=None, after={"redelivered": moved, "not_found": missing})
    await db.commit()
    notice = f"Sent again: {len(moved)}." + (f" No longer dead-lettered: {len(missing)}." if missing else "")
    return await _webhooks_page(request, user, state, None, notice)


async def _webhooks_page(request: Request, user: SessionUser, state: StateDep, before: str | None,
                         notice: str | None) -> Response:
    page = await list_dead(state.redis, limit=DEAD_PAGE, before=before)
    return render(request, "webhooks.html", user, active="webhooks", entries=page.entries,
                  next_cursor=page.next_cursor, notice=notice)
