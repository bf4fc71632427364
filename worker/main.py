"""Builds and runs an arq worker for completion jobs: JSON (not pickle) payloads, a short poll delay, aborts
enabled, job leases of WORKER_LEASE_S renewed while jobs run (a dead worker's jobs return in seconds, see
worker/lease.py), a heartbeat that `/health` reads, and the usage writer and the webhook sender
(worker/webhooks.py) running beside the jobs."""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from arq.connections import ArqRedis
from arq.worker import func
from redis.exceptions import RedisError

from shared.budget_alert_check import SentLog
from shared.config import Settings, get_settings
from shared.db.pg_usage import PgUsageSink, is_postgres_url
from shared.errors import GatewayError
from shared.jobs import JobOutcome, JobStore, usage_row
from shared.keys import ARQ_ABORT_KEY, WORKERS_KEY, doorbell_channel
from shared.metrics import QUEUE_WAIT, WORKER_JOBS_RUNNING, metric_labels, metrics_registry
from shared.metrics_server import start_metrics_server
from shared.models import JobStatus
from shared.pricing import load_price_table
from shared.queue import JOB_FUNCTION
from shared.redis import create_redis, deserialize_job, serialize_job
from shared.routing_table import load_routing_table
from worker.breaker import CircuitBreaker
from worker.deps import ProcessResources, WorkerDeps, WorkerResources, deps_from, resources_from
from worker.gateway_worker import START_PUSHES_SCORE, GatewayWorker
from worker.jobs import run_completion
from worker.lease import lease_score
from worker.providers import aclose_providers, build_providers
from worker.retention import PruneRows, prune_periodically
from worker.routing import RetryPolicy, Router
from worker.usage_writer import InsertRows, UsageWriter
from worker.webhooks import WebhookSender

logger = logging.getLogger(__name__)

ABORT_RETENTION_MS = 600_000


def worker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for arq's `Worker`, shared by `build_worker` and the arq CLI entry point."""
    return {
        "functions": [func(run_completion, name=JOB_FUNCTION, timeout=settings.worker_job_timeout_s)],
        "queue_name": settings.queue_name,
        "ctx": {"settings": settings},
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "on_job_start": on_job_start,
        "after_job_end": after_job_end,
        "max_jobs": settings.worker_max_jobs,
        "poll_delay": settings.worker_poll_delay_s,
        "queue_read_limit": max(100, settings.worker_max_jobs),
        "job_timeout": settings.worker_job_timeout_s,
        "max_tries": settings.worker_max_tries,
        "allow_abort_jobs": True,
        "job_completion_wait": settings.worker_drain_s,
        "health_check_interval": 30,
        "job_serializer": serialize_job,
        "job_deserializer": deserialize_job,
        "keep_result": settings.job_ttl_s,
    }


def build_worker(settings: Settings, redis: ArqRedis | None = None, *, handle_signals: bool = True,
                 burst: bool = False, embedded: bool = False) -> GatewayWorker:
    options = worker_options(settings)
    options["ctx"]["embedded"] = embedded
    options["ctx"]["lease_s"] = settings.worker_lease_s
    return GatewayWorker(redis_pool=redis or create_redis(settings), burst=burst, handle_signals=handle_signals,
                         doorbell_channel=doorbell_channel(settings.queue_name), skip_redis_info=embedded,
                         lease_s=settings.worker_lease_s, on_job_dropped=on_job_dropped,
                         batch_max_wait_s=settings.batch_max_wait_s,
                         interactive_slots=settings.resolved_interactive_slots, **options)


def run_worker(settings: Settings | None = None) -> None:
    """Run a worker process until SIGINT/SIGTERM (then drain running jobs for up to WORKER_DRAIN_S)."""
    settings = settings or get_settings()
    asyncio.run(_run(settings))


async def _run(settings: Settings) -> None:
    if len(settings.shard_specs) > 1:
        from worker.shards import run_shard_workers  # imports this module: imported on use

        await run_shard_workers(settings)
        return
    worker = build_worker(settings)
    try:
        # arq cancels its main task on SIGINT/SIGTERM after draining; that is a clean stop, not an error.
        with contextlib.suppress(asyncio.CancelledError):
            await worker.async_run()
    finally:
        await worker.close()


