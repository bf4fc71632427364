"""Job ends in the same event-loop tick commit in one script call (shared/finish_batch.py), against real
Redis: each job gets its own answer (committed, already ended), one job's error stays its own, and a lone end
is sent as before."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ResponseError

from shared.config import Settings
from shared.finish_batch import FINISH_KEYS
from shared.jobs import JobOutcome, JobStore, usage_row
from shared.keys import USAGE_STREAM, job_events_key, job_key
from shared.models import JobStatus, WireFormat
from shared.redis import create_redis
from tests.factories import make_chat_request

REDIS_URL = "redis://127.0.0.1:6379/8"


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    client = create_redis(Settings(_env_file=None, redis_url=REDIS_URL))
    yield client
    await client.aclose()


async def _records(store: JobStore, redis: Any, count: int) -> list[Any]:
    records = []
    for _ in range(count):
        job_id = f"job_{uuid.uuid4().hex}"
        records.append(await store.create(job_id, "ten_batch", make_chat_request("m"), WireFormat.OPENAI))
    return records


async def _cleanup(redis: Any, records: list[Any]) -> None:
    await redis.delete(*[key for record in records for key in (job_key(record.id), job_events_key(record.id))])


async def _finish(store: JobStore, record: Any) -> bool:
    outcome = JobOutcome(status=JobStatus.SUCCEEDED)
    return await store.finish(record, outcome, usage_row(record, outcome, 1))


async def test_ends_of_one_tick_share_one_script_call(redis: Any) -> None:
    store = JobStore(redis, ttl_s=600, events_maxlen=1000)
    records = await _records(store, redis, 5)
    calls: list[int] = []  # script calls this client sent, by key count (the server is shared by other tests)
    evalsha, eval_source = redis.evalsha, redis.eval

    async def counted_evalsha(sha: str, numkeys: int, *rest: Any) -> Any:
        calls.append(numkeys)
        return await evalsha(sha, numkeys, *rest)

    async def counted_eval(source: str, numkeys: int, *rest: Any) -> Any:
        calls.append(numkeys)
        return await eval_source(source, numkeys, *rest)

    redis.evalsha, redis.eval = counted_evalsha, counted_eval
    first = await asyncio.gather(*(_finish(store, record) for record in records))
    del redis.evalsha, redis.eval
    assert first == [True] * 5
    assert calls in ([5 * FINISH_KEYS], [5 * FINISH_KEYS] * 2)  # one call for the five (a second after NOSCRIPT)
    for record in records:
        stored = await store.get(record.id)
        assert stored is not None and stored.status is JobStatus.SUCCEEDED
    rows = await redis.xrevrange(USAGE_STREAM, count=50)
    ids = {record.id for record in records}
    assert sum(1 for _, fields in rows if any(job_id.encode() in fields[b"row"] for job_id in ids)) == 5
    # A second end of the same jobs, with a new one among them: billed once, the new one committed.
    [fresh] = await _records(store, redis, 1)
    again = await asyncio.gather(*(_finish(store, record) for record in [*records, fresh]))
    assert again == [False] * 5 + [True]
    await _cleanup(redis, [*records, fresh])


async def test_one_jobs_error_is_its_own(redis: Any) -> None:
    store = JobStore(redis, ttl_s=600, events_maxlen=1000)
    records = await _records(store, redis, 3)
    await redis.delete(job_events_key(records[1].id))
    await redis.set(job_events_key(records[1].id), "not a stream")  # its XADD fails
    results = await asyncio.gather(*(_finish(store, record) for record in records), return_exceptions=True)
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], ResponseError)
    await _cleanup(redis, records)


async def test_a_lone_end_is_committed(redis: Any) -> None:
    store = JobStore(redis, ttl_s=600, events_maxlen=1000)
    [record] = await _records(store, redis, 1)
    assert await _finish(store, record)
    assert not await _finish(store, record)
    await _cleanup(redis, [record])
