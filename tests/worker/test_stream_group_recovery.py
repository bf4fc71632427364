"""Redis lost its data (a restart without persistence, a flush, an eviction) and with it the consumer groups of
the usage stream and of the webhook stream: the usage writer and the webhook intake create them again and carry
on, records added since are written; and the writer exports how far billing lags (oldest unwritten record,
backlog, last completed flush) while it is stalled, and once it has caught up."""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from shared.jobs import JobStore
from shared.keys import USAGE_STREAM, USAGE_WRITERS_KEY
from shared.metrics import USAGE_GROUP_RECREATED, USAGE_LAST_FLUSH, USAGE_OLDEST_UNWRITTEN
from shared.usage_stream import USAGE_LAG_LIMIT_S, read_usage_lag
from tests.factories import make_fake_redis
from tests.support.webhook_receiver import Receiver
from tests.worker.test_usage_writer import RecordingDatabase, _add
from tests.worker.test_webhooks import _job, _sender, _settings, _succeed, redis, store  # noqa: F401 (fixtures)
from worker.usage_writer import UsageWriter


async def _eventually(check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if await result if asyncio.iscoroutine(result) else result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not within the time bound")


def _count(metric: object) -> float:
    return float(metric._value.get())  # type: ignore[attr-defined]


async def test_usage_writer_recreates_its_group_after_redis_lost_its_data() -> None:
    client, db = make_fake_redis(), RecordingDatabase()
    writer = UsageWriter(client, db.insert, consumer="w1", batch_size=100, interval_s=0.05)
    recreated = _count(USAGE_GROUP_RECREATED)
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    try:
        await _add(client, "before")
        await _eventually(lambda: "before" in db.rows)
        await client.flushdb()  # what a restart without persistence leaves: no stream, no group
        await _add(client, "after")
        await _eventually(lambda: "after" in db.rows)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert _count(USAGE_GROUP_RECREATED) == recreated + 1
    assert await client.xlen(USAGE_STREAM) == 0


async def test_usage_writer_exports_the_lag_while_stalled_and_after() -> None:
    client, db = make_fake_redis(), RecordingDatabase()
    writer = UsageWriter(client, db.insert, consumer="w1", batch_size=100, interval_s=0.01)
    await writer.ensure_group()
    assert await writer.flush_once(block_ms=None) == 0
    await writer.observe()  # reports the flush that completed
    assert (await client.zscore(USAGE_WRITERS_KEY, "w1")) is not None
    assert time.time() - _count(USAGE_LAST_FLUSH) < 5
    old_ms = int(time.time() * 1000) - 300_000  # a record the writer could not write for five minutes
    await client.xadd(USAGE_STREAM, {"row": json.dumps({"request_id": "old", "tenant_id": "t"})}, id=f"{old_ms}-0")
    db.down = True
    writer._next_observe_at = 0.0
    await writer.observe()
    stalled = await read_usage_lag(client)
    assert _count(USAGE_OLDEST_UNWRITTEN) >= 299 and stalled.backlog == 1 and not stalled.ok
    assert "300 s old" in str(stalled.as_check()["detail"]) or "299 s old" in str(stalled.as_check()["detail"])
    db.down = False
    assert await writer.flush_once(block_ms=None) == 1
    writer._next_observe_at = 0.0
    await writer.observe()
    caught_up = await read_usage_lag(client)
    assert caught_up.ok and caught_up.backlog == 0 and caught_up.oldest_unwritten_s == 0
    assert _count(USAGE_OLDEST_UNWRITTEN) == 0 and caught_up.last_flush_s is not None
    assert caught_up.last_flush_s < USAGE_LAG_LIMIT_S


async def test_webhook_intake_recreates_its_group_after_redis_lost_its_data(
        redis: Redis, store: JobStore) -> None:  # noqa: F811
    async with Receiver() as receiver, _sender(redis, store, _settings()):
        first = await _succeed(store, await _job(store, receiver.url))
        await receiver.wait_calls(1)
        await redis.flushdb()  # the test's own Redis db: the webhook stream and its group are gone
        second = await _succeed(store, await _job(store, receiver.url))
        calls = await receiver.wait_calls(2)
    assert [json.loads(call.body)["id"] for call in calls] == [first.id, second.id]
