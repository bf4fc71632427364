"""The API restarted while jobs run: submitted jobs live in Redis and run on the workers, so they complete
while no API is up, and a new API process answers their status, results and event streams."""

import asyncio

import pytest

from tests.e2e.faults.conftest import StackFactory, finished, new_tenant, poll_job, submit, wait_usage_rows
from tests.e2e.test_jobs import _read_events
from tests.support.processes import wait_http

JOBS = 3


@pytest.mark.timeout(60)
async def test_api_restart_jobs_complete_and_stay_pollable(stack: StackFactory) -> None:
    gw = await stack(workers=1)
    _, key = await new_tenant(gw)
    async with gw.client() as http:
        job_ids = [await submit(http, key, "slow", f"restart {n}") for n in range(JOBS)]
        await poll_job(http, key, job_ids[-1], until=lambda job: job["status"] == "running", timeout_s=10)
    old_api = gw.api
    assert old_api is not None
    old_api.kill()  # SIGKILL: no graceful shutdown at all
    gw.start_api("api-2")
    wait_http(f"{gw.base_url}/health", gw.named("api-2"))
    async with gw.client() as http:
        jobs = await asyncio.gather(*(poll_job(http, key, j, until=finished, timeout_s=15) for j in job_ids))
        events = await _read_events(http, key, job_ids[0])
    assert [job["status"] for job in jobs] == ["succeeded"] * JOBS
    assert all(job["result"]["choices"][0]["message"]["content"] for job in jobs)
    assert events[0][1] == "start" and events[-1][1] == "done"
    for job_id in job_ids:
        assert len(await wait_usage_rows(job_id)) == 1
