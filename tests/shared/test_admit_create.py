"""Admission that creates the admitted job in the same script (shared/lua/admit_create.lua, issue 17), against
real Redis: an admitted request's record, listing index, arq payload and fair-queue entry are written and the
doorbell rung, in the order the pipeline code queued them; a refused request (limit, queue full, budget to seed)
writes nothing; the writes are recorded, never sent on their own (shared/pending_writes.py)."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from arq.constants import job_key_prefix

from shared.config import Settings
from shared.fair_queue import Priority, TenantShare
from shared.jobs import JobOptions, JobStore, new_record
from shared.keys import doorbell_channel, job_key, tenant_jobs_key
from shared.limits import Admission, Budget, LimitRequest, admit
from shared.models import JobStatus, WireFormat
from shared.pending_writes import PendingWrites
from shared.queue import JobQueue
from shared.redis import create_redis
from tests.factories import make_chat_request

REDIS_URL = "redis://127.0.0.1:6379/8"
QUEUE = "test_admit_create"


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    client = create_redis(Settings(_env_file=None, redis_url=REDIS_URL))
    yield client
    await client.aclose()


def _limits(tenant: str, job_id: str, **overrides: object) -> LimitRequest:
    values: dict[str, object] = {
        "tenant_id": tenant, "job_id": job_id, "rpm_limit": 0, "tpm_limit": 0, "tokens": 10,
        "concurrency_limit": 0, "concurrency_expiry_s": 60, "budget": None, "reserve_usd": 0.0,
    }
    values.update(overrides)
    return LimitRequest(**values)  # type: ignore[arg-type]


class _Creation:
    """The job's writes as api/submit.py builds them, and the admission they were built with."""

    def __init__(self, redis: Any, tenant: str, job_id: str) -> None:
        self.redis, self.tenant, self.job_id = redis, tenant, job_id
        self.store = JobStore(redis, ttl_s=600, events_maxlen=1000)
        self.queue = JobQueue(redis, queue_name=QUEUE, expires_s=600)
        self.admissions: list[Admission] = []

    def __call__(self, admission: Admission) -> PendingWrites:
        self.admissions.append(admission)
        record = new_record(self.job_id, self.tenant, make_chat_request("m"), WireFormat.OPENAI,
                            JobOptions(admission=admission, priority=Priority.INTERACTIVE))

        def build(pipe: Any) -> None:
            self.store.write_on(pipe, record)
            self.queue.enqueue_on(pipe, record, share=TenantShare(weight=2))

        return PendingWrites.record(self.redis, build)


async def _created(redis: Any, creation: _Creation) -> bool:
    return bool(await redis.exists(job_key(creation.job_id)))


async def test_an_admitted_request_creates_its_job(redis: Any) -> None:
    tenant, job_id = f"ten_{uuid.uuid4().hex[:8]}", f"job_{uuid.uuid4().hex}"
    creation = _Creation(redis, tenant, job_id)
    pubsub = redis.pubsub()
    await pubsub.subscribe(doorbell_channel(QUEUE))
    await pubsub.get_message(timeout=1)  # the subscription's confirmation
    result = await admit(redis, _limits(tenant, job_id, rpm_limit=5, tpm_limit=100), datetime.now(UTC), creation)
    assert result.allowed and result.rpm_remaining == 4
    record = await creation.store.get(job_id)
    assert record is not None and record.status is JobStatus.QUEUED
    assert record.admission == creation.admissions[0] == result.admission  # the record carries its admission
    assert record.admission is not None and record.admission.tokens_estimated == 10
    assert 0 < await redis.ttl(job_key(job_id)) <= 600
    assert await redis.zscore(tenant_jobs_key(tenant), job_id) is not None
    assert await redis.exists(job_key_prefix + job_id)  # arq's payload, for run_job
    member = creation.queue.fair.entry(tenant, record.created_at, job_id)
    assert await redis.zscore(creation.queue.fair.ready[Priority.INTERACTIVE], member) is not None
    assert await redis.hget(creation.queue.fair.shares, tenant) == TenantShare(weight=2).encoded().encode()
    message = await pubsub.get_message(timeout=2, ignore_subscribe_messages=True)
    assert message is not None and message["channel"] == doorbell_channel(QUEUE).encode()
    await pubsub.aclose()