def _usage_sink(database_url: str) -> tuple[InsertRows, PruneRows, SentLog, Callable[[], Awaitable[None]]]:
    """The usage writer's insert, the retention's prune, the record of budget-alert thresholds sent, and how
    to close them. PostgreSQL: a small plain asyncpg pool, so the worker never loads SQLAlchemy and SQLModel
    (~30 MiB). SQLite (embedded mode, where the API in this process has loaded them already): the SQLAlchemy
    engine, `insert_usage`, `prune_usage` and `SqlSentLog`, imported only here."""
    if is_postgres_url(database_url):
        sink = PgUsageSink(database_url)
        return sink.insert, sink.prune, sink, sink.close
    from shared.db.budget_alert_log import SqlSentLog
    from shared.db.engine import create_engine
    from shared.db.request_log import prune_usage
    from shared.db.usage import insert_usage

    engine = create_engine(database_url)
    return (lambda rows: insert_usage(engine, rows), lambda before, now: prune_usage(engine, before, now),
            SqlSentLog(engine), engine.dispose)


def open_process(settings: Settings, *, embedded: bool = False) -> ProcessResources:
    """What all the arq workers of this process share (one per Redis shard served, worker/shards.py)."""
    insert_rows, prune_rows, sent_log, close_usage_sink = _usage_sink(settings.resolved_database_url)
    routing_table, prices = load_routing_table(settings), load_price_table(settings)
    metrics_server = None
    if not embedded:  # embedded: the API's metrics port already shows this process's registry
        metrics_server = start_metrics_server(settings.metrics_host, settings.worker_metrics_port,
                                              metrics_registry(None))
    return ProcessResources(
        routing_table=routing_table, prices=prices, metric_labels=metric_labels(routing_table, prices.models()),
        providers=build_providers(settings, settings.secret_from_env, routing_table.providers()),
        insert_rows=insert_rows, prune_rows=prune_rows, sent_log=sent_log, close_usage_sink=close_usage_sink,
        metrics_server=metrics_server)


async def close_process(process: ProcessResources) -> None:
    await aclose_providers(process.providers)
    await process.close_usage_sink()
    if process.metrics_server is not None:
        await asyncio.to_thread(process.metrics_server.stop)


async def on_startup(ctx: dict[str, Any]) -> None:
    """This arq worker's jobs' dependencies and its background tasks on its Redis (its shard): usage writer,
    heartbeat, retention and webhook sender. The process's shared resources come in `ctx["process"]` when a
    process serves several shards (worker/shards.py); a lone worker opens its own."""
    settings: Settings = ctx.get("settings") or get_settings()
    redis: ArqRedis = ctx["redis"]
    worker_id = f"worker-{uuid.uuid4().hex[:12]}"
    shared = ctx.get("process")
    embedded = bool(ctx.get("embedded"))
    process = shared if isinstance(shared, ProcessResources) else open_process(settings, embedded=embedded)
    labels = process.metric_labels
    # Each shard keeps its own breakers: a shard that is down never blocks the others' (docs/SHARDING.md).
    breaker = CircuitBreaker(redis, failure_threshold=settings.breaker_failure_threshold,
                             open_s=settings.breaker_open_s, target_label=labels.target)
    policy = RetryPolicy(settings.max_attempts_per_target, settings.retry_base_delay_s, settings.retry_max_delay_s)
    deps = ctx["deps"] = WorkerDeps(
        settings=settings, redis=redis,
        store=JobStore(redis, ttl_s=settings.job_ttl_s, events_maxlen=settings.event_stream_maxlen),
        routing_table=process.routing_table, router=Router(process.providers, breaker, policy),
        prices=process.prices, worker_id=worker_id, metric_labels=labels, sent_log=process.sent_log,
    )
    writer = UsageWriter(redis, process.insert_rows, consumer=worker_id,
                         batch_size=settings.usage_batch_size, interval_s=settings.usage_flush_interval_s)
    stop = asyncio.Event()
    background = [
        asyncio.create_task(writer.run(stop), name="usage-writer"),
        asyncio.create_task(_heartbeat(redis, worker_id, settings.worker_heartbeat_s, stop), name="heartbeat"),
        asyncio.create_task(prune_periodically(
            redis, process.prune_rows, retention_days=settings.usage_retention_days,
            interval_s=settings.usage_prune_interval_s, stop=stop, clock=lambda: datetime.now(UTC)),
            name="usage-retention"),
    ]
    if settings.webhook_secret:  # without a secret the API accepts no callback URLs: nothing to send
        sender = WebhookSender(redis, deps.store, settings, consumer=worker_id)
        background.append(asyncio.create_task(sender.run(stop), name="webhook-sender"))
    ctx["resources"] = WorkerResources(stop=stop, background=background, process=process,
                                       owns_process=process is not shared)
    shard = ctx.get("shard")
    logger.info("worker %s started on queue %s%s", worker_id, settings.queue_name,
                "" if shard is None else f" of Redis shard {shard}")


