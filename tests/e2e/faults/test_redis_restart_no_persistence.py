"""Redis restarted WITHOUT persistence (no append-only file, no snapshot), on a private redis-server: it comes
back empty, so the usage stream's consumer group is gone. Billing must resume by itself (the usage writers
create the group again), every request answered after the restart is billed once, and of the requests
answered before it only those whose usage record was still in the Redis stream at that moment may be
missing (docs/RELIABILITY.md says what such a restart loses)."""

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio

from shared.keys import USAGE_STREAM
from tests.e2e.faults.conftest import StackFactory, new_tenant, poll_job, submit, usage_rows, wait_usage_rows
from tests.support.processes import RedisServer

REQUESTS = 12
RECOVERY_BOUND_S = 20.0


@pytest.fixture
def volatile_redis(tmp_path: Path) -> Iterator[RedisServer]:
    data_dir = tmp_path / "redis"
    data_dir.mkdir()
    server = RedisServer(data_dir, appendonly=False)
    server.start()
    yield server
    server.stop()


async def _chat(http: httpx.AsyncClient, key: str, label: str, model: str = "paced") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": f"volatile redis {label}"}]}
    return await http.post("/v1/chat/completions", json=body, headers={"X-API-Key": key})


async def _unwritten(url: str) -> set[str]:
    """Job ids whose usage records are in the stream, not yet written to PostgreSQL."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        entries = await client.xrange(USAGE_STREAM)
    finally:
        await client.aclose()
    return {str(json.loads(fields[b"row"])["request_id"]) for _, fields in entries}


async def _answered_after_restart(http: httpx.AsyncClient, key: str) -> tuple[list[str], float]:
    """Job ids of REQUESTS completions answered once Redis is back, and when the first one was."""
    started, first_ok, job_ids = time.monotonic(), None, []
    while len(job_ids) < REQUESTS and time.monotonic() - started < RECOVERY_BOUND_S:
        response = await _chat(http, key, f"after {len(job_ids)} {time.monotonic()}")
        if response.status_code == 200:
            first_ok = first_ok or time.monotonic() - started
            job_ids.append(response.headers["x-gateway-job-id"])
        else:
            await asyncio.sleep(0.2)
    assert len(job_ids) == REQUESTS, f"only {len(job_ids)} completions within {RECOVERY_BOUND_S}s of the restart"
    return job_ids, float(first_ok or 0)


async def _all_billed(job_ids: list[str], since: float) -> float:
    """Seconds from `since` until every job has its usage row in PostgreSQL."""
    waiting = set(job_ids)
    while waiting and time.monotonic() - since < RECOVERY_BOUND_S * 2:
        waiting = {job_id for job_id in waiting if not await usage_rows(job_id)}
        await asyncio.sleep(0.05)
    assert not waiting, f"{len(waiting)} requests answered after the restart were never billed"
    return time.monotonic() - since


@pytest.mark.timeout(120)
async def test_redis_restart_without_persistence_billing_resumes(volatile_redis: RedisServer,
                                                                 stack: StackFactory) -> None:
    gw = await stack(workers=2, env={"REDIS_URL": volatile_redis.url})
    _, key = await new_tenant(gw)
    async with gw.client(timeout_s=20) as http:
        before = await asyncio.gather(*(_chat(http, key, f"before {n}") for n in range(REQUESTS)))
        assert all(response.status_code == 200 for response in before), [r.text for r in before]
        answered_before = [response.headers["x-gateway-job-id"] for response in before]
        in_flight_job = await submit(http, key, "slow", "running through the restart")
        waiting = asyncio.create_task(_chat(http, key, "waiting through the restart", model="slow"))
        await poll_job(http, key, in_flight_job, until=lambda job: job["status"] == "running", timeout_s=10)
        in_stream = await _unwritten(volatile_redis.url)  # no new answers now: this can only shrink
        volatile_redis.stop()
        volatile_redis.start()  # empty: no append-only file, no snapshot
        restarted = time.monotonic()
        answered_after, first_ok_s = await _answered_after_restart(http, key)
        billed_s = await _all_billed(answered_after, restarted)
        for job_id in answered_after:  # exactly once
            await wait_usage_rows(job_id, timeout_s=1, redis_url=volatile_redis.url)
        lost_answer = await asyncio.wait_for(waiting, timeout=RECOVERY_BOUND_S)
        lost_job = await http.get(f"/api/v1/jobs/{in_flight_job}", headers={"X-API-Key": key})
        await asyncio.sleep(1.5)  # writers report their flushes at most once a second
        health = await http.get("/health")
    missing_before = [job_id for job_id in answered_before if not await usage_rows(job_id)]
    print(f"restart -> first answer {first_ok_s:.1f}s, all {REQUESTS} later answers billed {billed_s:.1f}s; "
          f"of {REQUESTS} answered before: {len(in_stream)} unwritten at the restart, {len(missing_before)} unbilled; "
          f"in flight: the waiting completion got {lost_answer.status_code} {lost_answer.text[:120]}, the submitted "
          f"job {lost_job.status_code}, usage rows {len(await usage_rows(in_flight_job))}")
    # What a restart without persistence loses, as docs/RELIABILITY.md says: the jobs in flight (the provider
    # call made, nobody answered, nothing billed) ...
    assert lost_answer.status_code >= 500 and lost_job.status_code == 404
    assert await usage_rows(in_flight_job) == []
    # ... and, of the requests answered before it, only those whose usage record was still in the stream.
    assert set(missing_before) <= in_stream, "an answered request whose record had reached no stream is unbilled"
    assert all(process.alive() for process in gw.processes)
    assert health.json()["checks"]["usage"]["ok"] is True, health.text
    assert any("consumer group is gone" in process.log_path.read_text() for process in gw.processes
               if process.name.startswith("worker")), "no writer said it recreated the group"
