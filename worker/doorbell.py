"""Push wake-up for arq workers. arq only polls its queue; with a long poll delay a new job waits up to that
delay, with a short one every idle worker hammers Redis (measured: 0.05 s costs ~25 ms pickup and 20
commands/s per idle worker). The API publishes on a doorbell channel after each enqueue (and cancel); a
listener here wakes the worker's poll loop at once, and the plain poll delay remains the fallback if a
ring is lost. `GatewayWorker` is arq's `Worker` with its poll loop driven by the doorbell, short renewed job
leases (worker/lease.py) instead of arq's job-timeout-long in-progress marks, and a hook for jobs arq ends
without running them (retries exhausted, expired, aborted before start), so their records end too."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from arq.worker import Worker, log_redis_info
from redis.asyncio import Redis
from redis.exceptions import RedisError

from worker.lease import LeaseKeeper

logger = logging.getLogger(__name__)

RECONNECT_DELAY_S = 1.0
# A burst of rings makes every worker poll; a short pause lets one poll collect the whole burst.
MIN_POLL_GAP_S = 0.001

# (ctx, job_id, reason): arq ended the job without running our function.
OnJobDropped = Callable[[dict[str, Any], str, str], Awaitable[None]]


class Doorbell:
    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._rung = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="doorbell")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def ring(self) -> None:
        """Wake the poll loop from inside this process (e.g. a job slot was freed)."""
        self._rung.set()

    async def ticks(self, fallback_s: float) -> AsyncIterator[None]:
        """Yield whenever the bell rings, or every `fallback_s` at the latest."""
        while True:
            # Cleared before yielding, so a ring during the poll that follows is not lost.
            self._rung.clear()
            yield
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rung.wait(), timeout=fallback_s)
            await asyncio.sleep(MIN_POLL_GAP_S)

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._rung.set()
            except (RedisError, OSError) as exc:
                logger.warning("doorbell listener lost Redis (%s); polling until it is back", type(exc).__name__)
                await asyncio.sleep(RECONNECT_DELAY_S)


class GatewayWorker(Worker):
    """arq's Worker whose poll loop waits on the doorbell instead of a fixed sleep. The loop body is arq's
    own (`Worker.main` in arq 0.26-0.28); only the wait between iterations differs. With `lease_s`, a
    started job's in-progress key lives that long (not job_timeout + 10 s) and is renewed while it runs."""

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

    async def _burst_done(self) -> bool:
        if 0 <= self.max_burst_jobs <= self._jobs_started() or await self.pool.zcard(self.queue_name) == 0:
            await asyncio.gather(*self.tasks.values())
            return True
        return False
