"""A worker's poll claims the jobs it starts in its pick script (shared/lua/pick_jobs.lua with a claim), and a
claimed job's end commits arq's end with the record's (shared/lua/finish.lua with a QueueEnd), against real
Redis: the claim's states (run, a retry's reset, aborted, exhausted, expired), due jobs whose record ended
dropped, the abort set read in the same call, and a GatewayWorker running jobs end to end through that path
leaving none of arq's keys behind."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.worker import func

from shared.config import Settings
from shared.fair_queue import Claim, FairQueue, Picked
from shared.jobs import JobOutcome, JobStore, usage_row
from shared.keys import ARQ_ABORT_KEY, doorbell_channel, job_events_key, job_key
from shared.models import JobStatus, WireFormat
from shared.pricing import load_price_table
from shared.queue import JOB_FUNCTION, JobQueue
from shared.queue_end import QueueEnd
from shared.redis import create_redis, deserialize_job, serialize_job
from shared.routing_table import RoutingTable, Target
from shared.streams import FIRST_START_ID, EventKind, read_events
from tests.factories import ScriptedProvider, make_chat_request
from worker.breaker import CircuitBreaker
from worker.deps import WorkerDeps
from worker.gateway_worker import GatewayWorker
from worker.jobs import run_completion
from worker.main import on_job_dropped
from worker.routing import RetryPolicy, Router

REDIS_URL = "redis://127.0.0.1:6379/8"
CLAIM = Claim(worker_id="worker-a", max_tries=2, events_maxlen=1000, ttl_s=600)
ROUTES = {"gpt-4o": [Target(provider="openai", model="gpt-4o", base_url="http://u.invalid")]}


@dataclass
class Rig:
    redis: Any
    queue: JobQueue
    fair: FairQueue
    store: JobStore
    created: list[str]

    async def submit(self, tenant: str = "ten_a", *, stream: bool = False) -> str:
        job_id = f"job_{uuid.uuid4().hex}"
        self.created.append(job_id)
        await self.store.create(job_id, tenant, make_chat_request("gpt-4o", stream=stream), WireFormat.OPENAI,
                                enqueue=self.queue.enqueue_on)
        return job_id

    async def pick(self, free: int = 4, lease_ms: int = 5_000, claim: Claim = CLAIM) -> tuple[list[Picked], list[str]]:
        result = await self.fair.pick_and_claim(self.redis, claim, free=free, lease_ms=lease_ms,
                                                batch_max_wait_ms=30_000, due_read_limit=100)
        return result.picked, result.aborts


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    queue_name = f"gw:test-claim:{uuid.uuid4().hex[:8]}"
    redis = create_redis(Settings(_env_file=None, redis_url=REDIS_URL), queue_name=queue_name)
    store = JobStore(redis, ttl_s=600, events_maxlen=1000, queue_name=queue_name)
    created: list[str] = []
    yield Rig(redis, JobQueue(redis, queue_name=queue_name, expires_s=600), FairQueue(queue_name), store, created)
    keys = [key async for key in redis.scan_iter(match=f"*{queue_name}*")]
    for job_id in created:
        keys += [job_key(job_id), job_events_key(job_id), in_progress_key_prefix + job_id, job_key_prefix + job_id,
                 result_key_prefix + job_id, f"arq:retry:{job_id}"]
        await redis.zrem(ARQ_ABORT_KEY, job_id)
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def _kinds(redis: Any, job_id: str) -> list[EventKind]:
    kinds = []
    async for event in read_events(redis, job_id, block_ms=10):
        if event is None:
            break
        kinds.append(event.kind)
    return kinds


async def _ids(redis: Any, job_id: str) -> list[str]:
    return [entry_id.decode() for entry_id, _ in await redis.xrange(job_events_key(job_id))]


async def test_first_start_on_a_stream_with_entries_takes_an_id_of_its_own(rig: Rig) -> None:
    """The fixed start id cannot be given after an entry: the claim falls back to Redis's id, and still starts."""
    job_id = await rig.submit()
    await rig.redis.xadd(job_events_key(job_id), {"t": "token", "d": "{}"})
    [job], _ = await rig.pick()
    assert (job.job_id, job.state, job.attempt) == (job_id, "run", 1)
    assert await _kinds(rig.redis, job_id) == [EventKind.TOKEN, EventKind.START]
    assert FIRST_START_ID not in await _ids(rig.redis, job_id)
    other = await rig.submit()
    await rig.redis.xadd(job_events_key(other), {"t": "token", "d": "{}"})
    assert await rig.store.mark_running(other, 1, "worker-b") is not None  # the claim script does the same
    assert await _kinds(rig.redis, other) == [EventKind.TOKEN, EventKind.START]


