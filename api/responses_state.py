"""The state of a Responses API response as the routes see it: its stored record brought up to date from its
job (the worker settles a response when its job ends; the API settles it from the job record too, whichever
sees the end first, so a response outlives its job record), its history for `previous_response_id`, and the
replay of its job's events as Responses stream events with their sequence numbers
(`GET /v1/responses/{id}?stream=true&starting_after=N`). A replay still running at REQUEST_TIMEOUT_S ends
without a terminal event (the job runs on): the client resumes with `starting_after`."""

from collections.abc import AsyncIterator

from redis.exceptions import RedisError

from api.deps import AppState
from api.relay import job_events, settle_if_dead
from api.shards import ShardHandles
from api.streaming import render_event, sse_item
from shared.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    RedisUnavailable,
    UpstreamTimeout,
)
from shared.jobs import JobRecord
from shared.models import JobStatus, Message
from shared.response_store import ENDED, ResponseStore, StoredResponse
from shared.wire.responses import ResponseShell, ResponsesStreamRenderer

RUNNING = {JobStatus.QUEUED: "queued", JobStatus.RUNNING: "in_progress"}


def shell_of(stored: StoredResponse) -> ResponseShell:
    return ResponseShell(id=stored.id, model=stored.model, created_at=stored.created_at, echo=stored.echo)


async def current(state: AppState, shard: ShardHandles, responses: ResponseStore,
                  stored: StoredResponse) -> StoredResponse:
    """The response with its status now: settled from its job once that has ended (and saved so)."""
    if stored.status in ENDED:
        return stored
    record = await shard.store.get(stored.job_id)
    if record is not None and not record.status.is_terminal and await settle_if_dead(state, shard, stored.job_id):
        record = await shard.store.get(stored.job_id)
    if record is None:  # the job expired (JOB_TTL_S) and the worker could not settle the response
        error = GatewayError("The response's job expired before its outcome was read").to_dict()
        return await responses.settle(stored, JobStatus.FAILED, None, error)
    return await settle_from(responses, stored, record)


async def settle_from(responses: ResponseStore, stored: StoredResponse, record: JobRecord) -> StoredResponse:
    """The response as its job record says: settled (and saved so) once the job has ended, else running."""
    if not record.status.is_terminal:
        return stored.model_copy(update={"status": RUNNING.get(record.status, "in_progress")})
    return await responses.settle(stored, record.status, record.result, record.error)


async def owned(state: AppState, shard: ShardHandles, responses: ResponseStore, tenant_id: str,
                response_id: str) -> StoredResponse:
    """404 as OpenAI answers it for an id that is unknown, another tenant's, deleted or never stored."""
    stored = await responses.get(tenant_id, response_id)
    if stored is None:
        raise NotFound(f"Response with id '{response_id}' not found.")
    return await current(state, shard, responses, stored)


async def history(state: AppState, shard: ShardHandles, responses: ResponseStore, tenant_id: str,
                  previous_id: str | None) -> list[Message]:
    """The conversation a response chained with `previous_response_id` continues; 400 for an id that is not
    a stored response of this tenant, or one that has not ended yet."""
    if previous_id is None:
        return []
    stored = await responses.get(tenant_id, previous_id)
    if stored is None:
        raise InvalidRequest(f"Previous response with id '{previous_id}' not found.",
                             code="previous_response_not_found")
    stored = await current(state, shard, responses, stored)
    if stored.status not in ENDED:
        raise InvalidRequest(f"Previous response with id '{previous_id}' is still {stored.status}; chain to it "
                             "once it has ended", code="previous_response_not_ended")
    return stored.history()


async def replay(state: AppState, shard: ShardHandles, stored: StoredResponse,
                 starting_after: int | None) -> AsyncIterator[dict[str, str]]:
    """The job's events from its start rendered as the original stream rendered them, then followed live;
    only those numbered above `starting_after` are sent. Never cancels the job. The renderer numbers its
    events 0, 1, 2, ... in order, so the count rendered so far is the next event's number."""
    renderer = ResponsesStreamRenderer(shell_of(stored), "queued" if stored.echo.get("background") else "in_progress")
    skip = -1 if starting_after is None else starting_after
    rendered = 0
    for item in renderer.start():
        if rendered > skip:
            yield sse_item(item)
        rendered += 1
    sent_output = False
    try:
        async for event in job_events(state, shard, stored.job_id, cancel_at_deadline=False):
            items, done = render_event(event, renderer, sent_output)
            sent_output = sent_output or event.kind.is_output
            for item in items:
                if rendered > skip:
                    yield sse_item(item)
                rendered += 1
            if done:
                return
    except UpstreamTimeout:
        # REQUEST_TIMEOUT_S is up, not the response: no terminal event, so a client resumes after the last
        # sequence number it saw (an SSE comment, which clients skip, says so to a reader).
        yield {"comment": f"the response is still running; resume with starting_after={rendered - 1}"}
    except (GatewayError, RedisError) as error:
        failure = error if isinstance(error, GatewayError) else RedisUnavailable("Redis became unavailable")
        for item in renderer.error(failure):
            yield sse_item(item)
