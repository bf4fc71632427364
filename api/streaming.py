"""Attached streaming (`stream: true`): relays a job's events to the client as SSE in the request's wire
format, or replays a cached answer in its original chunking. A retry that restarts after tokens were
sent, or a failure after the first token, ends the stream with an explicit error event, never a silent
clean end. A client that disconnects cancels its job (STREAM_DISCONNECT=cancel, the default: the worker bills
the tokens already produced), unless other requests share it; with STREAM_DISCONNECT=finish the job runs on
and is billed in full."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse

from api.deps import AppState
from api.relay import Result, cancel_job, error_from_event, job_events, result_from
from api.shards import ShardHandles
from shared.cache import CachedAnswer
from shared.errors import GatewayError, JobCancelled, RedisUnavailable, StreamInterrupted
from shared.models import Delta
from shared.streams import FIRST_START_ID, Event, EventKind, delta_from_event
from shared.wire.codec import StreamRenderer

logger = logging.getLogger(__name__)

SSEvents = list[tuple[str | None, str]]
OnDone = Callable[[Result], Awaitable[None]]


def stream_job(state: AppState, shard: ShardHandles, job_id: str, renderer: StreamRenderer, headers: dict[str, str], *,
               owns_job: bool, on_done: OnDone | None = None) -> EventSourceResponse:
    """SSE of a job's answer; `owns_job` is False for a request that joined another's job."""
    events = _relay(state, shard, job_id, renderer, owns_job=owns_job, on_done=on_done)
    return EventSourceResponse(events, headers={"x-gateway-job-id": job_id, **headers}, ping=15, send_timeout=30)


def stream_cached(answer: CachedAnswer, renderer: StreamRenderer, headers: dict[str, str]) -> EventSourceResponse:
    return EventSourceResponse(_replay(answer, renderer), headers=headers, ping=15, send_timeout=30)


async def _replay(answer: CachedAnswer, renderer: StreamRenderer) -> AsyncIterator[dict[str, str]]:
    completion = answer.completion
    items = renderer.start(completion.usage.prompt_tokens)
    for delta in answer.deltas():  # text, thinking, tool call pieces, refusals in their order
        items += renderer.delta(delta)
    items += renderer.finish(completion)
    for item in items:
        yield sse_item(item)


async def _relay(state: AppState, shard: ShardHandles, job_id: str, renderer: StreamRenderer, *, owns_job: bool,
                 on_done: OnDone | None) -> AsyncIterator[dict[str, str]]:
    ended = False
    try:
        for item in renderer.start():
            yield sse_item(item)
        sent_tokens = False
        # After the first start's fixed id (it renders nothing): the first read waits for output.
        async for event in job_events(state, shard, job_id, after_id=FIRST_START_ID, cancel_at_deadline=owns_job):
            items, done = render_event(event, renderer, sent_tokens)
            sent_tokens = sent_tokens or event.kind.is_output
            for item in items:
                yield sse_item(item)
            if done:
                # A restart after output was sent is ended by us: the job must stop too (finally below).
                ended = event.kind.is_terminal
                if event.kind is EventKind.DONE and on_done is not None:
                    await on_done(result_from(event))
                return
    except (GatewayError, RedisError) as error:
        ended = True
        failure = error if isinstance(error, GatewayError) else RedisUnavailable("Redis became unavailable")
        for item in renderer.error(failure):
            yield sse_item(item)
    finally:
        if not ended and owns_job and state.settings.stream_disconnect == "cancel":
            await asyncio.shield(_cancel_abandoned(state, shard, job_id))


def render_event(event: Event, renderer: StreamRenderer, sent_tokens: bool) -> tuple[SSEvents, bool]:
    """The SSE items for one job event, and whether the stream is over: the attached stream's and the
    Responses replay's (api/responses_state.py) one mapping from job events to a renderer."""
    if event.kind is EventKind.TOKEN and len(event.data) == 1:  # plain text: the hot path
        return renderer.delta(Delta(text=str(event.data.get("text", "")))), False
    if event.kind.is_output:  # thinking, a tool call's piece, a refusal, text with logprobs
        return renderer.delta(delta_from_event(event.kind, event.data)), False
    if event.kind is EventKind.RESET and sent_tokens:
        return renderer.error(StreamInterrupted("The worker restarted the request after output was sent")), True
    if event.kind is EventKind.DONE:
        return renderer.finish(result_from(event).completion), True
    if event.kind is EventKind.ERROR:
        return renderer.error(error_from_event(event)), True
    if event.kind is EventKind.CANCELLED:
        return renderer.error(JobCancelled("The job was cancelled")), True
    return [], False


async def _cancel_abandoned(state: AppState, shard: ShardHandles, job_id: str) -> None:
    try:
        await cancel_job(state, shard, job_id, unless_shared=True)
    except Exception as exc:  # the client is gone; a failed cancel only means the job runs to its end
        logger.warning("could not cancel abandoned job %s: %s", job_id, type(exc).__name__)


def sse_item(item: tuple[str | None, str]) -> dict[str, str]:
    """A renderer's (event name or None, data) as sse_starlette's dict."""
    event, data = item
    return {"data": data} if event is None else {"event": event, "data": data}
