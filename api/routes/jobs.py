"""Submit-and-poll jobs: submit (202 at once), read status and result, follow the token event stream
(replayable from the start, resumable from `Last-Event-ID`), cancel. A tenant sees only its own jobs."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse

from api.body import read_json_object
from api.deps import AppState, StateDep, TenantDep, TenantShardDep
from api.job_follow import ID_PATTERN, follow_events, has_more, resume_position
from api.relay import cancel_job as cancel_and_ring
from api.relay import settle_if_dead
from api.request_context import request_context
from api.routes.job_list import decode_cursor, list_page
from api.routes.schemas import CHAT_REQUEST_BODY, JobId
from api.shards import ShardHandles
from api.submit import SubmitOptions, submit
from api.wire_routes import OpenAIRoute
from shared.errors import Conflict, InvalidRequest, NotFound
from shared.fair_queue import Priority
from shared.job_view import render_job
from shared.jobs import JobRecord
from shared.models import JobStatus
from shared.tenant_cache import TenantSnapshot
from shared.webhooks import validate_callback_url
from shared.wire.codec import OPENAI_CODEC

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], route_class=OpenAIRoute)

GATEWAY_FIELDS = frozenset({"callback_url"})
"""Body fields of `POST /api/v1/jobs` that are the gateway's own: taken out before the body is parsed, since
the wire module forwards every field it does not model to the provider (`ChatRequest.extra`)."""


@router.post("", status_code=202, openapi_extra=CHAT_REQUEST_BODY)
async def create_job(request: Request, state: StateDep, shard: TenantShardDep, tenant: TenantDep) -> JSONResponse:
    """Queue a completion and answer at once with its id; tokens are always streamed into its events."""
    body = await read_json_object(request, state.settings.max_body_bytes)
    # Submitted jobs are batch work unless X-Priority says otherwise; an Idempotency-Key's repeat must carry
    # this same body, callback_url included.
    options = SubmitOptions(callback_url=_callback_url(state, body), idempotency_body=body, priority=Priority.BATCH)
    upstream = {name: value for name, value in body.items() if name not in GATEWAY_FIELDS}
    chat = OPENAI_CODEC.parse_request(upstream, request.headers)
    # Submitted jobs always stream into their events, and are never answered from or written to the cache.
    submission = await submit(state, shard, request, tenant, chat.model_copy(update={"stream": True}),
                              OPENAI_CODEC.format, None, options)
    request_context(request).headers = submission.headers
    headers = {"location": f"/api/v1/jobs/{submission.job_id}", **submission.headers}
    status = JobStatus.QUEUED
    if submission.replayed:  # the same job as the first request with this Idempotency-Key, as it is now
        status = (await _owned_job(state, shard, tenant, submission.job_id)).status
    return JSONResponse({"id": submission.job_id, "object": "job", "status": status.value}, status_code=202,
                        headers=headers)


@router.get("")
async def list_jobs(
    state: StateDep, shard: TenantShardDep,
    tenant: TenantDep,
    status: Annotated[JobStatus | None, Query(description="only jobs with this status")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="jobs per page")] = 20,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512, description="a page's next_cursor")] = None,
) -> JSONResponse:
    """The tenant's jobs still kept (`JOB_TTL_S`), newest first, each as `GET /api/v1/jobs/{job_id}` renders
    it; page with `next_cursor`."""
    position = decode_cursor(cursor) if cursor is not None else None
    page = await list_page(state, shard, tenant.id, status, limit, position)
    return JSONResponse({"object": "list", "data": [render_job(record) for record in page.records],
                         "has_more": page.next_cursor is not None, "next_cursor": page.next_cursor})


@router.get("/{job_id}")
async def read_job(job_id: JobId, state: StateDep, shard: TenantShardDep, tenant: TenantDep) -> JSONResponse:
    """The job's status and, once it has ended, its result or error."""
    record = await _owned_job(state, shard, tenant, job_id)
    if not record.status.is_terminal and await settle_if_dead(state, shard, job_id):
        record = await _owned_job(state, shard, tenant, job_id)
    return JSONResponse(render_job(record))


@router.get("/{job_id}/events", response_model=None,
            responses={204: {"description": "The job has ended and the stream has nothing after Last-Event-ID"}})
async def read_job_events(
    job_id: JobId,
    state: StateDep, shard: TenantShardDep,
    tenant: TenantDep,
    last_event_id: Annotated[str | None, Header(description="resume after this event id")] = None,
    after: Annotated[str | None, Query(pattern=ID_PATTERN, description="the same as Last-Event-ID")] = None,
) -> EventSourceResponse | Response:
    """SSE of the job's events from the start, or after `Last-Event-ID` (or `?after=`); ends after the
    terminal event (`done`, `error` or `cancelled`), or with `reconnect` when REQUEST_TIMEOUT_S is up first.
    Never cancels the job."""
    resume_from, source = resume_position(last_event_id, after)
    record = await _owned_job(state, shard, tenant, job_id)
    if not await has_more(state, shard, record, resume_from, source):
        return Response(status_code=204)  # tells an EventSource to stop reconnecting
    return EventSourceResponse(follow_events(state, shard, record.id, resume_from), ping=15, send_timeout=30)


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: JobId, state: StateDep, shard: TenantShardDep, tenant: TenantDep) -> JSONResponse:
    """Cancel a queued or running job; a job that has already ended answers 409."""
    record = await _owned_job(state, shard, tenant, job_id)
    outcome = await cancel_and_ring(state, shard, record.id)
    if not outcome.changed:
        raise Conflict(f"Job {job_id} has already ended with status '{outcome.status.value}'")
    return JSONResponse({"id": record.id, "object": "job", "status": outcome.status.value,
                         "cancel_requested": True})


def _callback_url(state: AppState, body: dict[str, object]) -> str | None:
    """The job's webhook URL (`callback_url` in the body, docs/API.md), validated; 400 when it is malformed
    or this gateway sends no webhooks."""
    if body.get("callback_url") is None:
        return None
    if not state.settings.webhook_secret:
        raise InvalidRequest("This gateway does not send webhooks (WEBHOOK_SECRET is unset); omit callback_url")
    return validate_callback_url(body["callback_url"], allow_private=state.settings.webhooks_allow_private)


async def _owned_job(state: AppState, shard: ShardHandles, tenant: TenantSnapshot, job_id: str) -> JobRecord:
    record = await shard.store.get(job_id)
    # Another tenant's job is indistinguishable from a missing one.
    if record is None or record.tenant_id != tenant.id:
        raise NotFound(f"No job with id '{job_id}'")
    return record
