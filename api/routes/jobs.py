"""Submit-and-poll jobs: submit (202 at once), read status and result, follow the token event stream
(replayable from the start, resumable from `Last-Event-ID`), cancel. A tenant sees only its own jobs."""

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse

from api.body import read_json_object
from api.deps import AppState, StateDep, TenantDep
from api.relay import cancel_job as cancel_and_ring
from api.relay import job_events, settle_if_dead
from api.routes.job_list import decode_cursor, list_page
from api.routes.schemas import CHAT_REQUEST_BODY
from api.submit import submit
from shared.errors import Conflict, GatewayError, InvalidRequest, NotFound, ServiceUnavailable
from shared.job_view import render_job
from shared.jobs import JobRecord
from shared.models import JobStatus, WireFormat
from shared.tenant_cache import TenantSnapshot
from shared.webhooks import validate_callback_url
from shared.wire import openai as openai_wire

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

STREAM_ID_PATTERN = r"^\d+-\d+$"


@router.post("", status_code=202, openapi_extra=CHAT_REQUEST_BODY)
async def create_job(request: Request, state: StateDep, tenant: TenantDep) -> JSONResponse:
    """Queue a completion and answer at once with its id; tokens are always streamed into its events."""
    body = await read_json_object(request, state.settings.max_body_bytes)
    request.state.idempotency_body = body  # an Idempotency-Key's repeat must carry this same body
    chat = openai_wire.parse_request(body)
    request.state.callback_url = _callback_url(state, body)  # JobOptions.callback_url, read by submit()
    # Submitted jobs always stream into their events, and are never answered from or written to the cache.
    submission = await submit(state, request, tenant, chat.model_copy(update={"stream": True}),
                              WireFormat.OPENAI, None)
    request.state.gateway_headers = submission.headers
    headers = {"location": f"/api/v1/jobs/{submission.job_id}", **submission.headers}
    status = JobStatus.QUEUED
    if submission.replayed:  # the same job as the first request with this Idempotency-Key, as it is now
        status = (await _owned_job(state, tenant, submission.job_id)).status
    return JSONResponse({"id": submission.job_id, "object": "job", "status": status.value}, status_code=202,
                        headers=headers)


@router.get("")
async def list_jobs(
    state: StateDep,
    tenant: TenantDep,
    status: Annotated[JobStatus | None, Query(description="only jobs with this status")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="jobs per page")] = 20,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512, description="a page's next_cursor")] = None,
) -> JSONResponse:
    """The tenant's jobs still kept (`JOB_TTL_S`), newest first, each as `GET /api/v1/jobs/{job_id}` renders
    it; page with `next_cursor`."""
    position = decode_cursor(cursor) if cursor is not None else None
    page = await list_page(state, tenant.id, status, limit, position)
    return JSONResponse({"object": "list", "data": [render_job(record) for record in page.records],
                         "has_more": page.next_cursor is not None, "next_cursor": page.next_cursor})


@router.get("/{job_id}")
async def read_job(job_id: str, state: StateDep, tenant: TenantDep) -> JSONResponse:
    """The job's status and, once it has ended, its result or error."""
    record = await _owned_job(state, tenant, job_id)
    if not record.status.is_terminal and await settle_if_dead(state, job_id):
        record = await _owned_job(state, tenant, job_id)
    return JSONResponse(render_job(record))


@router.get("/{job_id}/events")
async def read_job_events(
    job_id: str,
    state: StateDep,
    tenant: TenantDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[str | None, Query(pattern=STREAM_ID_PATTERN)] = None,
) -> EventSourceResponse:
    """SSE of the job's events from the start, or after `Last-Event-ID` (or `?after=`); ends after the
    terminal event (`done`, `error` or `cancelled`)."""
    record = await _owned_job(state, tenant, job_id)
    resume_from = last_event_id or after or "0-0"
    if resume_from != "0-0" and not _is_stream_id(resume_from):
        raise InvalidRequest("Last-Event-ID must be an event id from this stream, like 1700000000000-0")
    return EventSourceResponse(_events(state, record.id, resume_from), ping=15, send_timeout=30)


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: str, state: StateDep, tenant: TenantDep) -> JSONResponse:
    """Cancel a queued or running job; a job that has already ended answers 409."""
    record = await _owned_job(state, tenant, job_id)
    outcome = await cancel_and_ring(state, record.id)
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


async def _owned_job(state: AppState, tenant: TenantSnapshot, job_id: str) -> JobRecord:
    record = await state.store.get(job_id)
    # Another tenant's job is indistinguishable from a missing one.
    if record is None or record.tenant_id != tenant.id:
        raise NotFound(f"No job with id '{job_id}'")
    return record


async def _events(state: AppState, job_id: str, after_id: str) -> AsyncIterator[dict[str, str]]:
    try:
        async for event in job_events(state, job_id, after_id=after_id):
            yield {"id": event.id, "event": event.kind.value, "data": json.dumps(event.data)}
    except GatewayError as error:
        yield {"event": "error", "data": json.dumps({"error": error.to_dict()})}
    except RedisError:
        # The stream stays resumable: the client reconnects with Last-Event-ID once Redis is back.
        unavailable = ServiceUnavailable("Redis became unavailable; reconnect with Last-Event-ID")
        yield {"event": "error", "data": json.dumps({"error": unavailable.to_dict()})}


def _is_stream_id(value: str) -> bool:
    left, _, right = value.partition("-")
    return left.isdigit() and right.isdigit()
