"""The fair-queue picker (shared/lua/pick_jobs.lua) against real Redis: round robin across tenants, weights,
interactive before batch with aging, the max_running cap (also for retried jobs), running accounting that
survives a dead worker, retried batch jobs kept to the batch slots, cancelled jobs never started, and
backpressure's depth check and drain-rate Retry-After."""

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from arq.constants import in_progress_key_prefix, job_key_prefix

from shared.config import Settings
from shared.fair_queue import FairQueue, Picked, Priority, TenantShare
from shared.jobs import JobOptions, JobStore
from shared.keys import job_key
from shared.limits import LimitRequest, admit
from shared.models import ChatRequest, JobStatus, Message, WireFormat
from shared.queue import JobQueue
from shared.redis import create_redis

REDIS_URL = "redis://127.0.0.1:6379/8"
LEASE_MS = 5_000
WAIT_MS = 30_000


@dataclass(frozen=True)
class Job:
    id: str
    tenant_id: str
    created_at: float
    priority: Priority


@dataclass
class Rig:
    redis: object
    queue: JobQueue
    fair: FairQueue
    store: JobStore

    async def add(self, tenant: str, count: int = 1, *, priority: Priority = Priority.INTERACTIVE,
                  share: TenantShare | None = None, age_s: float = 0.0) -> list[str]:
        return [job.id for job in await self.add_jobs(tenant, count, priority=priority, share=share, age_s=age_s)]

    async def add_jobs(self, tenant: str, count: int = 1, *, priority: Priority = Priority.INTERACTIVE,
                       share: TenantShare | None = None, age_s: float = 0.0) -> list[Job]:
        jobs = []
        for _ in range(count):
            job = Job(f"job_{uuid.uuid4().hex}", tenant, time.time() - age_s, priority)
            async with self.redis.pipeline(transaction=True) as pipe:  # type: ignore[attr-defined]
                pipe.hset(job_key(job.id), mapping={"tenant_id": tenant, "status": "queued",
                                                    "priority": priority.value})
                self.queue.enqueue_on(pipe, job, share=share)
                await pipe.execute()
            jobs.append(job)
        return jobs

    async def pick(self, free: int, *, lease_ms: int = LEASE_MS, max_wait_ms: int = WAIT_MS,
                   batch_free: int | None = None) -> list[Picked]:
        picked, _ = await self.fair.pick(self.redis, free=free, lease_ms=lease_ms,  # type: ignore[arg-type]
                                         batch_max_wait_ms=max_wait_ms, due_read_limit=100, batch_free=batch_free)
        return picked


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    queue_name = f"gw:test-fq:{uuid.uuid4().hex[:8]}"
    redis = create_redis(Settings(_env_file=None, redis_url=REDIS_URL), queue_name=queue_name)
    store = JobStore(redis, ttl_s=600, events_maxlen=1000, queue_name=queue_name)
    yield Rig(redis, JobQueue(redis, queue_name=queue_name, expires_s=600), FairQueue(queue_name), store)
    keys = [key async for key in redis.scan_iter(match=f"*{queue_name}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def tenants(picked: list[Picked]) -> list[str]:
    return [job.tenant_id for job in picked]


async def test_pick_round_robin_across_tenants(rig: Rig) -> None:
    flood = await rig.add("ten_a", 20)
    other = await rig.add("ten_b", 3)
    picked = await rig.pick(6)
    assert Counter(tenants(picked)) == {"ten_a": 3, "ten_b": 3}
    assert [job.job_id for job in picked if job.tenant_id == "ten_a"] == flood[:3]  # each tenant's FIFO
    assert [job.job_id for job in picked if job.tenant_id == "ten_b"] == other
    assert await rig.queue.ready_depth() == 17


async def test_pick_weights_share_slots(rig: Rig) -> None:
    await rig.add("ten_a", 30, share=TenantShare(weight=3))
    await rig.add("ten_b", 30, share=TenantShare(weight=1))
    picked = await rig.pick(16)
    assert Counter(tenants(picked)) == {"ten_a": 12, "ten_b": 4}


async def test_pick_newcomer_is_served_next_despite_flood(rig: Rig) -> None:
    await rig.add("ten_a", 50)
    assert tenants(await rig.pick(10)) == ["ten_a"] * 10
    late = await rig.add("ten_b")
    assert [job.job_id for job in await rig.pick(1)] == late  # not behind A's 40 remaining jobs


async def test_pick_interactive_before_batch(rig: Rig) -> None:
    await rig.add("ten_a", 5, priority=Priority.BATCH)
    interactive = await rig.add("ten_b", 2)
    picked = await rig.pick(3)
    assert [job.job_id for job in picked[:2]] == interactive
    assert picked[2].tenant_id == "ten_a"


async def test_pick_keeps_interactive_slots_from_batch(rig: Rig) -> None:
    await rig.add("ten_a", 10, priority=Priority.BATCH)
    picked = await rig.pick(4, batch_free=3)
    assert [job.source for job in picked] == ["batch"] * 3
    interactive = await rig.add("ten_b")
    assert [job.job_id for job in await rig.pick(1, batch_free=0)] == interactive
    assert await rig.pick(1, batch_free=0) == []  # batch keeps waiting for a batch slot


async def test_pick_ages_overdue_batch_into_interactive(rig: Rig) -> None:
    old = await rig.add("ten_a", 2, priority=Priority.BATCH, age_s=40)
    await rig.add("ten_a", 2, priority=Priority.BATCH)  # fresh: stays batch
    await rig.add("ten_b", 10)
    picked = await rig.pick(4)
    # The overdue batch jobs take their tenant's turn among interactive work: round robin with B.
    assert Counter(tenants(picked)) == {"ten_a": 2, "ten_b": 2}
    assert {job.job_id for job in picked if job.tenant_id == "ten_a"} == set(old)
    assert tenants(await rig.pick(8)) == ["ten_b"] * 8  # fresh batch still waits for interactive


async def test_pick_without_aging_starves_batch_while_interactive_waits(rig: Rig) -> None:
    await rig.add("ten_a", 2, priority=Priority.BATCH, age_s=40)
    await rig.add("ten_b", 4)
    assert tenants(await rig.pick(4, max_wait_ms=60_000)) == ["ten_b"] * 4


async def test_pick_respects_max_running_cap(rig: Rig) -> None:
    await rig.add("ten_a", 5, share=TenantShare(max_running=2))
    await rig.add("ten_b", 5)
    first = await rig.pick(6)
    assert Counter(tenants(first)) == {"ten_a": 2, "ten_b": 4}
    assert tenants(await rig.pick(6)) == ["ten_b"]  # A is at its cap: its jobs wait, B's last one runs
    ended = next(job for job in first if job.tenant_id == "ten_a")
    async with rig.redis.pipeline(transaction=True) as pipe:  # type: ignore[attr-defined]
        rig.fair.job_ended_on(pipe, job_id=ended.job_id, tenant_id="ten_a", counted=True)
        await pipe.execute()
    assert tenants(await rig.pick(6)) == ["ten_a"]


async def test_pick_running_accounting_survives_dead_worker(rig: Rig) -> None:
    [job_id] = await rig.add("ten_a", share=TenantShare(max_running=1))
    waiting = await rig.add("ten_a", share=TenantShare(max_running=1))
    assert [job.job_id for job in await rig.pick(4, lease_ms=300)] == [job_id]
    assert await rig.pick(4, lease_ms=300) == []  # capped while the first runs
    running = rig.fair.running_key("ten_a")
    assert await rig.redis.zcard(running) == 1  # type: ignore[attr-defined]
    time.sleep(0.4)  # the worker died: nobody renews the lease
    # The job comes back from arq's queue (a retry) and counts once; the cap still holds the next one.
    assert [job.job_id for job in await rig.pick(4)] == [job_id]
    assert await rig.redis.zrange(running, 0, -1) == [job_id.encode()]  # type: ignore[attr-defined]
    async with rig.redis.pipeline(transaction=True) as pipe:  # type: ignore[attr-defined]
        rig.fair.job_ended_on(pipe, job_id=job_id, tenant_id="ten_a", counted=True)
        await pipe.execute()
    assert [job.job_id for job in await rig.pick(4)] == waiting


async def test_pick_due_job_waits_while_its_tenant_is_at_its_cap(rig: Rig) -> None:
    [job_id] = await rig.add("ten_a", share=TenantShare(max_running=1))
    assert [job.job_id for job in await rig.pick(4, lease_ms=300)] == [job_id]
    time.sleep(0.4)  # its worker died: the job is due again in arq's queue
    running = rig.fair.running_key("ten_a")
    await rig.redis.zadd(running, {"job_elsewhere": time.time() * 1000 + 5000})  # type: ignore[attr-defined]
    assert await rig.pick(4) == []  # another of A's jobs runs on another worker: A is at its cap
    await rig.redis.zrem(running, "job_elsewhere")  # type: ignore[attr-defined]
    [again] = await rig.pick(4)
    assert (again.job_id, again.source) == (job_id, "due")


async def test_pick_due_batch_job_keeps_to_the_batch_slots(rig: Rig) -> None:
    [job_id] = await rig.add("ten_a", priority=Priority.BATCH)
    assert [job.job_id for job in await rig.pick(4, lease_ms=300)] == [job_id]
    time.sleep(0.4)  # due again
    [fresh] = await rig.add("ten_b", priority=Priority.BATCH)
    assert await rig.pick(4, batch_free=0) == []  # a retried batch job takes no interactive-only slot
    picked = await rig.pick(4, batch_free=1)
    assert [(job.job_id, job.source) for job in picked] == [(job_id, "batch")]  # counted as batch: B waits
    assert [job.job_id for job in await rig.pick(4, batch_free=1)] == [fresh]


async def test_pick_claims_jobs_in_arq_queue(rig: Rig) -> None:
    [job_id] = await rig.add("ten_a")
    [picked] = await rig.pick(1)
    assert picked.job_id == job_id
    assert await rig.redis.exists(in_progress_key_prefix + job_id) == 1  # type: ignore[attr-defined]
    score = await rig.redis.zscore(rig.queue.fair.queue_name, job_id)  # type: ignore[attr-defined]
    assert score is not None and score > time.time() * 1000  # pushed one lease ahead: scans skip it
    assert await rig.queue.died_without_result(job_id) is None


async def test_died_check_never_fails_a_job_while_a_worker_picks_it(rig: Rig) -> None:
    """The API checks a queued job on every poll while workers move jobs from the fair queue into arq's queue:
    at no instant is a waiting or started job seen in neither place."""
    jobs = await rig.add_jobs("ten_a", 150)
    picking = True

    async def picker() -> None:
        nonlocal picking
        while await rig.pick(1):
            await asyncio.sleep(0)
        picking = False

    async def checker() -> list[str]:
        reasons = []
        while picking:
            for job in jobs:
                if (reason := await rig.queue.died_without_result(job.id, job)) is not None:
                    reasons.append(f"{job.id}: {reason}")
        return reasons

    *checks, _ = await asyncio.gather(checker(), checker(), checker(), picker())
    assert [reason for found in checks for reason in found] == []
    assert await rig.queue.fair.depth(rig.redis) == 0  # type: ignore[arg-type]


def _chat() -> ChatRequest:
    return ChatRequest(model="m", messages=[Message(role="user", content="hi")])


async def test_cancelled_queued_job_is_removed_and_never_started(rig: Rig) -> None:
    record = await rig.store.create(f"job_{uuid.uuid4().hex}", "ten_a", _chat(), WireFormat.OPENAI,
                                    JobOptions(priority=Priority.BATCH), enqueue=rig.queue.enqueue_on)
    assert await rig.queue.died_without_result(record.id, record) is None  # waiting is alive
    assert (await rig.store.request_cancel(record.id)).status is JobStatus.CANCELLED
    assert await rig.queue.ready_depth() == 0
    assert await rig.redis.exists(job_key_prefix + record.id) == 0  # type: ignore[attr-defined]
    assert await rig.pick(4) == []


async def test_cancelled_job_left_in_queue_is_skipped(rig: Rig) -> None:
    store = JobStore(rig.redis, ttl_s=600, events_maxlen=1000)  # not told the queue: leaves the entry behind
    record = await store.create(f"job_{uuid.uuid4().hex}", "ten_a", _chat(), WireFormat.OPENAI,
                                enqueue=rig.queue.enqueue_on)
    await store.request_cancel(record.id)
    later = await rig.add("ten_a")
    assert [job.job_id for job in await rig.pick(4)] == later
    assert await rig.redis.exists(job_key_prefix + record.id) == 0  # type: ignore[attr-defined]


async def test_record_priority_round_trips(rig: Rig) -> None:
    record = await rig.store.create(f"job_{uuid.uuid4().hex}", "ten_a", _chat(), WireFormat.OPENAI,
                                    JobOptions(priority=Priority.BATCH), enqueue=rig.queue.enqueue_on)
    stored = await rig.store.get(record.id)
    assert stored is not None and stored.priority is Priority.BATCH
    await rig.redis.hdel(f"gw:job:{record.id}", "priority")  # type: ignore[attr-defined]
    legacy = await rig.store.get(record.id)
    assert legacy is not None and legacy.priority is Priority.INTERACTIVE


async def test_admission_refuses_when_queue_full(rig: Rig) -> None:
    await rig.add("ten_a", 3, priority=Priority.BATCH)
    keys = (rig.fair.ready[Priority.INTERACTIVE], rig.fair.ready[Priority.BATCH])
    tenant = f"ten_{uuid.uuid4().hex[:8]}"

    def request(limit: int) -> LimitRequest:
        return LimitRequest(tenant_id=tenant, job_id=f"job_{uuid.uuid4().hex}", rpm_limit=0, tpm_limit=0, tokens=10,
                            concurrency_limit=0, concurrency_expiry_s=60, budget=None, reserve_usd=0.0,
                            queue_keys=keys, queue_limit=limit)

    refused = await admit(rig.redis, request(3), datetime.now(UTC))  # type: ignore[arg-type]
    assert (refused.allowed, refused.reason) == (False, "queue_full")
    admitted = await admit(rig.redis, request(4), datetime.now(UTC))  # type: ignore[arg-type]
    assert admitted.allowed


async def test_retry_after_follows_drain_rate(rig: Rig) -> None:
    await rig.add("ten_a", 40, priority=Priority.BATCH)
    assert await rig.fair.retry_after_s(rig.redis, 10) == (60, 0.0)  # type: ignore[arg-type]  # nothing drains
    now = int(time.time())
    for second in range(now - 60, now):
        await rig.redis.set(rig.fair.drained_key(second), 2, ex=120)  # type: ignore[attr-defined]
    wait_s, rate = await rig.fair.retry_after_s(rig.redis, 10)  # type: ignore[arg-type]
    assert rate == pytest.approx(2.0)
    assert wait_s == 16  # 31 jobs over the bound at 2 jobs/s