async def test_a_refused_request_writes_nothing(redis: Any) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    first = _Creation(redis, tenant, f"job_{uuid.uuid4().hex}")
    assert (await admit(redis, _limits(tenant, first.job_id, rpm_limit=1), datetime.now(UTC), first)).allowed
    second = _Creation(redis, tenant, f"job_{uuid.uuid4().hex}")
    refused = await admit(redis, _limits(tenant, second.job_id, rpm_limit=1), datetime.now(UTC), second)
    assert not refused.allowed and refused.reason == "requests"
    assert await _created(redis, first) and not await _created(redis, second)
    assert not await redis.exists(job_key_prefix + second.job_id)
    assert await redis.zscore(tenant_jobs_key(tenant), second.job_id) is None


async def test_a_full_queue_refuses_before_writing(redis: Any) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    queue = JobQueue(redis, queue_name=QUEUE, expires_s=600)
    ready = (queue.fair.ready[Priority.INTERACTIVE], queue.fair.ready[Priority.BATCH])
    await redis.delete(*ready)
    first = _Creation(redis, tenant, f"job_{uuid.uuid4().hex}")
    assert (await admit(redis, _limits(tenant, first.job_id, queue_keys=ready, queue_limit=1),
                        datetime.now(UTC), first)).allowed
    second = _Creation(redis, tenant, f"job_{uuid.uuid4().hex}")
    refused = await admit(redis, _limits(tenant, second.job_id, queue_keys=ready, queue_limit=1),
                          datetime.now(UTC), second)
    assert refused.reason == "queue_full" and not await _created(redis, second)
    assert await redis.zcard(ready[0]) == 1  # the first job's entry, which the limit counted
    await redis.delete(*ready)


async def test_a_budget_to_seed_writes_nothing_until_admitted(redis: Any) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    creation = _Creation(redis, tenant, f"job_{uuid.uuid4().hex}")
    limits = _limits(tenant, creation.job_id, budget=Budget(1.0, "monthly"), reserve_usd=0.01)
    unseeded = await admit(redis, limits, datetime.now(UTC), creation)
    assert unseeded.budget_unseeded and not await _created(redis, creation)


async def test_concurrent_admissions_create_exactly_the_admitted_jobs(redis: Any) -> None:
    tenant = f"ten_{uuid.uuid4().hex[:8]}"
    creations = [_Creation(redis, tenant, f"job_{uuid.uuid4().hex}") for _ in range(12)]
    results = await asyncio.gather(*(admit(redis, _limits(tenant, creation.job_id, concurrency_limit=5),
                                           datetime.now(UTC), creation) for creation in creations))
    assert sum(result.allowed for result in results) == 5
    for creation, result in zip(creations, results, strict=True):
        assert await _created(redis, creation) is result.allowed


def test_recording_refuses_a_command_it_cannot_declare_the_key_of() -> None:
    client = create_redis(Settings(_env_file=None, redis_url=REDIS_URL))
    with pytest.raises(ValueError, match="INCRBY cannot be recorded"):
        PendingWrites.record(client, lambda pipe: pipe.incr("counter"))


def test_script_arguments_declare_every_key_in_order() -> None:
    client = create_redis(Settings(_env_file=None, redis_url=REDIS_URL))

    def build(pipe: Any) -> None:
        pipe.hset("record", mapping={"a": "1"})
        pipe.publish("channel", b"")
        pipe.zadd("queue", {"member": 0}, nx=True)

    keys, args = PendingWrites.record(client, build).script_args(first_key=17)
    assert keys == ["record", "queue"]
    assert args == [3, 17, 2, "HSET", "a", "1", 0, 2, "PUBLISH", "channel", b"", 18, 3, "ZADD", b"NX", 0, "member"]
