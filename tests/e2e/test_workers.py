"""Workers are separate processes: jobs are served by a worker process, and a second worker takes a share of
a burst."""

import asyncio

import httpx

from tests.e2e.conftest import Gateway
from tests.e2e.test_jobs import _poll_until_done, _submit


async def test_worker_process_serves_jobs_not_the_api(http: httpx.AsyncClient, tenant_key: str) -> None:
    job_id = await _submit(http, tenant_key)
    job = await _poll_until_done(http, tenant_key, job_id)
    assert job["status"] == "succeeded"
    assert job["worker"].startswith("worker-")


async def test_two_workers_share_a_burst_of_jobs(gateway: Gateway, http: httpx.AsyncClient, tenant_key: str) -> None:
    """Which worker claims a job is a race between their doorbells (each may take 200 at once), so one burst
    can fall to one worker by chance; a second worker that never serves any of several bursts is the failure."""
    second = gateway.start_worker("worker-2")
    workers: set[str] = set()
    try:
        await _wait_for_workers(http, 2, second)
        body = {"model": "slow-300", "messages": [{"role": "user", "content": "burst"}]}
        for _ in range(5):
            job_ids = []
            for _ in range(30):
                job_ids.append(await _submit(http, tenant_key, body))
                await asyncio.sleep(0.01)
            jobs = await asyncio.gather(*(_poll_until_done(http, tenant_key, j, timeout_s=30) for j in job_ids))
            assert all(job["status"] == "succeeded" for job in jobs)
            workers |= {job["worker"] for job in jobs}
            if len(workers) == 2:
                break
    finally:
        second.stop()
    assert len(workers) == 2, f"one worker took every burst: {workers}"


async def _wait_for_workers(http: httpx.AsyncClient, count: int, process: object) -> None:
    # Health counts live heartbeats; wait until the new worker has sent its first one.
    for _ in range(100):
        response = await http.get("/health")
        if response.json()["checks"]["workers"].get("count", 0) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("second worker never sent a heartbeat")


