"""arq's `Worker.run_job` for a job the pick script already claimed (shared/lua/pick_jobs.lua), without the
two round trips arq's version opens with: its transaction that reads the payload, counts the try and consumes
an abort (the pick read the payload and counted the attempt in the record, and a cancel asked before the
start is the record's `cancel_requested`), and the record's claim (shared/lua/claim.lua, done by the pick).
From the payload on it follows arq 0.26-0.28's `run_job`: the same failures before the start, the same
timeout, retry and abort handling, the same result and `finish_job` call. The job function gets the claimed
record's fields (CLAIMED_RECORD) and arq's end of the job (QUEUE_END), which it commits with the record's end
in one script; `GatewayWorker.finish_job` then has nothing left to write."""

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from arq.jobs import SerializationError, deserialize_job_raw, serialize_result
from arq.utils import args_to_string, ms_to_datetime, timestamp_ms, truncate
from arq.worker import JobExecutionFailed, Retry, RetryJob

from shared.fair_queue import Picked

if TYPE_CHECKING:  # the worker imports this module
    from worker.gateway_worker import GatewayWorker

__all__ = ["CLAIMED_RECORD", "QUEUE_END", "run_claimed"]

logger = logging.getLogger("arq.worker")

# ctx keys of a claimed job: the record's fields before the claim, and arq's end of the job (shared/queue_end.py).
CLAIMED_RECORD = "claimed_record"
QUEUE_END = "queue_end"

_NO_RESULT = object()


class _Ended:
    """How the job function ended, as arq's run_job decides it."""

    def __init__(self) -> None:
        self.result: Any = _NO_RESULT
        self.success = False
        self.finish = False
        self.incr_score: int | None = None
        self.finished_ms = 0


async def run_claimed(worker: "GatewayWorker", job: Picked) -> None:
    """Run one claimed job to its end (arq's run_job from its payload on)."""
    start_ms = timestamp_ms()
    job_id, payload = job.job_id, job.payload
    function_name, enqueue_time_ms = "<unknown>", 0
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}

    async def failed(exc: BaseException) -> None:
        worker.jobs_failed += 1
        data = serialize_result(function_name, args, kwargs, job.attempt, enqueue_time_ms, False, exc, start_ms,
                                timestamp_ms(), f"{job_id}:{function_name}", worker.queue_name, job_id=job_id,
                                serializer=worker.job_serializer)
        await asyncio.shield(worker.finish_failed_job(job_id, data))

    if job.state == "expired" or payload is None:
        logger.warning("job %s expired", job_id)
        return await failed(JobExecutionFailed("job expired"))
    try:
        function_name, args, kwargs, _, enqueue_time_ms = deserialize_job_raw(
            payload, deserializer=worker.job_deserializer)
    except SerializationError as e:
        logger.exception("deserializing job %s failed", job_id)
        return await failed(e)
    function = worker.functions.get(function_name)
    refusal = _refusal(worker, job, function, function_name, enqueue_time_ms)
    if refusal is not None or function is None:  # (no function is a refusal: the second test is for mypy)
        return await failed(refusal or JobExecutionFailed(f"function {function_name!r} not found"))

    ref = f"{job_id}:{function_name}"
    queue_end = worker.queue_end(job)
    ctx = {**worker.ctx, "job_id": job_id, "job_try": job.attempt, "enqueue_time": ms_to_datetime(enqueue_time_ms),
           "score": job.score, CLAIMED_RECORD: job.record, QUEUE_END: queue_end}
    if worker.on_job_start:
        await worker.on_job_start(ctx)
    start_ms = timestamp_ms()
    ended = await _call(worker, job, ctx, function, ref, args, kwargs, start_ms)
    keep_forever = worker.keep_result_forever if function.keep_result_forever is None else function.keep_result_forever
    result_timeout_s = worker.keep_result_s if function.keep_result_s is None else function.keep_result_s
    result_data = None
    if ended.result is not _NO_RESULT and (keep_forever or result_timeout_s > 0) and not queue_end.committed:
        result_data = serialize_result(function_name, args, kwargs, job.attempt, enqueue_time_ms, ended.success,
                                       ended.result, start_ms, ended.finished_ms, ref, worker.queue_name,
                                       job_id=job_id, serializer=worker.job_serializer)
    if worker.on_job_end:
        await worker.on_job_end(ctx)
    await asyncio.shield(worker.finish_job(job_id, ended.finish, result_data, result_timeout_s, keep_forever,
                                           ended.incr_score, None))
    if worker.after_job_end:
        await worker.after_job_end(ctx)


