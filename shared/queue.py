"""The job queue, over arq: the one place that knows arq's function name and queue. The API enqueues and asks
arq whether a job died without running our code; workers register `JOB_FUNCTION` under this name.

A submitted job does not enter arq's queue directly: it waits in the fair queue (shared/fair_queue.py), and
a worker's pick moves it into arq's queue already claimed. arq's job payload is still written at enqueue, so
`run_job` finds it whichever way the job arrives."""

import time
from datetime import timedelta
from typing import Protocol

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.jobs import deserialize_result, serialize_job
from redis.asyncio.client import Pipeline

from shared.fair_queue import FairQueue, Priority, TenantShare
from shared.keys import doorbell_channel

__all__ = ["JOB_FUNCTION", "JobQueue", "QueuedJob"]

JOB_FUNCTION = "run_completion"


class QueuedJob(Protocol):
    """What enqueueing needs to know of a job record (shared/jobs.JobRecord satisfies it)."""

    @property
    def id(self) -> str: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def created_at(self) -> float: ...
    @property
    def priority(self) -> Priority: ...


class JobQueue:
    def __init__(self, redis: ArqRedis, *, queue_name: str, expires_s: float) -> None:
        self._redis = redis
        self._queue_name = queue_name
        self._expires = timedelta(seconds=expires_s)
        self.fair = FairQueue(queue_name)

    async def enqueue(self, job_id: str) -> bool:
        """Queue the job straight on arq's FIFO queue, outside fair scheduling (tools and tests); False if
        arq already holds a job with this id (a duplicate submission)."""
        job = await self._redis.enqueue_job(
            JOB_FUNCTION, job_id, _job_id=job_id, _queue_name=self._queue_name, _expires=self._expires
        )
        await self.ring()
        return job is not None

    def enqueue_on(self, pipe: Pipeline, record: QueuedJob, *, share: TenantShare | None = None) -> None:
        """Queue the job on the caller's transaction, so the job record and its queue entry are written
        together in one round trip, and ring the doorbell in it too. arq's payload is written as arq's own
        `enqueue_job` would (without its WATCH/EXISTS check, which guards caller-chosen ids: ours are fresh
        UUIDs); the queue entry goes in the tenant's fair queue, not in arq's queue."""
        enqueue_ms = int(record.created_at * 1000)
        payload = serialize_job(JOB_FUNCTION, (record.id,), {}, None, enqueue_ms,
                                serializer=self._redis.job_serializer)
        pipe.psetex(job_key_prefix + record.id, int(self._expires.total_seconds() * 1000), payload)
        self.fair.queue_on(pipe, job_id=record.id, tenant_id=record.tenant_id, created_at=record.created_at,
                           priority=record.priority, share=share or TenantShare())
        pipe.publish(doorbell_channel(self._queue_name), b"")

    async def ring(self) -> None:
        """Wake idle workers now rather than at their next poll (see worker.doorbell)."""
        await self._redis.publish(doorbell_channel(self._queue_name), b"")

    async def died_without_result(self, job_id: str, record: QueuedJob | None = None) -> str | None:
        """If arq finished the job without our code ending it (expired, retries exhausted, crashed), say why.
        A job waiting in the fair queue is alive: arq does not know it yet, but its payload is there.

        Everything is read in one transaction: a worker's pick moves a job from the fair queue into arq's
        queue atomically, and reading the two places in separate round trips could see it in neither and
        fail a job that was starting (this check runs on every poll of a queued job)."""
        async with self._redis.pipeline(transaction=True) as tr:
            tr.get(result_key_prefix + job_id)
            tr.exists(in_progress_key_prefix + job_id)
            tr.zscore(self._queue_name, job_id)
            if record is not None:  # waiting in the fair queue: a score in one of its classes
                self.fair.scores_on(tr, job_id=job_id, tenant_id=record.tenant_id, created_at=record.created_at)
            else:  # no record to find it there by: arq's payload, written at enqueue, says it was queued
                tr.exists(job_key_prefix + job_id)
            result, in_progress, score, *places = await tr.execute()
        if result:
            return str(deserialize_result(result, deserializer=self._redis.job_deserializer).result)
        waiting = any(place is not None for place in places) if record is not None else bool(places[0])
        return None if in_progress or score is not None or waiting else "job is no longer in the queue"

    async def depth(self) -> int:
        """Every job arq or the fair queue holds, running ones included."""
        return int(await self._redis.zcard(self._queue_name)) + await self.fair.depth(self._redis)

    async def ready_depth(self) -> int:
        """Jobs waiting to start: the fair queue, plus jobs due in arq's queue (retries, jobs of dead
        workers); running jobs carry a future score there (see worker.main)."""
        due = int(await self._redis.zcount(self._queue_name, "-inf", int(time.time() * 1000)))
        return due + await self.fair.depth(self._redis)
