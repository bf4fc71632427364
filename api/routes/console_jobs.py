"""Console pages for jobs: a tenant's jobs (newest first, by status), one job's details and result, cancelling
it, and its events as SSE for the page to show tokens as they arrive. The console authenticates these with its
session rather than the tenant's key, and reuses the API's own paging, following and cancelling (api/)."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import RedirectResponse
from sse_starlette import EventSourceResponse

from api.console.auth import SessionUser, checked_form
from api.console.pages import ConsoleRoute, render
from api.deps import AppState, SessionDep, StateDep
from api.job_follow import ID_PATTERN, follow_events, has_more, resume_position
from api.relay import cancel_job as cancel_and_ring
from api.relay import settle_if_dead
from api.routes.job_list import decode_cursor, list_page
from api.routes.schemas import JobId
from api.shards import ShardHandles, find_job
from shared.console_sessions import ConsoleSession
from shared.errors import Conflict, NotFound
from shared.job_view import render_job
from shared.jobs import JobRecord
from shared.models import JobStatus
from shared.tenants import list_tenants

router = APIRouter(prefix="/console/jobs", include_in_schema=False, route_class=ConsoleRoute)

PAGE_SIZE = 25


@router.get("")
async def read_jobs(
    request: Request, user: SessionUser, state: StateDep, db: SessionDep,
    tenant_id: Annotated[str | None, Query(max_length=32)] = None,
    status: Annotated[JobStatus | None, Query()] = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> Response:
    """An operator picks the tenant; a tenant session always lists its own jobs."""
    tenants = await list_tenants(db) if user.sees_all_tenants else []
    chosen = tenant_id or None if user.sees_all_tenants else user.tenant_id
    page = None
    if chosen is not None:
        position = decode_cursor(cursor) if cursor is not None else None
        page = await list_page(state, state.shards.for_tenant(chosen), chosen, status, PAGE_SIZE, position)
    jobs = [render_job(record) for record in page.records] if page else []
    return render(request, "jobs.html", user, active="jobs", tenants=tenants, tenant_id=chosen or "",
                  job_status=status.value if status else "", statuses=[s.value for s in JobStatus], jobs=jobs,
                  next_cursor=page.next_cursor if page else None)


@router.get("/{job_id}")
async def read_job(job_id: JobId, request: Request, user: SessionUser, state: StateDep) -> Response:
    record, shard = await _visible(state, user, job_id)
    if not record.status.is_terminal and await settle_if_dead(state, shard, job_id):
        record, _ = await _visible(state, user, job_id)
    job = render_job(record)
    return render(request, "job.html", user, active="jobs", job=job, tenant_id=record.tenant_id,
                  text=_answer_text(job), may_cancel=_may_cancel(user) and not record.status.is_terminal)


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: JobId, request: Request, user: SessionUser, state: StateDep) -> Response:
    """Cancel a queued or running job: an admin any job, a tenant session its own; never a viewer."""
    await checked_form(request, user, admin_only=user.role != "tenant")
    record, shard = await _visible(state, user, job_id)
    outcome = await cancel_and_ring(state, shard, record.id)
    if not outcome.changed:
        raise Conflict(f"Job {job_id} has already ended with status '{outcome.status.value}'")
    return RedirectResponse(f"/console/jobs/{job_id}", status_code=303)


@router.get("/{job_id}/events", response_model=None)
async def read_job_events(
    job_id: JobId, user: SessionUser, state: StateDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> EventSourceResponse | Response:
    """The same events as `GET /api/v1/jobs/{id}/events`, for the job's page (EventSource sends the cookie)."""
    resume_from, source = resume_position(last_event_id, after)
    record, shard = await _visible(state, user, job_id)
    if not await has_more(state, shard, record, resume_from, source):
        return Response(status_code=204)  # tells an EventSource to stop reconnecting
    return EventSourceResponse(follow_events(state, shard, record.id, resume_from), ping=15, send_timeout=30)


def _may_cancel(user: ConsoleSession) -> bool:
    return user.can_write or user.role == "tenant"


def _answer_text(job: dict[str, object]) -> str:
    """The answer's text, for a finished chat job (other kinds show their JSON)."""
    result = job.get("result")
    if not isinstance(result, dict):
        return ""
    choices = result.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


async def _visible(state: AppState, user: ConsoleSession, job_id: str) -> tuple[JobRecord, ShardHandles]:
    """The job and its shard: a tenant session's own shard, or for an operator whichever shard has it (all
    are asked; a 503 names the shards that did not answer when none of the others has it)."""
    found: tuple[JobRecord, ShardHandles] | None
    if user.sees_all_tenants:
        found = await find_job(state.shards, job_id)
    else:
        shard = state.shards.for_tenant(str(user.tenant_id))
        record = await shard.store.get(job_id)
        found = None if record is None else (record, shard)
    # Another tenant's job is indistinguishable from a missing one, as in the API.
    if found is None or (not user.sees_all_tenants and found[0].tenant_id != user.tenant_id):
        raise NotFound(f"No job with id '{job_id}'")
    return found
