"""The completion job: claim the job, run it through the router, append tokens to the job's stream, and
commit the outcome (terminal event, job state and usage record) in one transaction. The job's only
argument is its id; the request lives in the job record, never in the queue payload."""

import asyncio
import logging
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.budget_alert_check import check_budget_alerts
from shared.cache import Chunk
from shared.endpoint_requests import estimate_input_tokens
from shared.errors import GatewayError, ModelNotFound
from shared.jobs import JobOutcome, JobRecord, claimed, usage_row
from shared.logs import JOB_ID, REQUEST_ID
from shared.metrics import COST_USD, FALLBACKS, JOBS, PROVIDER_DURATION, TIME_TO_FIRST_TOKEN, TOKENS
from shared.models import ChatRequest, Completion, FinishReason, JobStatus, Usage
from shared.queue_end import QueueEnd
from shared.reservation import unsent_ceiling
from shared.response_store import settle_job_response
from shared.routing_table import Target
from shared.wire.codec import codec_for
from worker.claimed_job import CLAIMED_RECORD, QUEUE_END
from worker.deps import WorkerDeps, deps_from
from worker.endpoint_jobs import execute_endpoint
from worker.routing import Served
from worker.stream_output import (
    FLUSH_INTERVAL_S,
    FLUSH_MAX_CHARS,
    OutputEvent,
    StreamOutput,
    TtlRenewal,
    chunk_of,
)

logger = logging.getLogger(__name__)


async def run_completion(ctx: dict[str, Any], job_id: str) -> str:
    deps = deps_from(ctx)
    JOB_ID.set(job_id)
    record = await _claim(deps, ctx, job_id)
    if record is None:
        return "skipped"
    queue_end = ctx.get(QUEUE_END)
    queue_end = queue_end if isinstance(queue_end, QueueEnd) else None
    REQUEST_ID.set(record.request_id)
    started = time.monotonic()
    progress = _Progress()
    try:
        outcome = await _execute(deps, record, progress)
    except asyncio.CancelledError:
        if await deps.store.cancel_requested(job_id):
            await asyncio.shield(_finish(deps, record, _cancelled(deps, record, progress), started, queue_end))
        else:
            # Worker shutdown: arq re-queues the job; undo on_job_start's future score so it runs again now.
            await asyncio.shield(_requeue_now(deps, job_id))
        raise
    except GatewayError as error:
        outcome = JobOutcome(status=JobStatus.FAILED, error=error.to_dict())
    except Exception:
        # The job's edge: anything unexpected becomes a failed job with a terminal event, never a hang.
        logger.exception("job %s crashed", job_id)
        outcome = JobOutcome(status=JobStatus.FAILED, error=GatewayError("internal error in worker").to_dict())
    await _finish(deps, record, outcome, started, queue_end)
    return outcome.status.value


async def _claim(deps: WorkerDeps, ctx: dict[str, Any], job_id: str) -> JobRecord | None:
    """The job's record, claimed for this attempt: by the worker's pick script already (its fields before the
    claim are in the context), or here (arq's own worker)."""
    attempt = int(ctx.get("job_try", 1))
    fields = ctx.get(CLAIMED_RECORD)
    if isinstance(fields, dict):
        return claimed(fields, attempt, deps.worker_id)
    return await deps.store.mark_running(job_id, attempt, deps.worker_id)


async def _requeue_now(deps: WorkerDeps, job_id: str) -> None:
    await deps.redis.zadd(deps.settings.queue_name, {job_id: int(time.time() * 1000)}, xx=True)


@dataclass
class _Progress:
    """What a streaming attempt has produced so far; a job cancelled mid-stream is billed for it."""

    chunks: list[Chunk] = field(default_factory=list)
    served: Served | None = None
    deltas: int = 0  # output deltas (text, thinking, tool call pieces, refusal): about one token each


def _cancelled(deps: WorkerDeps, record: JobRecord, progress: _Progress) -> JobOutcome:
    """A cancelled job's outcome. The upstream call stopped mid-stream has billed its prompt and the tokens
    sent so far (`_produced_usage`)."""
    if progress.served is None:
        return JobOutcome(status=JobStatus.CANCELLED)
    target = progress.served.target
    usage = _produced_usage(record, progress)
    return JobOutcome(status=JobStatus.CANCELLED, provider=target.provider, model=target.model,
                      prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                      cost_usd=deps.prices.cost_usd(target.model, usage),
                      fallback_used=progress.served.fallback_used,
                      dropped_params=list(progress.served.dropped_params))


