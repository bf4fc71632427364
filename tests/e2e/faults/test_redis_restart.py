"""Redis restarted during traffic, on a private redis-server (never the machine's shared one): while it is down
the API answers 503 with `Retry-After` and no process dies; once it is back (its append-only file keeps the
queue, jobs and tenants' cached state) service resumes by itself, and a job submitted before the outage is
still answered."""

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.faults.conftest import StackFactory, finished, new_tenant, poll_job, submit
from tests.support.processes import RedisServer

RECOVERY_BOUND_S = 15.0


@pytest.fixture
def private_redis(tmp_path: Path):
    data_dir = tmp_path / "redis"
    data_dir.mkdir()
    server = RedisServer(data_dir)
    server.start()
    yield server
    server.stop()


async def _chat(http: httpx.AsyncClient, key: str, n: int) -> httpx.Response:
    body = {"model": "paced", "messages": [{"role": "user", "content": f"redis restart {n}"}]}
    return await http.post("/v1/chat/completions", json=body, headers={"X-API-Key": key})


@pytest.mark.timeout(90)
async def test_redis_restart_answers_503_then_resumes(private_redis: RedisServer, stack: StackFactory) -> None:
    gw = await stack(workers=1, env={"REDIS_URL": private_redis.url})
    _, key = await new_tenant(gw)
    async with gw.client(timeout_s=20) as http:
        assert (await _chat(http, key, 0)).status_code == 200
        private_redis.stop()
        down = await asyncio.gather(*(_chat(http, key, n) for n in range(1, 6)))
        submitted = await http.post("/api/v1/jobs", json={"model": "paced", "messages": [
            {"role": "user", "content": "while down"}]}, headers={"X-API-Key": key})
        health = await http.get("/health")
        await asyncio.sleep(2)  # workers and API keep failing to reach Redis for a while
        alive = {process.name: process.alive() for process in gw.processes}
        private_redis.start()
        restarted_at = time.monotonic()
        recovered = None
        while time.monotonic() - restarted_at < RECOVERY_BOUND_S:
            response = await _chat(http, key, 99)
            if response.status_code == 200:
                recovered = time.monotonic() - restarted_at
                break
            await asyncio.sleep(0.2)
        job_id = await submit(http, key, "paced", "after the restart")
        job = await poll_job(http, key, job_id, until=finished, timeout_s=10)
    for response in [*down, submitted]:
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["error"]["type"] == "service_unavailable"
    assert health.status_code == 503
    assert all(alive.values()), f"a process died while Redis was down: {alive}"
    assert all(process.alive() for process in gw.processes), "a process died after Redis came back"
    assert recovered is not None, f"no completion succeeded within {RECOVERY_BOUND_S}s of Redis returning"
    print(f"Redis back: first completion succeeded after {recovered:.1f}s")
    assert job["status"] == "succeeded"
