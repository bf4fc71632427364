"""arq's `Worker`, adapted for latency and recovery. Its poll loop waits on the doorbell (worker/doorbell.py)
instead of a fixed sleep; a started job's claim is a short lease renewed while it runs (worker/lease.py)
instead of arq's job-timeout-long in-progress mark; jobs are picked, started and claimed for their attempt
with one Lua script per poll (shared/lua/pick_jobs.lua: jobs due in arq's queue, then the tenants' fair
queues, see shared/fair_queue.py), which also reads arq's abort set, instead of arq's FIFO read, abort read
and two more round trips per job (worker/claimed_job.py runs such a job as arq's run_job would); a claimed
job's end commits arq's end of it in its own end script (shared/lua/finish_fn.lua, with the ends of the
other jobs of the same loop tick), so `finish_job` has nothing left to write; otherwise the end of a job (in
arq's own finish transaction) also drops it from its tenant's running set and counts it in the drain rate;
and jobs arq ends without running them (retries exhausted, expired, aborted before start) end their records
too. The overridden methods follow arq 0.26-0.28 (`Worker.main`, `_poll_iteration`, `start_jobs`,
`run_job`, `finish_job`, `finish_failed_job`)."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from arq.connections import log_redis_info
from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, result_key_prefix, retry_key_prefix
from arq.utils import to_ms
from arq.worker import Worker
from redis.exceptions import RedisError

from shared.fair_queue import DRAIN_BUCKET_TTL_S, Claim, FairQueue, Picked
from shared.queue_end import QueueEnd
from worker.claimed_job import run_claimed
from worker.deps import WorkerDeps
from worker.doorbell import RECONNECT_DELAY_S, Doorbell
from worker.lease import LeaseKeeper

__all__ = ["START_PUSHES_SCORE", "GatewayWorker", "OnJobDropped"]

logger = logging.getLogger(__name__)

# ctx flag: the job's queue score was already pushed ahead when it started (on_job_start need not).
START_PUSHES_SCORE = "start_pushes_score"

# (ctx, job_id, reason): arq ended the job without running our function.
OnJobDropped = Callable[[dict[str, Any], str, str], Awaitable[None]]


class GatewayWorker(Worker):
    """With `lease_s`, a started job's in-progress key lives that long (not job_timeout + 10 s) and is
    renewed while it runs."""

    def __init__(self, *args: Any, doorbell_channel: str, skip_redis_info: bool = False,
                 lease_s: float | None = None, on_job_dropped: OnJobDropped | None = None,
                 batch_max_wait_s: float = 30.0, interactive_slots: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # arq's Worker takes the rest: its own signature types them
        self.fair = FairQueue(self.queue_name)
        self._batch_max_wait_ms = int(batch_max_wait_s * 1000)
        # Slots batch jobs may not take, so an interactive job never waits for a batch job to end.
        self.batch_slots = max(1, self.max_jobs - max(0, interactive_slots))
        self.batch_jobs: set[str] = set()
        # The tenant of each job this worker started: its running-set entry is renewed and removed by it.
        self.job_tenants: dict[str, str] = {}
        self._doorbell_channel = doorbell_channel
        self._skip_redis_info = skip_redis_info
        self._lease_s = lease_s
        self._on_job_dropped = on_job_dropped
        if lease_s is not None:
            self.in_progress_timeout_s = lease_s  # the in-progress key's life at pick (pick_jobs.lua)
        self.doorbell: Doorbell | None = None
        self.leases: LeaseKeeper | None = None
        # Set when due jobs were left in the queue for want of a slot: the next freed slot polls again.
        self._jobs_left_behind = False
        # arq's end of each claimed job that is running, committed by the job's own end script (finish_job).
        self._queue_ends: dict[str, QueueEnd] = {}

    def leased_jobs(self) -> list[str]:
        """Jobs whose leases to renew: running and not being cancelled (a cancelled job is handed back or
        ended by its own code; renewing it would hide a handed-back job for another lease)."""
        return [job_id for job_id, task in self.tasks.items() if not task.done() and not task.cancelling()]

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        """arq's `finish_failed_job` (the job ends without running), plus the running set and drain rate."""
        async with self.pool.pipeline(transaction=True) as tr:
            tr.delete(retry_key_prefix + job_id, in_progress_key_prefix + job_id, job_key_prefix + job_id)
            tr.zrem(abort_jobs_ss, job_id)
            tr.zrem(self.queue_name, job_id)
            if result_data is not None and (self.keep_result_forever or self.keep_result_s > 0):
                expire = 0 if self.keep_result_forever else self.keep_result_s
                tr.set(result_key_prefix + job_id, result_data, px=to_ms(expire))
            self.fair.job_ended_on(tr, job_id=job_id, tenant_id=self.job_tenants.pop(job_id, None), counted=True)
            self.batch_jobs.discard(job_id)
            await tr.execute()
        if self._on_job_dropped is None:
            return
        try:
            await self._on_job_dropped(self.ctx, job_id, self._failure_reason(result_data))
        except Exception:  # the API's idle check (api/relay.settle_if_dead) still ends the record
            logger.exception("could not end the record of dropped job %s", job_id)

    def _failure_reason(self, result_data: bytes | None) -> str:
        if result_data is None or self.job_deserializer is None:
            return "job ended in the queue"
        try:
            return str(self.job_deserializer(result_data).get("r", "job ended in the queue"))
        except Exception:
            return "job ended in the queue"

    async def main(self) -> None:
        logger.info("Starting worker for %d functions: %s", len(self.functions), ", ".join(self.functions))
        if not self._skip_redis_info:  # the embedded in-process Redis does not implement INFO
            try:
                await log_redis_info(self.pool, logger.info)
            except (RedisError, OSError) as exc:
                # Its Redis (shard) is down at start: start anyway and poll until it answers, so a process
                # serving several shards serves the others meanwhile (worker/shards.py).
                logger.warning("Redis not reachable at start (%s); polling until it is", type(exc).__name__)
        self.ctx["redis"] = self.pool
        self.doorbell = Doorbell(self.pool, self._doorbell_channel)
        self.doorbell.start()
        self.ctx["doorbell"] = self.doorbell
        self.ctx["slot_freed"] = self.slot_freed
        self.ctx[START_PUSHES_SCORE] = True
        if self._lease_s is not None:
            self.leases = LeaseKeeper(self.pool, self.queue_name, self._lease_s, self.leased_jobs,
                                      running_key=self._running_key)
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
        """arq's poll, with its queue read, `start_jobs` and abort read replaced by one pick (`start_picked`)."""
        aborts_read = False
        if self.allow_pick_jobs:
            if self.job_counter < self.max_jobs:
                aborts_read = await self.start_picked()
            else:
                self._jobs_left_behind = True  # full: the next freed slot polls again
        if self.allow_abort_jobs and not aborts_read:
            await self._cancel_aborted_jobs()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # errors in run_job propagate, as in arq
        await self.heart_beat()

    def _claim(self) -> Claim | None:
        """How the pick claims the jobs it starts: None before on_startup built the worker's deps (then arq's
        run_job and the job's own claim do it)."""
        deps = self.ctx.get("deps")
        if not isinstance(deps, WorkerDeps):
            return None
        return Claim(worker_id=deps.worker_id, max_tries=self.max_tries,
                     events_maxlen=deps.settings.event_stream_maxlen, ttl_s=deps.settings.job_ttl_s)

    async def start_picked(self) -> bool:
        """Claim as many jobs as there are free slots in one script (pick_jobs.lua) and run them; jobs left
        waiting are picked up by the poll that `slot_freed` rings. The same script reads arq's abort set;
        True when it did (the aborted jobs are cancelled here)."""
        free = self.max_jobs - self.job_counter
        if self.burst and self.max_burst_jobs >= 0:
            free = min(free, self.max_burst_jobs - self._jobs_started())
        if free <= 0:
            return False
        options = {"free": free, "lease_ms": int(self.in_progress_timeout_s * 1000),
                   "batch_max_wait_ms": self._batch_max_wait_ms, "due_read_limit": max(free, self.queue_read_limit),
                   "batch_free": self.batch_slots - len(self.batch_jobs)}
        claim = self._claim()
        aborts: list[str] = []
        if claim is None:
            picked, left = await self.fair.pick(self.pool, **options)
        else:
            # With no job running here there is none to cancel: the abort set is not read (one command less).
            result = await self.fair.pick_and_claim(self.pool, claim, read_aborts=self.job_counter > 0, **options)
            picked, left, aborts = result.picked, result.left, result.aborts
        if left:
            self._jobs_left_behind = True
        await self._run_picked(picked, claimed=claim is not None)
        self._cancel_tasks(aborts)
        return claim is not None

    def _cancel_tasks(self, aborts: list[str]) -> None:
        """arq's `_cancel_aborted_jobs` on the abort set the pick read (arq's own ZREM of the cancelled ids is
        left to the jobs' end, which takes them out of the set)."""
        for job_id in aborts:
            task = self.job_tasks.get(job_id)
            if task is not None and job_id not in self.aborting_tasks:
                self.aborting_tasks.add(job_id)
                task.cancel()

    async def _run_picked(self, picked: list[Picked], *, claimed: bool = False) -> None:
        for job in picked:
            await self.sem.acquire()  # free: job_counter < max_jobs, and the semaphore holds max_jobs + 1
            self.job_counter += 1
            if job.tenant_id:
                self.job_tenants[job.job_id] = job.tenant_id
            if job.source == "batch":
                self.batch_jobs.add(job.job_id)
            run = run_claimed(self, job) if claimed else self.run_job(job.job_id, job.score)
            task = self.loop.create_task(run)
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job.job_id] = task

    def queue_end(self, job: Picked) -> QueueEnd:
        """arq's end of a claimed job, for its end script to commit (then `finish_job` writes nothing)."""
        end = QueueEnd(job_id=job.job_id, in_progress_key=in_progress_key_prefix + job.job_id,
                       retry_key=retry_key_prefix + job.job_id, payload_key=job_key_prefix + job.job_id,
                       queue_key=self.queue_name, abort_key=abort_jobs_ss, running_key=self._running_key(job.job_id),
                       drained_prefix=self.fair.drained_prefix, drained_ttl_s=DRAIN_BUCKET_TTL_S)
        self._queue_ends[job.job_id] = end
        return end

    def _running_key(self, job_id: str) -> str | None:
        tenant = self.job_tenants.get(job_id)
        return self.fair.running_key(tenant) if tenant else None

    async def finish_job(self, job_id: str, finish: bool, result_data: bytes | None, result_timeout_s: float | None,
                         keep_result_forever: bool, incr_score: int | None, keep_in_progress: float | None) -> None:
        """arq's `finish_job`, plus in the same transaction: the job leaves its tenant's running set and, when
        it is finished (not handed back for a retry), counts in the drain rate. Nothing to write when the job's
        end script committed all of it (a claimed job that ended through its own code)."""
        queue_end = self._queue_ends.pop(job_id, None)
        if queue_end is not None and queue_end.committed:
            self.job_tenants.pop(job_id, None)
            self.batch_jobs.discard(job_id)
            return
        async with self.pool.pipeline(transaction=True) as tr:
            delete_keys = []
            in_progress_key = in_progress_key_prefix + job_id
            if keep_in_progress is None:
                delete_keys += [in_progress_key]
            else:
                tr.pexpire(in_progress_key, to_ms(keep_in_progress))
            if finish:
                if result_data:
                    expire = None if keep_result_forever else result_timeout_s
                    tr.set(result_key_prefix + job_id, result_data, px=to_ms(expire))
                delete_keys += [retry_key_prefix + job_id, job_key_prefix + job_id]
                tr.zrem(abort_jobs_ss, job_id)
                tr.zrem(self.queue_name, job_id)
            elif incr_score:
                tr.zincrby(self.queue_name, incr_score, job_id)
            if delete_keys:
                tr.delete(*delete_keys)
            self.fair.job_ended_on(tr, job_id=job_id, tenant_id=self.job_tenants.pop(job_id, None), counted=finish)
            self.batch_jobs.discard(job_id)
            await tr.execute()

    async def _burst_done(self) -> bool:
        if 0 <= self.max_burst_jobs <= self._jobs_started() or (
                await self.pool.zcard(self.queue_name) == 0 and await self.fair.depth(self.pool) == 0):
            await asyncio.gather(*self.tasks.values())
            return True
        return False