async def test_pick_claims_the_record_for_its_first_attempt(rig: Rig) -> None:
    job_id = await rig.submit()
    [job], aborts = await rig.pick()
    assert (job.job_id, job.state, job.attempt) == (job_id, "run", 1)
    assert job_id not in aborts
    assert job.payload is not None and job.record is not None and job.record["status"] == "queued"
    stored = await rig.store.get(job_id)
    assert stored is not None and (stored.status, stored.attempt, stored.worker_id) == (
        JobStatus.RUNNING, 1, "worker-a")
    assert await _kinds(rig.redis, job_id) == [EventKind.START]
    assert await _ids(rig.redis, job_id) == [FIRST_START_ID]  # a reader of the outcome reads after it
    assert 0 < await rig.redis.ttl(job_events_key(job_id)) <= 600
    assert await rig.redis.exists(in_progress_key_prefix + job_id) == 1


async def test_due_job_is_claimed_again_as_a_retry_until_its_tries_are_used(rig: Rig) -> None:
    job_id = await rig.submit()
    await rig.pick(lease_ms=200)
    await asyncio.sleep(0.3)  # the worker died: its lease lapsed
    [retry], _ = await rig.pick(lease_ms=200)
    assert (retry.job_id, retry.source, retry.state, retry.attempt) == (job_id, "due", "run", 2)
    assert await _kinds(rig.redis, job_id) == [EventKind.START, EventKind.RESET]
    start_id, reset_id = await _ids(rig.redis, job_id)
    assert start_id == FIRST_START_ID and reset_id != FIRST_START_ID  # the retry's reset wakes outcome readers
    await asyncio.sleep(0.3)
    [spent], _ = await rig.pick()
    assert (spent.state, spent.attempt) == ("exhausted", 3)  # max_tries 2: arq's run_job fails it
    stored = await rig.store.get(job_id)
    assert stored is not None and stored.attempt == 2  # not claimed again


async def test_cancel_asked_before_a_retry_starts_makes_it_aborted(rig: Rig) -> None:
    job_id = await rig.submit()
    await rig.pick(lease_ms=200)
    assert (await rig.store.request_cancel(job_id)).changed  # running: arq is asked to abort it
    await asyncio.sleep(0.3)
    [job], aborts = await rig.pick()
    assert (job.job_id, job.state) == (job_id, "aborted")
    assert job_id in aborts  # the abort set comes with the pick


async def test_job_whose_payload_expired_is_handed_over_as_expired(rig: Rig) -> None:
    job_id = await rig.submit()
    await rig.redis.delete(job_key_prefix + job_id)
    [job], _ = await rig.pick()
    assert (job.state, job.payload) == ("expired", None)


async def test_due_job_whose_record_ended_is_dropped_from_the_queue(rig: Rig) -> None:
    job_id = await rig.submit()
    await rig.pick(lease_ms=200)
    await rig.redis.hset(job_key(job_id), "status", "succeeded")
    await asyncio.sleep(0.3)
    assert (await rig.pick())[0] == []
    assert await rig.redis.zscore(rig.fair.queue_name, job_id) is None
    assert await rig.redis.exists(job_key_prefix + job_id) == 0


async def test_finish_with_queue_end_clears_arq_keys_even_when_the_record_had_ended(rig: Rig) -> None:
    job_id = await rig.submit()
    [started], _ = await rig.pick()
    assert started.job_id == job_id
    record = await rig.store.get(job_id)
    assert record is not None

    def end() -> QueueEnd:
        return QueueEnd(job_id=job_id, in_progress_key=in_progress_key_prefix + job_id, retry_key=f"arq:retry:{job_id}",
                        payload_key=job_key_prefix + job_id, queue_key=rig.fair.queue_name, abort_key=ARQ_ABORT_KEY,
                        running_key=rig.fair.running_key("ten_a"), drained_prefix=rig.fair.drained_prefix,
                        drained_ttl_s=120)

    outcome = JobOutcome(status=JobStatus.SUCCEEDED)
    first = end()
    assert await rig.store.finish(record, outcome, usage_row(record, outcome, 1), first)
    assert first.committed
    assert await rig.redis.exists(in_progress_key_prefix + job_id, job_key_prefix + job_id) == 0
    assert await rig.redis.zscore(rig.fair.queue_name, job_id) is None
    assert await rig.redis.zscore(rig.fair.running_key("ten_a"), job_id) is None
    now = int(time.time())  # counted in the bucket of the second it ended in: this one or the one before
    buckets = [await rig.redis.get(rig.fair.drained_key(second)) for second in (now - 1, now)]
    assert sum(int(bucket or 0) for bucket in buckets) >= 1
    await rig.redis.zadd(rig.fair.queue_name, {job_id: 1})  # a duplicate delivery put it back
    again = end()
    assert not await rig.store.finish(record, outcome, usage_row(record, outcome, 1), again)  # billed once
    assert again.committed and await rig.redis.zscore(rig.fair.queue_name, job_id) is None