def _refusal(worker: "GatewayWorker", job: Picked, function: Any, function_name: str,
             enqueue_time_ms: int) -> BaseException | None:
    """Why arq's run_job would end the job before running it (aborted, unknown function, tries used up)."""
    waited_s = (timestamp_ms() - enqueue_time_ms) / 1000
    if job.state == "aborted":
        logger.info("%6.2fs ⊘ %s:%s aborted before start", waited_s, job.job_id, function_name)
        return asyncio.CancelledError()
    if function is None:
        logger.warning("job %s, function %r not found", job.job_id, function_name)
        return JobExecutionFailed(f"function {function_name!r} not found")
    if job.state == "exhausted":
        max_tries = worker.max_tries if function.max_tries is None else function.max_tries
        logger.warning("%6.2fs ! %s:%s max retries %d exceeded", waited_s, job.job_id, function_name, max_tries)
        return JobExecutionFailed(f"max {max_tries} retries exceeded")
    return None


async def _call(worker: "GatewayWorker", job: Picked, ctx: dict[str, Any], function: Any, ref: str,
                args: Any, kwargs: Any, start_ms: int) -> _Ended:
    """Run the job function under its timeout; what arq's run_job makes of its end."""
    ended = _Ended()
    timeout_s = worker.job_timeout_s if function.timeout_s is None else function.timeout_s
    job_id, score = job.job_id, job.score
    try:
        extra = f" try={job.attempt}" if job.attempt > 1 else ""
        if (start_ms - score) > 1200:
            extra += f" delayed={(start_ms - score) / 1000:0.2f}s"
        logger.info("%6.2fs → %s(%s)%s", (start_ms - score) / 1000, ref, args_to_string(args, kwargs), extra)
        worker.job_tasks[job_id] = task = worker.loop.create_task(function.coroutine(ctx, *args, **kwargs))
        try:
            ended.result = await asyncio.wait_for(task, timeout_s)
        finally:
            del worker.job_tasks[job_id]
    except (Exception, asyncio.CancelledError) as e:
        ended.finished_ms = timestamp_ms()
        t = (ended.finished_ms - start_ms) / 1000
        if worker.retry_jobs and isinstance(e, Retry):
            logger.info("%6.2fs ↻ %s retrying job in %0.2fs", t, ref, (e.defer_score or 0) / 1000)
            ended.incr_score = e.defer_score + (timestamp_ms() - score) if e.defer_score else e.defer_score
            worker.jobs_retried += 1
        elif job_id in worker.aborting_tasks and isinstance(e, asyncio.CancelledError):
            logger.info("%6.2fs ⊘ %s aborted", t, ref)
            ended.result, ended.finish = e, True
            worker.aborting_tasks.remove(job_id)
            worker.jobs_failed += 1
        elif worker.retry_jobs and isinstance(e, asyncio.CancelledError | RetryJob):
            logger.info("%6.2fs ↻ %s cancelled, will be run again", t, ref)
            worker.jobs_retried += 1
        else:
            logger.exception("%6.2fs ! %s failed, %s: %s", t, ref, e.__class__.__name__, e)
            ended.result, ended.finish = e, True
            worker.jobs_failed += 1
    else:
        ended.finished_ms = timestamp_ms()
        ended.success = ended.finish = True
        result_str = "" if ended.result is None or not worker.log_results else truncate(repr(ended.result))
        logger.info("%6.2fs ← %s ● %s", (ended.finished_ms - start_ms) / 1000, ref, result_str)
        worker.jobs_complete += 1
    return ended
