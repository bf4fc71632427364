"""OpenAI's Responses API on any provider: `POST /v1/responses` runs as an ordinary chat job (the worker calls
Chat Completions or Messages) and its answer is rendered as a `response` object or Responses stream events.
The gateway keeps response state itself (shared/response_store.py), so `previous_response_id` chains across
providers; `background: true` is a job answered at once with `queued`, read back, cancelled, deleted, or
streamed again from any sequence number. The official `openai` SDK works unmodified."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from api.body import read_json_object
from api.deps import AppState, StateDep, TenantDep, TenantShardDep
from api.relay import Result, cancel_job, wait_for_result
from api.request_context import request_context
from api.responses import served_headers
from api.responses_state import current, history, owned, replay, settle_from, shell_of
from api.shards import ShardHandles
from api.streaming import stream_job
from api.submit import DROPPED_HEADER, Submission, SubmitOptions, submit
from api.wire_routes import OpenAIRoute
from shared.errors import InvalidRequest, NotFound, UnsupportedParameter, error_from_dict
from shared.fair_queue import Priority
from shared.models import ChatRequest, JobStatus, WireFormat
from shared.response_store import ENDED, ResponseStore, StoredResponse, response_id_of
from shared.tenant_cache import TenantSnapshot
from shared.webhooks import validate_callback_url
from shared.wire.responses import (
    INPUT_ITEM_INCLUDES,
    RESPONSE_INCLUDES,
    ResponsesRequest,
    ResponsesStreamRenderer,
    check_include,
    parse_responses_request,
    render_response,
    response_status,
    responses_param,
    responses_refusal,
)
from shared.wire.responses_items import input_items

router = APIRouter(route_class=OpenAIRoute, tags=["openai"])

GATEWAY_FIELDS = frozenset({"callback_url"})
"""The gateway's own body field (a background response's webhook, as on `POST /api/v1/jobs`)."""
ResponseId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_\-]+$")]


def get_response_store(state: StateDep, shard: TenantShardDep) -> ResponseStore:
    return ResponseStore(shard.redis, ttl_s=state.settings.response_retention_s)


ResponsesDep = Annotated[ResponseStore, Depends(get_response_store)]


@router.post("/v1/responses", response_model=None)
async def create_response(request: Request, state: StateDep, shard: TenantShardDep, tenant: TenantDep,
                          responses: ResponsesDep) -> Response:
    """Create a model response (OpenAI Responses format), served by whichever target of the model's route
    answers; `stream`, `background`, `store` and `previous_response_id` as OpenAI's."""
    body = await read_json_object(request, state.settings.max_body_bytes)
    callback_url = _callback_url(state, body)
    parsed = parse_responses_request({key: value for key, value in body.items() if key not in GATEWAY_FIELDS})
    earlier = await history(state, shard, responses, tenant.id, parsed.previous_response_id)
    # A background response always streams into its job's events, so it can be streamed again later.
    chat = parsed.chat.model_copy(update={"messages": [*earlier, *parsed.chat.messages],
                                          "stream": parsed.chat.stream or parsed.background})
    options = SubmitOptions(callback_url=callback_url, idempotency_body=body,
                            priority=Priority.BATCH if parsed.background else Priority.INTERACTIVE)
    # Never read from or written to the response cache: a response is stored state with its own id.
    try:
        submission = await submit(state, shard, request, tenant, chat, WireFormat.RESPONSES, None, options)
    except UnsupportedParameter as refused:
        raise responses_refusal(refused) from refused
    submission.headers = _named_for_client(submission.headers)
    request_context(request).headers = submission.headers
    stored = await _stored(state, shard, responses, tenant, parsed, chat, submission, body)
    return await _answer(state, shard, responses, parsed, stored, submission)


async def _stored(state: AppState, shard: ShardHandles, responses: ResponseStore, tenant: TenantSnapshot,
                  parsed: ResponsesRequest,
                  chat: ChatRequest, submission: Submission, body: dict[str, object]) -> StoredResponse:
    response_id = response_id_of(submission.job_id)
    if submission.replayed and (earlier := await responses.get(tenant.id, response_id)) is not None:
        return await current(state, shard, responses, earlier)  # an Idempotency-Key's repeat: the first response, now
    stored = StoredResponse(id=response_id, tenant_id=tenant.id, job_id=submission.job_id, model=chat.model,
                            echo=parsed.echo, input_items=input_items(body.get("input"), response_id),
                            system=chat.system, conversation=chat.messages)
    if not parsed.store:
        return stored
    await responses.save(stored)
    if parsed.background or parsed.chat.stream:
        # The worker settles a response saved before its job ended; one whose job ended first (the job was
        # queued before this save) is settled here. A waited-for answer is settled below.
        record = await shard.store.get(submission.job_id)
        if record is not None:
            return await settle_from(responses, stored, record)
    return stored


