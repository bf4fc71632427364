"""Attached streaming (`stream: true`): relays a job's events to the client as SSE in the request's wire
format. A retry that restarts after tokens were sent, or a failure after the first token, ends the stream
with an explicit error event, never a silent clean end. A client that disconnects cancels its job."""

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from sse_starlette import EventSourceResponse

from api.deps import AppState
from api.relay import error_from_event, job_events, result_from
from shared.errors import GatewayError, JobCancelled, StreamInterrupted
from shared.jobs import JobRecord
from shared.models import FinishReason, Usage
from shared.streams import Event, EventKind

logger = logging.getLogger(__name__)

SSEvents = list[tuple[str | None, str]]


class StreamRenderer(Protocol):
    def start(self, prompt_tokens: int = 0) -> SSEvents: ...
    def delta(self, text: str) -> SSEvents: ...
    def finish(self, finish_reason: FinishReason, usage: Usage, provider: str) -> SSEvents: ...
    def error(self, error: GatewayError) -> SSEvents: ...


def stream_response(state: AppState, record: JobRecord, renderer: StreamRenderer) -> EventSourceResponse:
    headers = {"x-gateway-job-id": record.id}
    return EventSourceResponse(_relay(state, record, renderer), headers=headers, ping=15, send_timeout=30)


async def _relay(state: AppState, record: JobRecord, renderer: StreamRenderer) -> AsyncIterator[dict[str, str]]:
    ended = False
    try:
        for item in renderer.start():
            yield _sse(item)
        sent_tokens = False
        async for event in job_events(state, record.id):
            items, done = _render(event, renderer, sent_tokens)
            sent_tokens = sent_tokens or event.kind is EventKind.TOKEN
            for item in items:
                yield _sse(item)
            if done:
                # A restart after output was sent is ended by us: the job must stop too (finally below).
                ended = event.kind.is_terminal
                return
    except GatewayError as error:
        ended = True
        for item in renderer.error(error):
            yield _sse(item)
    finally:
        if not ended:
            await asyncio.shield(_cancel_abandoned(state, record.id))


def _render(event: Event, renderer: StreamRenderer, sent_tokens: bool) -> tuple[SSEvents, bool]:
    """The SSE items for one job event, and whether the stream is over."""
    if event.kind is EventKind.TOKEN:
        return renderer.delta(str(event.data.get("text", ""))), False
    if event.kind is EventKind.RESET and sent_tokens:
        return renderer.error(StreamInterrupted("The worker restarted the request after output was sent")), True
    if event.kind is EventKind.DONE:
        completion = result_from(event).completion
        return renderer.finish(completion.finish_reason, completion.usage, completion.provider), True
    if event.kind is EventKind.ERROR:
        return renderer.error(error_from_event(event)), True
    if event.kind is EventKind.CANCELLED:
        return renderer.error(JobCancelled("The job was cancelled")), True
    return [], False


async def _cancel_abandoned(state: AppState, job_id: str) -> None:
    try:
        await state.store.request_cancel(job_id)
    except Exception as exc:  # the client is gone; a failed cancel only means the job runs to its end
        logger.warning("could not cancel abandoned job %s: %s", job_id, type(exc).__name__)


def _sse(item: tuple[str | None, str]) -> dict[str, str]:
    event, data = item
    return {"data": data} if event is None else {"event": event, "data": data}