async def _execute(deps: WorkerDeps, record: JobRecord, progress: _Progress) -> JobOutcome:
    request = record.request
    if not isinstance(request, ChatRequest):  # embeddings, legacy completions: their own modules
        return await execute_endpoint(deps, record)
    targets = deps.routing_table.targets_for(request.model)
    if not targets:
        raise ModelNotFound(f"The model '{request.model}' does not exist")
    chunks = progress.chunks
    provider_started = time.monotonic()
    if request.stream:
        completion, served = await _stream(deps, record, request, targets, progress)
    else:
        completion, served = await deps.router.complete(request, targets, allow_drop=_allow_drop(deps, record))
    provider_s = time.monotonic() - provider_started
    PROVIDER_DURATION.labels(completion.provider).observe(provider_s)
    prefix = codec_for(record.wire_format).id_prefix  # `resp_job_...` names a Responses job's response
    completion = completion.model_copy(update={"id": f"{prefix}{record.id}", "created": int(record.created_at)})
    cost = deps.prices.cost_usd(completion.model, completion.usage)
    _check_ceiling(deps, record, request, served.target, completion.usage)
    return JobOutcome(
        status=JobStatus.SUCCEEDED, completion=completion, cost_usd=cost, fallback_used=served.fallback_used,
        provider=completion.provider, model=completion.model,
        prompt_tokens=completion.usage.prompt_tokens, completion_tokens=completion.usage.completion_tokens,
        cached_prompt_tokens=completion.usage.cached_prompt_tokens, chunks=chunks,
        provider_ms=int(provider_s * 1000),
    )


async def _stream(
    deps: WorkerDeps, record: JobRecord, request: ChatRequest, targets: list[Any], progress: _Progress
) -> tuple[Completion, Served]:
    """Relay deltas to the job stream, coalescing those of one kind that arrive within a few ms into one entry
    (worker/stream_output.py); `chunks` receives each entry as the cache keeps it, the chunking a hit replays."""
    chunks = progress.chunks
    output: StreamOutput | None = None
    last_flush = float("-inf")  # the first output goes out at once
    served: Served | None = None
    ceiling: int | None = None
    ttl = TtlRenewal(deps.settings.job_ttl_s)
    async with aclosing(deps.router.stream(request, targets, allow_drop=_allow_drop(deps, record))) as deltas:
        async for current, delta in deltas:
            if output is None:
                TIME_TO_FIRST_TOKEN.labels(current.target.provider).observe(time.time() - record.created_at)
                ceiling = _held_ceiling(deps, record, request, current.target)
                output = StreamOutput(current.target.provider)
            served = progress.served = current
            for ready in output.add(delta):
                chunks.append(await _append_output(deps, record.id, ready, ttl))
            progress.deltas = output.deltas
            now = time.monotonic()
            if output.has_pending and (now - last_flush >= FLUSH_INTERVAL_S or output.pending_chars >= FLUSH_MAX_CHARS):
                chunks.append(await _append_output(deps, record.id, output.flush(), ttl))
                last_flush = now
            if ceiling is not None and output.deltas >= ceiling:
                # What the budget reserved is used up: end here, as the model does at its maximum, and bill
                # what was produced (the closed stream sends no usage).
                logger.warning("job %s reached the %d output tokens reserved for %s; stream ended", record.id,
                               ceiling, current.target.model)
                output.finish_reason, output.usage = FinishReason.LENGTH, _produced_usage(record, progress)
                break
    if output is None or served is None:
        raise GatewayError("the provider returned an empty stream")
    if output.has_pending:
        chunks.append(await _append_output(deps, record.id, output.flush(), ttl))
    completion = output.completion(record.id, served.target.model)
    return completion.model_copy(update={"dropped_params": list(served.dropped_params)}), served


def _allow_drop(deps: WorkerDeps, record: JobRecord) -> frozenset[str]:
    """What a target may leave out: the route's `drop_params` and the client's `x-gateway-drop-params`."""
    return deps.routing_table.drop_params_for(record.request.model) | frozenset(record.drop_params)


