"""The doorbell wakes an idle worker at once: with a 5 s poll delay, a rung job starts within a fraction of a
second; without the ring it waits for the poll. Rings close together are coalesced into one poll per
MIN_POLL_GAP_S; a ring after a quiet spell is served without that pause."""

import asyncio
import time
import uuid
from typing import Any

import pytest
from arq.worker import func

from shared.config import Settings
from shared.keys import doorbell_channel
from shared.queue import JobQueue
from shared.redis import create_redis, deserialize_job, serialize_job
from worker.doorbell import MIN_POLL_GAP_S, Doorbell
from worker.gateway_worker import GatewayWorker

REDIS_URL = "redis://127.0.0.1:6379/8"


@pytest.fixture
async def started_jobs():
    queue_name = f"gw:test-doorbell:{uuid.uuid4().hex[:8]}"
    redis = create_redis(Settings(_env_file=None, redis_url=REDIS_URL), queue_name=queue_name)
    started: dict[str, float] = {}

    async def record_start(ctx: dict[str, Any], job_id: str) -> None:
        started[job_id] = time.monotonic()

    worker = GatewayWorker(
        functions=[func(record_start, name="run_completion")], queue_name=queue_name, redis_pool=redis,
        handle_signals=False, poll_delay=5.0, doorbell_channel=doorbell_channel(queue_name),
        job_serializer=serialize_job, job_deserializer=deserialize_job,
    )
    task = asyncio.create_task(worker.async_run())
    await _subscribed(redis, doorbell_channel(queue_name))
    await asyncio.sleep(0.1)  # let the first poll pass
    yield JobQueue(redis, queue_name=queue_name, expires_s=60), started, redis, queue_name
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await worker.close()


async def _subscribed(redis: Any, channel: str, timeout_s: float = 10.0) -> None:
    """Wait until the worker's listener is subscribed: a ring before that is lost (a fixed sleep was not
    enough on a loaded machine, and the test then waited out the 5 s poll)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        [(_, subscribers)] = await redis.pubsub_numsub(channel)
        if subscribers:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the worker never subscribed to {channel}")


async def test_doorbell_wakes_idle_worker_at_once(started_jobs) -> None:
    queue, started, _, _ = started_jobs
    job_id = f"job_{uuid.uuid4().hex}"
    enqueued = time.monotonic()
    assert await queue.enqueue(job_id)
    while job_id not in started and time.monotonic() - enqueued < 4.0:
        await asyncio.sleep(0.01)
    # The fallback poll comes about 5 s after the last one; the ring starts the job at once (milliseconds here),
    # and a loaded CI machine once took over a second to run it, so the bound only tells a ring from the poll.
    assert job_id in started, "the job did not start within 4 s: the ring was not heard"
    assert started[job_id] - enqueued < 2.5


async def test_without_ring_worker_waits_for_its_poll(started_jobs) -> None:
    _, started, redis, queue_name = started_jobs
    job_id = f"job_{uuid.uuid4().hex}"
    assert await redis.enqueue_job("run_completion", job_id, _job_id=job_id, _queue_name=queue_name)
    await asyncio.sleep(1.0)
    assert job_id not in started


class _PauseRecorder(Doorbell):
    """A doorbell without a listener that records the coalescing pauses its ticks take."""

    def __init__(self) -> None:
        super().__init__(redis=None, channel="unused")  # type: ignore[arg-type]
        self.pauses: list[float] = []

    async def _pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        await asyncio.sleep(seconds)


async def test_doorbell_ring_after_quiet_spell_is_served_without_pause() -> None:
    bell = _PauseRecorder()
    ticks = bell.ticks(fallback_s=5)
    await anext(ticks)  # the first poll
    waiting = asyncio.ensure_future(anext(ticks))  # as the worker does, right after its poll
    await asyncio.sleep(MIN_POLL_GAP_S * 5)  # quiet
    bell.ring()
    await asyncio.wait_for(waiting, 1)
    assert bell.pauses == []


async def test_doorbell_ring_right_after_a_poll_waits_out_the_gap() -> None:
    bell = _PauseRecorder()
    ticks = bell.ticks(fallback_s=5)
    await anext(ticks)
    waiting = asyncio.ensure_future(anext(ticks))
    bell.ring()  # as the poll ends: part of a burst
    await asyncio.wait_for(waiting, 1)
    assert len(bell.pauses) == 1 and 0 < bell.pauses[0] <= MIN_POLL_GAP_S
