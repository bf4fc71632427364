"""Output appends of one event-loop tick go to Redis in one pipeline (shared/append_batch.py), against real
Redis: every job's entries land in its own stream in order, the TTL is renewed only when asked, and one
append's failure is its own."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ResponseError

from shared.append_batch import AppendBatch
from shared.config import Settings
from shared.keys import job_events_key
from shared.redis import create_redis
from shared.streams import EventKind

REDIS_URL = "redis://127.0.0.1:6379/8"


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    client = create_redis(Settings(_env_file=None, redis_url=REDIS_URL))
    yield client
    await client.aclose()


async def test_appends_of_many_jobs_keep_each_jobs_order(redis: Any) -> None:
    batch = AppendBatch(redis, maxlen=1000)
    jobs = [f"job_{uuid.uuid4().hex}" for _ in range(4)]
    sent: list[int] = []  # commands per pipeline the batch sent (counted here: the server is shared by other tests)
    make_pipeline = redis.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make_pipeline(*args, **kwargs)
        execute = pipe.execute

        async def counted_execute(*a: Any, **kw: Any) -> Any:
            sent.append(len(pipe.command_stack))
            return await execute(*a, **kw)

        pipe.execute = counted_execute
        return pipe

    async def stream(job_id: str) -> None:
        for index in range(5):
            await batch.append(job_id, EventKind.TOKEN, {"text": str(index)}, ttl_s=600 if index == 0 else None)

    redis.pipeline = counting_pipeline
    await asyncio.gather(*(stream(job_id) for job_id in jobs))
    del redis.pipeline
    for job_id in jobs:
        entries = await redis.xrange(job_events_key(job_id))
        assert [fields[b"d"] for _, fields in entries] == [f'{{"text":"{i}"}}'.encode() for i in range(5)]
        assert 0 < await redis.ttl(job_events_key(job_id)) <= 600
    # 20 XADDs and 4 EXPIREs: one pipeline per tick, each holding every job's entry of that tick
    assert sent == [8, 4, 4, 4, 4]
    await redis.delete(*[job_events_key(job_id) for job_id in jobs])


async def test_one_failed_append_is_its_own(redis: Any) -> None:
    batch = AppendBatch(redis, maxlen=1000)
    good, bad = f"job_{uuid.uuid4().hex}", f"job_{uuid.uuid4().hex}"
    await redis.set(job_events_key(bad), "not a stream")
    results = await asyncio.gather(batch.append(good, EventKind.TOKEN, {"text": "a"}, ttl_s=None),
                                   batch.append(bad, EventKind.TOKEN, {"text": "b"}, ttl_s=None),
                                   return_exceptions=True)
    assert results[0] is None and isinstance(results[1], ResponseError)
    assert await redis.xlen(job_events_key(good)) == 1
    assert await redis.ttl(job_events_key(good)) == -1  # no TTL asked: none set
    await redis.delete(job_events_key(good), job_events_key(bad))
