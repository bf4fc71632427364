"""A worker stopped with SIGTERM mid-job loses nothing: a job shorter than its drain (WORKER_DRAIN_S) finishes
on it before it exits; a longer one is handed back at the end of the drain and another worker runs it at
once (not a lease later: the hand-back resets its queue score). Each job is billed once."""

import signal
import time

import pytest

from tests.e2e.faults.conftest import StackFactory, finished, new_tenant, poll_job, submit, wait_usage_rows, worker_id

JOB_S = 3.0  # the `slow` route's upstream holds each answer this long


@pytest.mark.timeout(60)
async def test_worker_sigterm_finishes_job_within_drain(stack: StackFactory) -> None:
    gw = await stack(workers=1, env={"WORKER_DRAIN_S": "15"})
    worker = gw.named("worker-1")
    first = worker_id(worker)
    _, key = await new_tenant(gw)
    async with gw.client() as http:
        job_id = await submit(http, key, "slow")
        await poll_job(http, key, job_id, until=lambda job: job["status"] == "running", timeout_s=10)
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.wait_exit(timeout_s=JOB_S + 10) == 0, worker.log_tail()
        job = await poll_job(http, key, job_id, until=finished, timeout_s=5)
    assert job["status"] == "succeeded" and job["worker"] == first and job["attempt"] == 1
    rows = await wait_usage_rows(job_id)
    assert len(rows) == 1 and rows[0]["status"] == "succeeded"


@pytest.mark.timeout(60)
async def test_worker_sigterm_hands_back_job_longer_than_drain(stack: StackFactory) -> None:
    gw = await stack(workers=1, env={"WORKER_DRAIN_S": "1"})
    worker = gw.named("worker-1")
    first = worker_id(worker)
    _, key = await new_tenant(gw)
    async with gw.client() as http:
        job_id = await submit(http, key, "slow")
        await poll_job(http, key, job_id, until=lambda job: job["worker"] == first, timeout_s=10)
        worker.proc.send_signal(signal.SIGTERM)
        second_process = gw.start_worker("worker-2")  # only after the stop: the job must wait for it
        assert worker.wait_exit(timeout_s=10) == 0, worker.log_tail()
        second = worker_id(second_process)
        ready_at = time.monotonic()
        job = await poll_job(http, key, job_id, until=finished, timeout_s=JOB_S + 10)
        taken_s = time.monotonic() - ready_at
    assert job["status"] == "succeeded" and job["worker"] == second and job["attempt"] == 2
    assert taken_s < JOB_S + 2, f"the handed-back job took {taken_s:.1f}s"
    print(f"handed-back job finished by {second} {taken_s:.1f}s after it was ready")
    rows = await wait_usage_rows(job_id)
    assert len(rows) == 1 and rows[0]["status"] == "succeeded"
