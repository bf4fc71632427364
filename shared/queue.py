"""The job queue, over arq: the one place that knows arq's function name and queue. The API enqueues and asks
arq whether a job died without running our code; workers register `JOB_FUNCTION` under this name."""

import time
from datetime import timedelta

from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.jobs import Job, serialize_job
from arq.jobs import JobStatus as ArqJobStatus
from redis.asyncio.client import Pipeline

from shared.keys import doorbell_channel

__all__ = ["JOB_FUNCTION", "JobQueue"]

JOB_FUNCTION = "run_completion"


class JobQueue:
    def __init__(self, redis: ArqRedis, *, queue_name: str, expires_s: float) -> None:
        self._redis = redis
        self._queue_name = queue_name
        self._expires = timedelta(seconds=expires_s)

    async def enqueue(self, job_id: str) -> bool:
        """Queue the job; False if arq already holds a job with this id (a duplicate submission)."""
        job = await self._redis.enqueue_job(
            JOB_FUNCTION, job_id, _job_id=job_id, _queue_name=self._queue_name, _expires=self._expires
        )
        await self.ring()
        return job is not None

    def enqueue_on(self, pipe: Pipeline, job_id: str) -> None:
        """Queue the job on the caller's transaction, so the job record and its queue entry are written
        together in one round trip, and ring the doorbell in it too. This is arq's own `enqueue_job` without
        its WATCH/EXISTS check, which guards caller-chosen ids: ours are fresh UUIDs, never reused."""
        enqueue_ms = int(time.time() * 1000)
        payload = serialize_job(JOB_FUNCTION, (job_id,), {}, None, enqueue_ms, serializer=self._redis.job_serializer)
        pipe.psetex(job_key_prefix + job_id, int(self._expires.total_seconds() * 1000), payload)
        pipe.zadd(self._queue_name, {job_id: enqueue_ms})
        pipe.publish(doorbell_channel(self._queue_name), b"")

    async def ring(self) -> None:
        """Wake idle workers now rather than at their next poll (see worker.doorbell)."""
        await self._redis.publish(doorbell_channel(self._queue_name), b"")

    async def died_without_result(self, job_id: str) -> str | None:
        """If arq finished the job without our code ending it (expired, retries exhausted, crashed), say why."""
        job = Job(job_id, self._redis, _queue_name=self._queue_name, _deserializer=self._redis.job_deserializer)
        status = await job.status()
        if status is ArqJobStatus.complete:
            info = await job.result_info()
            return str(info.result) if info is not None else "job ended in the queue"
        if status is ArqJobStatus.not_found:
            return "job is no longer in the queue"
        return None

    async def depth(self) -> int:
        return int(await self._redis.zcard(self._queue_name))

    async def ready_depth(self) -> int:
        """Jobs due to run and not yet started: running jobs carry a future score (see worker.main)."""
        return int(await self._redis.zcount(self._queue_name, "-inf", int(time.time() * 1000)))
