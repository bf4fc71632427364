"""The relay from job streams to clients: a job that died in the queue without a terminal event is failed
instead of hanging; a restart after output was sent ends an attached stream with an explicit error."""

import asyncio
import json

import pytest
import redis.asyncio

from api.deps import AppState
from api.relay import settle_if_dead, wait_for_result
from api.shards import ShardHandles
from api.streaming import render_event
from shared.errors import GatewayError
from shared.models import Completion, JobStatus, WireFormat
from shared.streams import Event, EventKind, append_event
from shared.wire import openai as openai_wire
from tests.factories import make_chat_request


async def test_relay_fails_job_that_vanished_from_queue(state: AppState, shard: ShardHandles) -> None:
    await shard.store.create("job_lost", "ten_1", make_chat_request("gpt-4o"), WireFormat.OPENAI)
    # Never enqueued in arq (as after a Redis failover lost the queue entry): the waiter must not hang.
    with pytest.raises(GatewayError, match="no longer in the queue"):
        await wait_for_result(state, shard, "job_lost")
    record = await shard.store.get("job_lost")
    assert record is not None and record.status is JobStatus.FAILED


async def test_relay_fails_job_that_arq_expired(state: AppState, shard: ShardHandles, clean_redis: str) -> None:
    await shard.store.create("job_old", "ten_1", make_chat_request("gpt-4o"), WireFormat.OPENAI)
    await shard.queue.enqueue("job_old")
    raw = redis.asyncio.Redis.from_url(clean_redis)
    # What arq stores when a worker finds the job expired: a failed result, our code never ran.
    result = {"t": 1, "f": "run_completion", "a": ["job_old"], "k": {}, "et": 0, "s": False,
              "r": "JobExecutionFailed('job expired')", "st": 0, "ft": 0, "q": "gw:relay-test"}
    await raw.set("arq:result:job_old", json.dumps(result))
    await raw.aclose()
    assert await settle_if_dead(state, shard, "job_old") is True
    record = await shard.store.get("job_old")
    assert record is not None and record.status is JobStatus.FAILED
    assert record.error is not None and "job expired" in str(record.error["message"])


async def test_relay_leaves_queued_job_alone(state: AppState, shard: ShardHandles) -> None:
    await shard.store.create("job_wait", "ten_1", make_chat_request("gpt-4o"), WireFormat.OPENAI)
    await shard.queue.enqueue("job_wait")
    assert await settle_if_dead(state, shard, "job_wait") is False
    record = await shard.store.get("job_wait")
    assert record is not None and record.status is JobStatus.QUEUED


def test_stream_render_ends_with_error_when_restart_follows_output() -> None:
    renderer = openai_wire.StreamRenderer("chatcmpl-1", "m", 0, False)
    items, done = render_event(Event("1-0", EventKind.RESET, {"attempt": 2}), renderer, sent_tokens=True)
    assert done is True
    assert "error" in json.loads(items[0][1])


def test_stream_render_ignores_restart_before_output() -> None:
    renderer = openai_wire.StreamRenderer("chatcmpl-1", "m", 0, False)
    items, done = render_event(Event("1-0", EventKind.RESET, {"attempt": 2}), renderer, sent_tokens=False)
    assert (items, done) == ([], False)


async def test_relay_fails_fast_when_job_record_is_missing(state: AppState, shard: ShardHandles) -> None:
    # A follower joined a leader whose submission failed before its job record was written.
    with pytest.raises(GatewayError, match="no longer exists"):
        await wait_for_result(state, shard, "job_never_created")


async def test_waiting_for_a_result_reads_once_woken_by_the_outcome_not_the_start(
        state: AppState, shard: ShardHandles, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first start has the fixed id FIRST_START_ID and the waiter reads after it: one blocking read, which
    the outcome wakes (issue 17: it was two, the first woken by the start)."""
    await shard.store.create("job_one_read", "ten_1", make_chat_request("gpt-4o"), WireFormat.OPENAI)
    reads = 0
    real_xread = shard.redis.xread

    async def counting_xread(*args: object, **kwargs: object) -> object:
        nonlocal reads
        reads += 1
        return await real_xread(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(shard.redis, "xread", counting_xread)
    waiter = asyncio.create_task(wait_for_result(state, shard, "job_one_read"))
    await asyncio.sleep(0.05)
    assert await shard.store.mark_running("job_one_read", 1, "worker-a") is not None  # appends the start
    await asyncio.sleep(0.05)
    completion = Completion(id="c1", model="gpt-4o", provider="openai", content="hi")
    await append_event(shard.redis, "job_one_read", EventKind.DONE, {"completion": completion.model_dump(mode="json")},
                       maxlen=100, ttl_s=60)
    result = await asyncio.wait_for(waiter, timeout=2)
    assert result.completion.content == "hi"
    assert reads == 1
