"""Job leases against real Redis: a renewal extends a running job's in-progress key and pushes its queue score
one lease ahead, and never revives a job that has finished (no in-progress key) or was handed back (score
set to now)."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from worker.lease import LeaseKeeper, lease_score

REDIS_URL = "redis://127.0.0.1:6379/8"
LEASE_S = 5.0


@pytest.fixture
async def redis_queue() -> AsyncIterator[tuple[Redis, str]]:
    client = Redis.from_url(REDIS_URL)
    queue = f"gw:test-lease:{uuid.uuid4().hex[:8]}"
    yield client, queue
    await client.delete(queue)
    await client.aclose()


async def _start(client: Redis, queue: str, job_id: str, *, score_ms: int, in_progress_ms: int | None) -> None:
    await client.zadd(queue, {job_id: score_ms})
    if in_progress_ms is not None:
        await client.psetex(in_progress_key_prefix + job_id, in_progress_ms, b"1")


async def test_lease_renewal_extends_running_job(redis_queue: tuple[Redis, str]) -> None:
    client, queue = redis_queue
    job_id = f"job_{uuid.uuid4().hex}"
    await _start(client, queue, job_id, score_ms=lease_score(0.2), in_progress_ms=200)
    keeper = LeaseKeeper(client, queue, LEASE_S, lambda: [job_id])
    assert await keeper.renew_once() == 1
    assert await client.pttl(in_progress_key_prefix + job_id) > (LEASE_S - 1) * 1000
    assert await client.zscore(queue, job_id) > (time.time() + LEASE_S - 1) * 1000
    await client.delete(in_progress_key_prefix + job_id)


async def test_lease_renewal_leaves_finished_and_handed_back_jobs(redis_queue: tuple[Redis, str]) -> None:
    client, queue = redis_queue
    finished, handed_back = f"job_{uuid.uuid4().hex}", f"job_{uuid.uuid4().hex}"
    now_ms = int(time.time() * 1000)
    await _start(client, queue, finished, score_ms=lease_score(1), in_progress_ms=None)
    await _start(client, queue, handed_back, score_ms=now_ms, in_progress_ms=1000)
    keeper = LeaseKeeper(client, queue, LEASE_S, lambda: [finished, handed_back])
    assert await keeper.renew_once() == 1  # only the handed-back job still had an in-progress key
    assert not await client.exists(in_progress_key_prefix + finished)
    assert await client.zscore(queue, handed_back) == now_ms  # visible to other workers at once
    await client.delete(in_progress_key_prefix + handed_back)


async def test_lease_keeper_renews_until_stopped(redis_queue: tuple[Redis, str]) -> None:
    client, queue = redis_queue
    job_id = f"job_{uuid.uuid4().hex}"
    await _start(client, queue, job_id, score_ms=lease_score(0.6), in_progress_ms=600)
    keeper = LeaseKeeper(client, queue, 0.6, lambda: [job_id])
    keeper.start()
    try:
        await asyncio.sleep(1.5)  # past two leases: alive only because it was renewed
        assert await client.exists(in_progress_key_prefix + job_id)
    finally:
        await keeper.stop()
    await asyncio.sleep(0.8)
    assert not await client.exists(in_progress_key_prefix + job_id)  # lapsed once renewals stopped
