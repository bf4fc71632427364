"""The picker reads the fair queue's state once per call (shared/lua/pick_jobs.lua) and must schedule exactly
as the picker that read it for every job did (tests/worker/pick_jobs_reference.lua, the script before issue
17): on random fair queues (1 to 130 tenants, weights, max_running caps, batch jobs with aging, cancelled
entries, jobs arriving between polls, free slots from 1 to 200, batch slots), both pick the same jobs in the
same order, poll after poll, against real Redis."""

import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from arq.constants import in_progress_key_prefix, job_key_prefix

from shared.config import Settings
from shared.fair_queue import PICK, FairQueue, Priority, TenantShare
from shared.keys import ARQ_ABORT_KEY, job_key
from shared.queue import JobQueue
from shared.redis import create_redis
from shared.scripts import LuaScript

REDIS_URL = "redis://127.0.0.1:6379/8"
REFERENCE = LuaScript((Path(__file__).parent / "pick_jobs_reference.lua").read_text())
POLLS = 12


@dataclass(frozen=True)
class Job:
    id: str
    tenant_id: str
    created_at: float
    priority: Priority
    share: TenantShare
    status: str


def _plan(rnd: random.Random, prefix: str) -> tuple[list[Job], list[list[Job]]]:
    tenants = [f"t{i:03d}" for i in range(rnd.choice([1, 1, 2, 3, 5, 70, 130]))]
    shares = {t: TenantShare(weight=rnd.choice([1, 1, 2, 3]), max_running=rnd.choice([0, 0, 0, 1, 2, 5]))
              for t in tenants}
    now = time.time()
    first = []
    for k in range(rnd.choice([1, 2, 5, rnd.randint(1, 400)])):
        tenant = rnd.choice(tenants)
        age = rnd.choice([0, 0, 0, 40]) - k * 0.00001
        first.append(Job(f"{prefix}_{k:04d}", tenant, now - age,
                         rnd.choice([Priority.INTERACTIVE, Priority.INTERACTIVE, Priority.BATCH]), shares[tenant],
                         "cancelled" if rnd.random() < 0.05 else "queued"))
    later = []
    for poll in range(POLLS):
        arrivals = []
        for k in range(rnd.choice([0, 0, 1, 3, 10])):
            tenant = rnd.choice([*tenants, "late1", "late2"])
            arrivals.append(Job(f"{prefix}_p{poll}_{k}", tenant, now + poll + k * 0.001,
                                rnd.choice([Priority.INTERACTIVE, Priority.BATCH]),
                                shares.get(tenant, TenantShare()), "queued"))
        later.append(arrivals)
    return sorted(first, key=lambda job: job.created_at), later


async def _add(redis: Any, queue: JobQueue, jobs: list[Job]) -> None:
    for job in jobs:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(job_key(job.id), mapping={"tenant_id": job.tenant_id, "status": job.status,
                                                "priority": job.priority.value})
            queue.enqueue_on(pipe, job, share=job.share)
            await pipe.execute()


async def _polls(redis: Any, queue_name: str, reference: bool, seed: int,
                 prefix: str) -> list[tuple[list[tuple[str, str]], int]]:
    rnd = random.Random(seed)
    first, later = _plan(rnd, prefix)
    queue, fair = JobQueue(redis, queue_name=queue_name, expires_s=600), FairQueue(queue_name)
    await _add(redis, queue, first)
    keys = [fair.queue_name, fair.ready[Priority.INTERACTIVE], fair.ready[Priority.BATCH],
            fair.active[Priority.INTERACTIVE], fair.active[Priority.BATCH], fair.virtual_time, fair.batch_heads,
            fair.shares]
    now = int(time.time() * 1000)
    polls = []
    for poll, arrivals in enumerate(later):
        await _add(redis, queue, arrivals)
        free, batch_free = rnd.choice([1, 2, 4, 16, 50, 200]), rnd.choice([None, 0, 3])
        args: list[object] = [now + poll, 5_000, free, 30_000, in_progress_key_prefix, fair.run_prefix, job_key(""),
                              job_key_prefix, 100, free if batch_free is None else batch_free]
        if reference:
            flat, left = await REFERENCE.run(redis, keys, args)
            picked = [(flat[i].decode(), flat[i + 3].decode()) for i in range(0, len(flat), 4)]
        else:
            jobs, left, _ = await PICK.run(redis, [*keys, ARQ_ABORT_KEY], [*args, 0, "", "", 0, 0, 0, "0", 0])
            picked = [(job[0].decode(), job[3].decode()) for job in jobs]
        for job_id, _ in picked[: len(picked) // 2]:  # some end, freeing their tenants' capped slots
            tenant = (await redis.hget(job_key(job_id), "tenant_id")).decode()
            await redis.zrem(fair.running_key(tenant), job_id)
        polls.append((picked, int(left)))
    return polls


@pytest.mark.parametrize("seed", range(40))
async def test_batched_picker_schedules_as_the_one_job_picker(seed: int) -> None:
    redis = create_redis(Settings(_env_file=None, redis_url=REDIS_URL))
    runs = []
    for reference in (True, False):
        token = uuid.uuid4().hex[:8]
        queue_name, prefix = f"gw:test-pick-eq:{token}", f"job_eq{token}"
        try:
            runs.append([(_plain(picked, prefix), left)
                         for picked, left in await _polls(redis, queue_name, reference, seed, prefix)])
        finally:
            keys = [key async for key in redis.scan_iter(match=f"*{token}*")]
            if keys:
                await redis.delete(*keys)
    await redis.aclose()
    reference_polls, batched_polls = runs
    for poll, (expected, got) in enumerate(zip(reference_polls, batched_polls, strict=True)):
        assert got[0] == expected[0], f"poll {poll}: picks differ"
        assert got[1] >= expected[1], f"poll {poll}: jobs left waiting, not said"


def _plain(picked: list[tuple[str, str]], prefix: str) -> list[tuple[str, str]]:
    """Picks with the run's job id prefix taken off, so the two runs compare."""
    return [(job_id.removeprefix(prefix), source) for job_id, source in picked]