async def _answer(state: AppState, shard: ShardHandles, responses: ResponseStore, parsed: ResponsesRequest,
                  stored: StoredResponse,
                  submission: Submission) -> Response:
    shell = shell_of(stored)
    headers = {"x-gateway-job-id": submission.job_id, **submission.headers}
    if parsed.background and not parsed.chat.stream:
        # A new response is answered `queued`, as OpenAI answers it, unless its job has already ended; an
        # Idempotency-Key's repeat is answered as the response is now.
        fresh = not submission.replayed and stored.status not in ENDED
        return JSONResponse(_render(stored.model_copy(update={"status": None}) if fresh else stored), headers=headers)
    if parsed.background:
        # A background stream is the replay of its job's events from the start: a disconnect leaves the job
        # running (as OpenAI's does), and REQUEST_TIMEOUT_S ends the stream without a terminal event.
        return EventSourceResponse(replay(state, shard, stored, None), headers=headers, ping=15, send_timeout=30)

    async def settle(result: Result) -> None:
        if parsed.store:
            await responses.settle(stored, JobStatus.SUCCEEDED, result.completion, None)

    owns_job = not submission.replayed
    if parsed.chat.stream:
        renderer = ResponsesStreamRenderer(shell, "in_progress")
        return stream_job(state, shard, submission.job_id, renderer, submission.headers, owns_job=owns_job,
                          on_done=settle)
    result = await wait_for_result(state, shard, submission.job_id, owns_job=owns_job)
    await settle(result)
    status = response_status(result.completion)[0]
    return JSONResponse(render_response(shell, status=status, completion=result.completion),
                        headers={**headers, **served_headers(submission.job_id, result, result.cost_usd)})


@router.get("/v1/responses/{response_id}", response_model=None)
async def get_response(
    request: Request,
    response_id: ResponseId,
    state: StateDep, shard: TenantShardDep,
    tenant: TenantDep,
    responses: ResponsesDep,
    stream: Annotated[bool, Query(description="replay the response's events, then follow them")] = False,
    starting_after: Annotated[int | None, Query(ge=-1, description="send only events numbered above this")] = None,
) -> Response:
    """A stored response in its current state; with `stream=true`, its events from the start (or after
    `starting_after`) and then live, with the sequence numbers its first stream had."""
    check_include(_query_list(request, "include"), RESPONSE_INCLUDES)
    stored = await owned(state, shard, responses, tenant.id, response_id)
    if starting_after is not None and not stream:
        raise InvalidRequest("'starting_after' is only valid with stream=true")
    if stream:
        return EventSourceResponse(replay(state, shard, stored, starting_after), ping=15, send_timeout=30)
    return JSONResponse(_render(stored))


@router.post("/v1/responses/{response_id}/cancel")
async def cancel_response(response_id: ResponseId, state: StateDep, shard: TenantShardDep, tenant: TenantDep,
                          responses: ResponsesDep) -> JSONResponse:
    """Cancel a background response; one that has already ended is answered as it is."""
    stored = await owned(state, shard, responses, tenant.id, response_id)
    if not stored.echo.get("background"):
        raise InvalidRequest("Only responses created with background=true can be cancelled.")
    outcome = await cancel_job(state, shard, stored.job_id)
    stored = await current(state, shard, responses, stored)
    if outcome.changed and stored.status not in ("completed", "incomplete", "failed"):
        stored = stored.model_copy(update={"status": "cancelled"})
    return JSONResponse(_render(stored))


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: ResponseId, tenant: TenantDep, responses: ResponsesDep) -> JSONResponse:
    """Forget a stored response (its job, if still running, runs on: cancel it first to stop it)."""
    if not await responses.delete(tenant.id, response_id):
        raise NotFound(f"Response with id '{response_id}' not found.")
    return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})


@router.get("/v1/responses/{response_id}/input_items")
async def list_input_items(
    request: Request,
    response_id: ResponseId,
    tenant: TenantDep,
    responses: ResponsesDep,
    limit: Annotated[int, Query(ge=1, le=100, description="items per page")] = 20,
    order: Annotated[Literal["asc", "desc"], Query(description="'desc' (newest first) or 'asc'")] = "desc",
    after: Annotated[str | None, Query(min_length=1, max_length=200, description="an item id to page after")]
    = None,
) -> JSONResponse:
    """The input items of a stored response (this request's own, not its `previous_response_id` history),
    paged as OpenAI pages them; `include` values are checked (items are listed as sent, so the honoured
    ones are always in them)."""
    check_include(_query_list(request, "include"), INPUT_ITEM_INCLUDES)
    stored = await responses.get(tenant.id, response_id)
    if stored is None:
        raise NotFound(f"Response with id '{response_id}' not found.")
    items = stored.input_items if order == "asc" else list(reversed(stored.input_items))
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequest(f"'after' {after!r} is not an input item of response {response_id}")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return JSONResponse({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                         "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit})


def _query_list(request: Request, name: str) -> list[str]:
    """An array query parameter as `name=a&name=b`, or as the openai SDK sends it: `name[]=a&name[]=b`."""
    return [*request.query_params.getlist(name), *request.query_params.getlist(f"{name}[]")]


def _named_for_client(headers: dict[str, str]) -> dict[str, str]:
    """The parameters the serving target leaves out, by the names the Responses client sent them."""
    dropped = headers.get(DROPPED_HEADER)
    if not dropped:
        return headers
    return {**headers, DROPPED_HEADER: ",".join(sorted(responses_param(name) for name in dropped.split(",")))}


def _render(stored: StoredResponse) -> dict[str, object]:
    error = error_from_dict(stored.error) if stored.error is not None else None
    return render_response(shell_of(stored), status=stored.status or "queued", completion=stored.completion,
                           error=error)


def _callback_url(state: AppState, body: dict[str, object]) -> str | None:
    """A background response's webhook URL, validated as `POST /api/v1/jobs` validates it."""
    if body.get("callback_url") is None:
        return None
    if not body.get("background"):
        raise InvalidRequest("'callback_url' is only valid with background=true")
    if not state.settings.webhook_secret:
        raise InvalidRequest("This gateway does not send webhooks (WEBHOOK_SECRET is unset); omit callback_url")
    return validate_callback_url(body["callback_url"], allow_private=state.settings.webhooks_allow_private)
