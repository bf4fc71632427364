"""A worker SIGKILLed mid-job: its lease (WORKER_LEASE_S, 2 s here) lapses and another worker runs the job
again as a new try, so the waiting client gets a `reset` event and then the answer within seconds, billed
once. Killed more often than WORKER_MAX_TRIES allows, the job ends failed with a clear error, billed once."""

import asyncio
import json
import time
from collections.abc import Callable

import pytest
import redis.asyncio as redis

from shared.keys import tenant_jobs_key
from tests.e2e.faults.conftest import (
    LEASE_S,
    StackFactory,
    finished,
    new_tenant,
    poll_job,
    submit,
    wait_usage_rows,
    worker_id,
)
from tests.e2e.test_jobs import _read_events

JOB_S = 3.0  # the `slow` route's upstream holds each answer this long
POLL_S = 0.5  # WORKER_POLL_DELAY_S: nothing rings the doorbell when a lease lapses


def running_on(worker: str) -> Callable[[dict], bool]:
    return lambda job: job["status"] == "running" and job["worker"] == worker


@pytest.mark.timeout(90)
async def test_worker_sigkill_job_is_finished_by_another_worker(stack: StackFactory) -> None:
    gw = await stack(workers=1)
    first = worker_id(gw.named("worker-1"))
    tenant_id, key = await new_tenant(gw)
    async with gw.client() as http:
        waiting = asyncio.create_task(http.post(
            "/api/v1/completions", headers={"X-API-Key": key},
            json={"model": "slow", "messages": [{"role": "user", "content": "survive a kill"}]}))
        job_id = await _only_job(gw.env["REDIS_URL"], tenant_id)
        await poll_job(http, key, job_id, until=running_on(first), timeout_s=10)
        # Kill first, then start the second worker: started first, a slow start on a loaded machine could outlast
        # the job, which worker-1 would then finish before its kill.
        gw.named("worker-1").kill()  # worker-1: SIGKILL, no drain, no hand-back
        killed_at = time.monotonic()
        second = worker_id(gw.start_worker("worker-2"))
        ready_s = time.monotonic() - killed_at
        response = await asyncio.wait_for(waiting, timeout=max(LEASE_S, ready_s) + POLL_S + JOB_S + 10)
        recovered_s = time.monotonic() - killed_at
        assert response.status_code == 200, response.text
        job = await poll_job(http, key, job_id, until=finished, timeout_s=5)
        events = await _read_events(http, key, job_id)
    assert job["status"] == "succeeded" and job["worker"] == second and job["attempt"] == 2
    kinds = [kind for _, kind, _ in events]
    assert kinds[0] == "start" and "reset" in kinds and kinds[-1] == "done"
    # The lease lapses LEASE_S after the kill; the second worker claims the job then (or once it is up).
    assert recovered_s < max(LEASE_S, ready_s) + POLL_S + JOB_S + 3, f"took {recovered_s:.1f}s after the kill"
    print(f"SIGKILLed job finished by {second} {recovered_s:.1f}s after the kill")
    rows = await wait_usage_rows(job_id)
    assert len(rows) == 1 and rows[0]["status"] == "succeeded" and rows[0]["completion_tokens"] > 0


@pytest.mark.timeout(90)
async def test_worker_sigkill_past_max_tries_fails_job_once(stack: StackFactory) -> None:
    gw = await stack(workers=1, env={"WORKER_MAX_TRIES": "2"})
    _, key = await new_tenant(gw)
    async with gw.client() as http:
        job_id = await submit(http, key, "slow")
        events = asyncio.create_task(_read_events(http, key, job_id))  # a client following the job
        for attempt in (1, 2):  # each victim killed before its successor starts (see the test above)
            victim = gw.named(f"worker-{attempt}")
            await poll_job(http, key, job_id, until=running_on(worker_id(victim)), timeout_s=LEASE_S + 30)
            victim.kill()
            killed_at = time.monotonic()
            worker_id(gw.start_worker(f"worker-{attempt + 1}"))
        ready_s = time.monotonic() - killed_at
        job = await poll_job(http, key, job_id, until=finished, timeout_s=max(LEASE_S, ready_s) + POLL_S + 10)
        ended_s = time.monotonic() - killed_at
        followed = await asyncio.wait_for(events, timeout=10)
    assert job["status"] == "failed"
    assert "max 2 retries exceeded" in job["error"]["message"], job["error"]
    assert followed[-1][1] == "error" and "retries exceeded" in json.dumps(followed[-1][2])
    assert ended_s < max(LEASE_S, ready_s) + POLL_S + 4, f"took {ended_s:.1f}s after the last kill"
    rows = await wait_usage_rows(job_id)
    assert len(rows) == 1 and rows[0]["status"] == "failed"


async def _only_job(redis_url: str, tenant_id: str, timeout_s: float = 10) -> str:
    """The id of the tenant's one job, once the API has created it (from the tenant's job index in Redis)."""
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ids = await client.zrange(tenant_jobs_key(tenant_id), 0, -1)
            if ids:
                return str(ids[0].decode())
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    raise AssertionError(f"no job for tenant {tenant_id} within {timeout_s}s")