async def on_shutdown(ctx: dict[str, Any]) -> None:
    resources = resources_from(ctx)
    if "deps" not in ctx or resources is None:
        return
    deps = deps_from(ctx)
    resources.stop.set()
    await asyncio.gather(*resources.background, return_exceptions=True)
    try:
        await deps.redis.zrem(WORKERS_KEY, deps.worker_id)
    except (RedisError, OSError) as exc:  # its shard is down: the heartbeat ages out of /health by itself
        logger.warning("worker %s could not drop its heartbeat: %s", deps.worker_id, type(exc).__name__)
    if resources.owns_process:
        await close_process(resources.process)
    logger.info("worker %s stopped", deps.worker_id)


async def on_job_start(ctx: dict[str, Any]) -> None:
    """Push a running job's score into the future so other workers' queue scans skip it. Without this, more
    running jobs than `queue_read_limit` hide new jobs (measured: 6.6 s instead of 40 ms). The push is one
    lease long and renewed with the in-progress key (worker/lease.py), so after a crash the job reappears
    within a lease. Under arq's own CLI (no leases) it matches arq's in-progress key: job timeout + 10 s."""
    deps = deps_from(ctx)
    if not ctx.get(START_PUSHES_SCORE):  # GatewayWorker's start script pushes it; arq's own CLI does not
        lease_s = ctx.get("lease_s")
        ahead_s = float(lease_s) if isinstance(lease_s, int | float) else deps.settings.worker_job_timeout_s + 10
        await deps.redis.zadd(deps.settings.queue_name, {ctx["job_id"]: lease_score(ahead_s)}, xx=True)
    enqueued = ctx.get("enqueue_time")
    if isinstance(enqueued, datetime):
        QUEUE_WAIT.observe(max(0.0, time.time() - enqueued.timestamp()))
    WORKER_JOBS_RUNNING.inc()


async def on_job_dropped(ctx: dict[str, Any], job_id: str, reason: str) -> None:
    """arq ended a job without running it (tries exhausted after workers died or stopped mid-job, expired in
    the queue, aborted before start): end its record too, billed once, so no client waits for it forever."""
    if "deps" not in ctx:
        return
    deps = deps_from(ctx)
    record = await deps.store.get(job_id)
    if record is None or record.status.is_terminal:
        return
    if await deps.store.cancel_requested(job_id):
        outcome = JobOutcome(status=JobStatus.CANCELLED)
    else:
        error = GatewayError(f"The job could not be run: {_plain_reason(reason)}", code="job_failed_in_queue")
        outcome = JobOutcome(status=JobStatus.FAILED, error=error.to_dict())
    latency_ms = int((time.time() - record.created_at) * 1000)
    if await deps.store.finish(record, outcome, usage_row(record, outcome, latency_ms)):
        logger.warning("job %s ended in the queue: %s", job_id, reason)


def _plain_reason(reason: str) -> str:
    """`JobExecutionFailed('max 3 retries exceeded')` -> `max 3 retries exceeded (a worker stopped mid-job)`."""
    text = reason.split("(", 1)[1].rstrip(")").strip("'\"") if "(" in reason else reason
    if "retries exceeded" in text:
        text += " (its workers stopped or died mid-job)"
    return text or "job ended in the queue"


async def after_job_end(ctx: dict[str, Any]) -> None:
    WORKER_JOBS_RUNNING.dec()
    slot_freed = ctx.get("slot_freed")
    if callable(slot_freed):
        slot_freed()


async def _heartbeat(redis: ArqRedis, worker_id: str, interval_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            now_ms = _now_ms()
            async with redis.pipeline(transaction=False) as pipe:
                pipe.zadd(WORKERS_KEY, {worker_id: now_ms})
                # arq never prunes aborts of jobs that already ended; every worker scans this set each poll.
                pipe.zremrangebyscore(ARQ_ABORT_KEY, "-inf", now_ms - ABORT_RETENTION_MS)
                await pipe.execute()
        except Exception as exc:
            logger.warning("heartbeat failed: %s", type(exc).__name__)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except TimeoutError:
            continue


def _now_ms() -> int:
    return int(time.time() * 1000)