def _held_ceiling(deps: WorkerDeps, record: JobRecord, request: ChatRequest, target: Target) -> int | None:
    """The output a budgeted job's reservation covers on `target` when the provider is not told a limit
    (shared/reservation.py); None when the provider enforces it, or the tenant has no budget to protect."""
    if record.admission is None or not record.admission.budgeted:
        return None
    return unsent_ceiling(request, target, deps.prices)


def _check_ceiling(deps: WorkerDeps, record: JobRecord, request: ChatRequest, target: Target, usage: Usage) -> None:
    """A non-streamed answer cannot be cut: one longer than the price table's maximum is billed in full, and
    said, since its reservation was too small (the table understates the model's maximum output)."""
    ceiling = _held_ceiling(deps, record, request, target)
    if ceiling is not None and usage.completion_tokens > ceiling:
        logger.warning("job %s: %s answered %d output tokens, more than the %d of its max_output_tokens; "
                       "fix the price table", record.id, target.model, usage.completion_tokens, ceiling)


def _produced_usage(record: JobRecord, progress: _Progress) -> Usage:
    """The usage of a stream closed before its end: completion tokens are the output deltas received (text,
    thinking, tool call pieces: providers send about one token each), the prompt is estimated as admission
    estimates it (shared/estimate.py: text, tools, images, documents, audio)."""
    return Usage(prompt_tokens=estimate_input_tokens(record.request), completion_tokens=progress.deltas)


async def _append_output(deps: WorkerDeps, job_id: str, event: OutputEvent | None, ttl: TtlRenewal) -> Chunk:
    """Append one output entry to the job's stream; returns it as the cache keeps it."""
    if event is None:  # callers flush only when something is pending: this is a bug, not a provider's fault
        raise GatewayError("internal error: an empty stream output was flushed")
    kind, data = event
    await deps.store.append_output(job_id, kind, data, ttl_s=ttl.due())
    return chunk_of(event)


async def _finish(deps: WorkerDeps, record: JobRecord, outcome: JobOutcome, started: float,
                  queue_end: QueueEnd | None = None) -> None:
    """Commit the job's end (with arq's end of it, when the worker gave one: one script for both)."""
    row = usage_row(record, outcome, int((time.monotonic() - started) * 1000))
    if not await deps.store.finish(record, outcome, row, queue_end):
        logger.info("job %s had already ended; outcome of this attempt dropped", record.id)
        return
    await settle_job_response(deps.redis, record, outcome)  # a Responses job's stored response; else no-op
    if outcome.cost_usd > 0:
        await _check_budget_alerts(deps, record)
    _count(deps, record, outcome)
    logger.info("job %s", outcome.status.value, extra={
        "tenant_id": record.tenant_id, "model": record.request.model, "provider": outcome.provider,
        "served_model": outcome.model, "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens, "cost_usd": outcome.cost_usd, "latency_ms": row["latency_ms"],
        "fallback_used": outcome.fallback_used, "error_code": row["error_code"],
    })


async def _check_budget_alerts(deps: WorkerDeps, record: JobRecord) -> None:
    """Send the budget thresholds this job's cost made its tenant, and its API key, reach (once each per
    period, whichever worker settles first). A failure here must not fail a finished job: the next settlement
    checks again."""
    if deps.sent_log is None:
        return
    now = datetime.now(UTC)
    for key_id in [None] if record.key_id is None else [None, record.key_id]:
        try:
            sent = await check_budget_alerts(deps.redis, record.tenant_id, now, deps.sent_log, key_id=key_id)
        except Exception as exc:  # Redis or the database unavailable: the job is done all the same
            logger.warning("budget alert check for tenant %s failed: %s", record.tenant_id, type(exc).__name__)
            continue
        for event_id in sent:
            logger.info("budget alert %s queued", event_id, extra={"tenant_id": record.tenant_id})


def _count(deps: WorkerDeps, record: JobRecord, outcome: JobOutcome) -> None:
    tenant, model, endpoint = record.tenant_id, deps.metric_labels.model(record.request.model), record.endpoint
    JOBS.labels(tenant, model, outcome.provider or "none", outcome.status.value, endpoint).inc()
    TOKENS.labels(tenant, model, "in", endpoint).inc(outcome.prompt_tokens)
    TOKENS.labels(tenant, model, "out", endpoint).inc(outcome.completion_tokens)
    COST_USD.labels(tenant, endpoint).inc(outcome.cost_usd)
    if outcome.fallback_used:
        FALLBACKS.labels(model).inc()
