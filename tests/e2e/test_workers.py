"""Workers are separate processes: jobs are served by a worker process, and a second worker takes a share of
a burst."""

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable

import httpx

from tests.e2e.conftest import Gateway
from tests.e2e.test_jobs import _poll_until_done, _submit
from tests.support.processes import Process, free_port, wait_http


async def test_worker_process_serves_jobs_not_the_api(http: httpx.AsyncClient, tenant_key: str) -> None:
    job_id = await _submit(http, tenant_key)
    job = await _poll_until_done(http, tenant_key, job_id)
    assert job["status"] == "succeeded"
    assert job["worker"].startswith("worker-")


async def test_two_workers_share_a_burst_of_jobs(
        gateway: Gateway, make_tenant: Callable[..., object]) -> None:
    """Two 4-slot workers on a queue of their own: a burst of 24 slow jobs is more than one worker can hold, so
    the jobs left queued go to the other. (With the session worker's 200 slots, whichever worker's doorbell
    rang first could claim a whole burst, so that would measure a race, not sharing.)"""
    _, key = await make_tenant(rate_limit=0)  # type: ignore[misc]
    env = {**gateway.env, "QUEUE_NAME": f"gw:test-workers:{uuid.uuid4().hex[:8]}", "WORKER_MAX_JOBS": "4",
           "WORKER_INTERACTIVE_SLOTS": "0"}
    port = free_port()
    api = Process("workers-api", ["serve", "--port", str(port)], env, gateway.log_dir)
    first = Process("workers-1", ["worker"], env, gateway.log_dir)
    second = Process("workers-2", ["worker"], env, gateway.log_dir)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", api)
        for worker in (first, second):  # the burst must meet two polling workers
            worker.wait_log(r"worker worker-[0-9a-f]{12} started")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            body: dict[str, object] = {"model": "slow-300", "messages": [{"role": "user", "content": "burst"}]}
            job_ids = [await _submit(http, key, body) for _ in range(24)]
            jobs = await asyncio.gather(*(_poll_until_done(http, key, j, timeout_s=60) for j in job_ids))
    finally:
        for process in (second, first, api):
            process.stop()
    assert all(job["status"] == "succeeded" for job in jobs), jobs
    served = Counter(str(job["worker"]) for job in jobs)
    assert len(served) == 2, f"one worker took the whole burst: {served}"
