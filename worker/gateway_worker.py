"""arq's `Worker`, adapted for latency and recovery. Its poll loop waits on the doorbell (worker/doorbell.py)
instead of a fixed sleep; a started job's claim is a short lease renewed while it runs (worker/lease.py)
instead of arq's job-timeout-long in-progress mark; jobs start with one Lua script per poll instead of four
round trips each; and jobs arq ends without running them (retries exhausted, expired, aborted before start)
end their records too. The overridden methods follow arq 0.26-0.28 (`Worker.main`, `start_jobs`)."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.worker import Worker, log_redis_info
from redis.exceptions import RedisError

from shared.scripts import LuaScript, lua_source
from worker.doorbell import RECONNECT_DELAY_S, Doorbell
from worker.lease import LeaseKeeper

__all__ = ["START_PUSHES_SCORE", "GatewayWorker", "OnJobDropped"]

logger = logging.getLogger(__name__)

START_JOBS = LuaScript(lua_source("start_jobs.lua"))
# ctx flag: the job's queue score was already pushed ahead when it started (on_job_start need not).
START_PUSHES_SCORE = "start_pushes_score"

# (ctx, job_id, reason): arq ended the job without running our function.
OnJobDropped = Callable[[dict[str, Any], str, str], Awaitable[None]]


class GatewayWorker(Worker):
    """With `lease_s`, a started job's in-progress key lives that long (not job_timeout + 10 s) and is
    renewed while it runs."""

    def __init__(self, *args: object, doorbell_channel: str, skip_redis_info: bool = False,
                 lease_s: float | None = None, on_job_dropped: OnJobDropped | None = None,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._doorbell_channel = doorbell_channel
        self._skip_redis_info = skip_redis_info
        self._lease_s = lease_s
        self._on_job_dropped = on_job_dropped
        if lease_s is not None:
            self.in_progress_timeout_s = lease_s  # arq's psetex of the in-progress key in start_jobs
        self.doorbell: Doorbell | None = None
        self.leases: LeaseKeeper | None = None
        # Set when due jobs were left in the queue for want of a slot: the next freed slot polls again.
        self._jobs_left_behind = False

    def leased_jobs(self) -> list[str]:
        """Jobs whose leases to renew: running and not being cancelled (a cancelled job is handed back or
        ended by its own code; renewing it would hide a handed-back job for another lease)."""
        return [job_id for job_id, task in self.tasks.items() if not task.done() and not task.cancelling()]

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        await super().finish_failed_job(job_id, result_data)
        if self._on_job_dropped is None:
            return
        try:
            await self._on_job_dropped(self.ctx, job_id, self._failure_reason(result_data))
        except Exception:  # the API's idle check (api/relay.settle_if_dead) still ends the record
            logger.exception("could not end the record of dropped job %s", job_id)

    def _failure_reason(self, result_data: bytes | None) -> str:
        if result_data is None:
            return "job ended in the queue"
        try:
            return str(self.job_deserializer(result_data).get("r", "job ended in the queue"))  # type: ignore[misc]
        except Exception:
            return "job ended in the queue"

    async def main(self) -> None:
        logger.info("Starting worker for %d functions: %s", len(self.functions), ", ".join(self.functions))
        if not self._skip_redis_info:  # the embedded in-process Redis does not implement INFO
            await log_redis_info(self.pool, logger.info)
        self.ctx["redis"] = self.pool
        self.doorbell = Doorbell(self.pool, self._doorbell_channel)
        self.doorbell.start()
        self.ctx["doorbell"] = self.doorbell
        self.ctx["slot_freed"] = self.slot_freed
        self.ctx[START_PUSHES_SCORE] = True
        if self._lease_s is not None:
            self.leases = LeaseKeeper(self.pool, self.queue_name, self._lease_s, self.leased_jobs)
            self.leases.start()
        try:
            if self.on_startup:
                await self.on_startup(self.ctx)
            async for _ in self.doorbell.ticks(self.poll_delay_s):
                try:
                    await self._poll_iteration()
                    if self.burst and await self._burst_done():
                        return
                except (RedisError, OSError) as exc:
                    # arq's loop would end the worker here; keep it alive and poll again once Redis is back.
                    logger.warning("queue poll failed (%s); retrying in %.1fs", type(exc).__name__, RECONNECT_DELAY_S)
                    await asyncio.sleep(RECONNECT_DELAY_S)
        finally:
            await self.doorbell.stop()
            if self.leases is not None:
                await self.leases.stop()

    def slot_freed(self) -> None:
        """A job ended. Poll again now only if due jobs were left waiting for a slot; otherwise the queue
        holds nothing this worker skipped, and a poll would be two wasted round trips per job."""
        if self._jobs_left_behind and self.doorbell is not None:
            self._jobs_left_behind = False
            self.doorbell.ring()

    async def _poll_iteration(self) -> None:
        if self.allow_pick_jobs and self.job_counter >= self.max_jobs:
            self._jobs_left_behind = True  # arq skips the queue read when full
        await super()._poll_iteration()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Start as many of `job_ids` as there are free slots, claiming them all in one script (arq's own
        version claims each with WATCH, EXISTS, ZSCORE and MULTI/PSETEX/EXEC, and blocks the poll loop
        while it waits for a slot). Jobs left over are picked up by the poll that `slot_freed` rings."""
        free = self.max_jobs - self.job_counter
        if len(job_ids) > free or len(job_ids) >= self.queue_read_limit:
            self._jobs_left_behind = True
        ids = [job_id.decode() for job_id in job_ids[:max(free, 0)]]
        if not ids:
            return
        keys = [self.queue_name, *(in_progress_key_prefix + job_id for job_id in ids)]
        in_progress_ms = int(self.in_progress_timeout_s * 1000)
        started = await START_JOBS.run(self.pool, keys, [int(time.time() * 1000), in_progress_ms, *ids])
        if not isinstance(started, list):
            raise RedisError(f"start_jobs.lua answered {started!r}")
        for raw_id, raw_score in zip(started[::2], started[1::2], strict=True):
            await self.sem.acquire()  # free: job_counter < max_jobs, and the semaphore holds max_jobs + 1
            self.job_counter += 1
            job_id = raw_id.decode()
            task = self.loop.create_task(self.run_job(job_id, int(float(raw_score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    async def _burst_done(self) -> bool:
        if 0 <= self.max_burst_jobs <= self._jobs_started() or await self.pool.zcard(self.queue_name) == 0:
            await asyncio.gather(*self.tasks.values())
            return True
        return False