@pytest.fixture
async def worker(rig: Rig) -> AsyncIterator[tuple[GatewayWorker, ScriptedProvider]]:
    settings = Settings(_env_file=None, redis_url=REDIS_URL, job_ttl_s=600)
    provider = ScriptedProvider("openai", {"gpt-4o": ["first answer", "second answer here", "third"]})
    router = Router({"openai": provider}, CircuitBreaker(rig.redis, failure_threshold=100, open_s=1),
                    RetryPolicy(1, 0.0, 0.0))
    deps = WorkerDeps(settings=settings, redis=rig.redis, store=JobStore(rig.redis, ttl_s=600, events_maxlen=1000),
                      routing_table=RoutingTable(ROUTES, use_defaults=False), router=router,
                      prices=load_price_table(settings), worker_id="worker-b")
    ended: list[str] = []

    async def after_job_end(ctx: dict[str, Any]) -> None:  # the worker's slot_freed and gauge hang on this
        ended.append(ctx["job_id"])

    gateway = GatewayWorker(
        functions=[func(run_completion, name=JOB_FUNCTION)], queue_name=rig.fair.queue_name, redis_pool=rig.redis,
        handle_signals=False, poll_delay=0.05, doorbell_channel=doorbell_channel(rig.fair.queue_name),
        job_serializer=serialize_job, job_deserializer=deserialize_job, ctx={"deps": deps}, lease_s=5.0,
        on_job_dropped=on_job_dropped, allow_abort_jobs=True, keep_result=600, after_job_end=after_job_end,
    )
    gateway.ctx["ended"] = ended
    task = asyncio.create_task(gateway.async_run())
    yield gateway, provider
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await gateway.close()


async def _ended(rig: Rig, job_id: str) -> JobStatus:
    for _ in range(300):
        record = await rig.store.get(job_id)
        if record is not None and record.status.is_terminal:
            return record.status
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} never ended")


async def test_worker_runs_claimed_jobs_and_leaves_no_arq_keys(rig: Rig, worker: tuple[GatewayWorker, Any]) -> None:
    jobs = [await rig.submit(), await rig.submit("ten_b", stream=True)]
    assert [await _ended(rig, job_id) for job_id in jobs] == [JobStatus.SUCCEEDED] * 2
    await asyncio.sleep(0.05)  # the worker's finish_job ran (it writes nothing more)
    for job_id in jobs:
        kinds = await _kinds(rig.redis, job_id)
        assert kinds[0] is EventKind.START and kinds[-1] is EventKind.DONE
        assert await rig.redis.exists(in_progress_key_prefix + job_id, job_key_prefix + job_id,
                                      result_key_prefix + job_id, f"arq:retry:{job_id}") == 0
        assert await rig.redis.zscore(rig.fair.queue_name, job_id) is None
        assert 0 < await rig.redis.ttl(job_events_key(job_id)) <= 600
    for tenant in ("ten_a", "ten_b"):
        assert await rig.redis.zcard(rig.fair.running_key(tenant)) == 0
    gateway, _ = worker
    assert gateway.job_tenants == {} and gateway.jobs_complete == 2
    assert sorted(gateway.ctx["ended"]) == sorted(jobs)  # after_job_end ran for each


async def test_worker_ends_a_retry_cancelled_before_it_started(rig: Rig, worker: tuple[GatewayWorker, Any]) -> None:
    _, provider = worker
    job_id = f"job_{uuid.uuid4().hex}"
    rig.created.append(job_id)
    record = await rig.store.create(job_id, "ten_a", make_chat_request("gpt-4o"), WireFormat.OPENAI)
    # As if another worker had claimed it and died; a cancel was asked meanwhile. Then it is queued.
    async with rig.redis.pipeline(transaction=True) as pipe:
        pipe.hset(job_key(job_id), mapping={"status": "running", "attempt": "1", "cancel_requested": "1"})
        pipe.zadd(ARQ_ABORT_KEY, {job_id: int(time.time() * 1000)})
        rig.queue.enqueue_on(pipe, record)
        await pipe.execute()
    assert await _ended(rig, job_id) is JobStatus.CANCELLED
    await asyncio.sleep(0.05)
    assert await rig.redis.zscore(ARQ_ABORT_KEY, job_id) is None
    assert await rig.redis.exists(job_key_prefix + job_id) == 0
    assert provider.calls == []  # never run


class _Hanging(ScriptedProvider):
    """Answers only when cancelled: a running job for the abort to stop."""

    async def complete(self, request: Any, target: Target, *, drop: frozenset[str] = frozenset()) -> Any:
        self.calls.append(target.model)
        await asyncio.sleep(60)
        raise AssertionError("the job was not aborted")


async def test_worker_aborts_a_running_claimed_job(rig: Rig, worker: tuple[GatewayWorker, Any]) -> None:
    gateway, _ = worker
    hanging = _Hanging("openai", {})
    gateway.ctx["deps"].router = Router({"openai": hanging}, CircuitBreaker(rig.redis, failure_threshold=100, open_s=1),
                                        RetryPolicy(1, 0.0, 0.0))
    job_id = await rig.submit()
    for _ in range(300):
        if hanging.calls:
            break
        await asyncio.sleep(0.01)
    assert (await rig.store.request_cancel(job_id)).changed
    await rig.queue.ring()  # as the API's cancel does: the poll reads the abort set with its pick
    assert await _ended(rig, job_id) is JobStatus.CANCELLED
    await asyncio.sleep(0.05)
    assert await rig.redis.zscore(ARQ_ABORT_KEY, job_id) is None
    assert await rig.redis.exists(in_progress_key_prefix + job_id, job_key_prefix + job_id) == 0
