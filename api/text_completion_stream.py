"""Streamed legacy completions (`POST /v1/completions` with `stream: true`): a job's `token` events (a choice's text
since the last one, `{"text", "index", "logprobs"?}`) as OpenAI `text_completion` chunks, then a chunk per choice
with its finish reason, the usage chunk when the client asked (`stream_options.include_usage`), and `[DONE]`; a
cached answer is replayed the same way, one chunk per choice. A failure ends the stream with an explicit error
chunk, never a clean end; so does a retried attempt (a `reset` event: the worker restarted the job) once text was
sent, since the new attempt's text would repeat it (as api/streaming.py does). A client that disconnects cancels
the job it owns (STREAM_DISCONNECT=cancel, as chat streams do)."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from fastapi import Request, Response
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse

from api.deps import AppState
from api.endpoint_flow import EndpointRequest, record_shared
from api.relay import cancel_job, error_from_event, job_events, result_from
from api.responses import hit_headers
from api.shards import ShardHandles
from api.submit import Submission
from shared.endpoint import TextChoice, TextCompletionOutput
from shared.errors import GatewayError, JobCancelled, RedisUnavailable, StreamInterrupted
from shared.models import Completion
from shared.streams import FIRST_START_ID, EventKind
from shared.tenant_cache import TenantSnapshot
from shared.wire._common import dumps
from shared.wire.openai_render import render_error
from shared.wire.openai_text_completions import render_text_choices

logger = logging.getLogger(__name__)


async def stream_text_completion(state: AppState, shard: ShardHandles, http: Request, tenant: TenantSnapshot,
                                 call: EndpointRequest,
                                 submission: Submission, owns_job: bool) -> Response:
    head: dict[str, object] = {"id": f"cmpl-{submission.job_id or 'cached'}", "object": "text_completion",
                               "created": int(time.time()), "model": call.model}
    include_usage = bool(getattr(call, "include_usage", False))
    if submission.hit is not None:
        chunks = _replay(head, submission.hit.completion, include_usage)
        headers = {**submission.headers, **hit_headers(submission.hit)}
    else:
        chunks = _relay(state, shard, http, tenant, call, submission, head, include_usage, owns_job)
        headers = {"x-gateway-job-id": submission.job_id, **submission.headers}
    return EventSourceResponse(chunks, headers=headers, ping=15, send_timeout=30)


async def _replay(head: dict[str, object], completion: Completion,
                  include_usage: bool) -> AsyncIterator[dict[str, str]]:
    output = completion.output if isinstance(completion.output, TextCompletionOutput) else None
    pieces = [choice.model_copy(update={"finish_reason": None}) for choice in output.choices] if output else []
    yield _chunk(head, render_text_choices(pieces))
    for item in _ending(head, completion, include_usage):
        yield item


async def _relay(state: AppState, shard: ShardHandles, http: Request, tenant: TenantSnapshot, call: EndpointRequest,
                 submission: Submission, head: dict[str, object], include_usage: bool,
                 owns_job: bool) -> AsyncIterator[dict[str, str]]:
    ended = sent = False
    try:
        # After the first start's fixed id (it renders nothing): the first read waits for output.
        async for event in job_events(state, shard, submission.job_id, after_id=FIRST_START_ID,
                                      cancel_at_deadline=owns_job):
            if event.kind is EventKind.TOKEN:
                sent = True
                yield _chunk(head, [{"text": event.data.get("text", ""), "index": event.data.get("index", 0),
                                     "logprobs": event.data.get("logprobs"), "finish_reason": None}])
            elif event.kind is EventKind.RESET and sent:
                # Not `ended`: the job runs on for nobody, so the finally below cancels it (if ours).
                yield {"data": dumps(render_error(StreamInterrupted(
                    "The worker restarted the request after output was sent")))}
                return
            elif event.kind is EventKind.DONE:
                ended = True
                result = result_from(event)
                await record_shared(state, shard, http, tenant, call, submission, result)
                for item in _ending(head, result.completion, include_usage):
                    yield item
                return
            elif event.kind is EventKind.ERROR:
                raise error_from_event(event)
            elif event.kind is EventKind.CANCELLED:
                raise JobCancelled("The job was cancelled")
    except (GatewayError, RedisError) as error:
        ended = True
        failure = error if isinstance(error, GatewayError) else RedisUnavailable("Redis became unavailable")
        yield {"data": dumps(render_error(failure))}
    finally:
        if not ended and owns_job and state.settings.stream_disconnect == "cancel":
            await asyncio.shield(_cancel_abandoned(state, shard, submission.job_id))


def _ending(head: dict[str, object], completion: Completion, include_usage: bool) -> list[dict[str, str]]:
    output = completion.output if isinstance(completion.output, TextCompletionOutput) else None
    finals = [TextChoice(index=choice.index, text="", finish_reason=choice.finish_reason)
              for choice in (output.choices if output else [])]
    items = [_chunk(head, render_text_choices(finals))]
    if include_usage:
        usage = completion.usage
        items.append({"data": dumps({**head, "choices": [], "usage": {
            "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}})})
    items.append({"data": "[DONE]"})
    return items


def _chunk(head: dict[str, object], choices: list[dict[str, object]]) -> dict[str, str]:
    return {"data": dumps({**head, "choices": choices})}


async def _cancel_abandoned(state: AppState, shard: ShardHandles, job_id: str) -> None:
    try:
        await cancel_job(state, shard, job_id, unless_shared=True)
    except Exception as exc:  # the client is gone; a failed cancel only means the job runs to its end
        logger.warning("could not cancel abandoned job %s: %s", job_id, type(exc).__name__)
