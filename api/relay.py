"""From a job's Redis Stream back to the client: wait for the final event (synchronous requests), or relay
events as they arrive (SSE), resuming after a `Last-Event-ID`. Never polls arq for results: the worker
pushes them; arq is only asked, while the stream is idle, whether the job died outside our code."""

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from api.deps import AppState
from api.shards import ShardHandles
from shared.errors import GatewayError, JobCancelled, UpstreamTimeout, error_from_dict
from shared.jobs import CancelOutcome
from shared.models import Completion
from shared.streams import FIRST_START_ID, Event, EventKind, read_events

IDLE_CHECK_MS = 1000


@dataclass(frozen=True)
class Result:
    completion: Completion
    cost_usd: float
    fallback_used: bool
    provider_s: float = 0.0


async def job_events(state: AppState, shard: ShardHandles, job_id: str, *, after_id: str = "0-0",
                     timeout_s: float | None = None,
                     cancel_at_deadline: bool = False) -> AsyncIterator[Event]:
    """Events after `after_id` up to and including the terminal one; UpstreamTimeout once the job has not
    ended within `timeout_s` (REQUEST_TIMEOUT_S). Only the request that created the job passes
    `cancel_at_deadline`: a follower, a repeat or a request sharing the job stops reading and the job runs on."""
    deadline = time.monotonic() + (timeout_s or state.settings.request_timeout_s)
    async for event in read_events(shard.redis, job_id, after_id=after_id, block_ms=IDLE_CHECK_MS):
        if event is not None:
            yield event
            continue
        if time.monotonic() > deadline:
            if cancel_at_deadline:
                # Nobody will read the answer: stop the job rather than bill for it (unless others wait on it).
                await cancel_job(state, shard, job_id, unless_shared=True)
            raise UpstreamTimeout("Timed out waiting for the job to finish")
        await settle_if_dead(state, shard, job_id)


async def cancel_job(state: AppState, shard: ShardHandles, job_id: str, *,
                     unless_shared: bool = False) -> CancelOutcome:
    """Cancel a job and ring the workers' doorbell, so a running job's abort is seen at once."""
    outcome = await shard.store.request_cancel(job_id, unless_shared=unless_shared)
    if outcome.changed:
        await shard.queue.ring()
    return outcome


async def settle_if_dead(state: AppState, shard: ShardHandles, job_id: str) -> bool:
    """Fail a job that arq ended without running our code (expired, retries exhausted); True if it did.
    The write is a no-op when the worker ended the job first, so a race with a real result is harmless."""
    record = await shard.store.get(job_id)
    if record is None:
        # Expired, or never created (a submission that failed after claiming a cache leadership).
        raise GatewayError("The job no longer exists")
    reason = await shard.queue.died_without_result(job_id, record)
    if reason is None:
        return False
    return await shard.store.fail(job_id, GatewayError(f"The job failed in the queue: {reason}"))


async def wait_for_result(state: AppState, shard: ShardHandles, job_id: str, *, owns_job: bool = True) -> Result:
    """The job's result; `owns_job` is False for a request that joined another's job (a repeat, or an
    identical request in flight), which must not cancel it when its own wait times out."""
    # After the start event's fixed id: one read, woken by the outcome (shared/streams.py FIRST_START_ID).
    async for event in job_events(state, shard, job_id, after_id=FIRST_START_ID, cancel_at_deadline=owns_job):
        if event.kind is EventKind.DONE:
            return result_from(event)
        if event.kind is EventKind.ERROR:
            raise error_from_event(event)
        if event.kind is EventKind.CANCELLED:
            raise JobCancelled("The job was cancelled")
    raise GatewayError("The job's event stream ended without a result")


def result_from(event: Event) -> Result:
    cost = event.data.get("cost_usd", 0.0)
    return Result(
        completion=Completion.model_validate(event.data["completion"]),
        cost_usd=float(cost) if isinstance(cost, int | float) else 0.0,
        fallback_used=bool(event.data.get("fallback_used", False)),
        provider_s=float(provider_ms) / 1000 if isinstance(provider_ms := event.data.get("provider_ms"), int | float)
        else 0.0,
    )


def error_from_event(event: Event) -> GatewayError:
    error = event.data.get("error")
    return error_from_dict(error) if isinstance(error, dict) else GatewayError("The job failed")
