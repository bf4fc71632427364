"""Fair scheduling and backpressure with real processes: an API and a 4-slot worker on their own queue (the
session's tenants and database), so a flood of a few dozen jobs saturates the worker. A flooding tenant does
not starve another's interactive job; past QUEUE_MAX_DEPTH batch submissions get 503 `queue_full` with a
Retry-After (in each route's error shape) while interactive ones are still admitted."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.conftest import Gateway
from tests.support.processes import Process, free_port, wait_http

SLOTS = 4
MAX_DEPTH = 30
FLOOD = {"model": "slow-300", "messages": [{"role": "user", "content": "flood"}]}
HELD = {"model": "slow-3000", "messages": [{"role": "user", "content": "held"}]}


@dataclass(frozen=True)
class SmallStack:
    url: str
    worker: Process

    def worker_report(self) -> str:
        """What the worker was doing, for a failure message: whether it still runs, and its last log lines."""
        state = "running" if self.worker.proc.poll() is None else f"exited with {self.worker.proc.returncode}"
        return f"worker {state}; its log ends:\n{self.worker.log_tail()}"


@pytest.fixture(scope="module")
def small_stack(gateway: Gateway) -> Iterator[SmallStack]:
    env = {**gateway.env, "QUEUE_NAME": f"gw:test-fair:{uuid.uuid4().hex[:8]}", "WORKER_MAX_JOBS": str(SLOTS),
           "QUEUE_MAX_DEPTH": str(MAX_DEPTH), "WORKER_METRICS_PORT": "0", "WORKER_INTERACTIVE_SLOTS": "0"}
    port = free_port()
    api = Process("fair-api", ["serve", "--port", str(port)], env, gateway.log_dir)
    worker = Process("fair-worker", ["worker"], env, gateway.log_dir)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", api)
        worker.wait_log(r"worker worker-[0-9a-f]{12} started")  # the flood must meet a polling worker
        yield SmallStack(f"http://127.0.0.1:{port}", worker)
    finally:
        for process in (worker, api):
            process.stop()


@pytest.fixture
async def client(small_stack: SmallStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=small_stack.url, timeout=30) as http:
        yield http


async def _submit(http: httpx.AsyncClient, key: str, body: dict[str, object], priority: str | None = None
                  ) -> httpx.Response:
    headers = {"X-API-Key": key, **({"X-Priority": priority} if priority else {})}
    return await http.post("/api/v1/jobs", json=body, headers=headers)


async def _job(http: httpx.AsyncClient, key: str, job_id: str) -> dict[str, object]:
    return dict((await http.get(f"/api/v1/jobs/{job_id}", headers={"X-API-Key": key})).json())


async def _wait_started(http: httpx.AsyncClient, key: str, job_id: str, stack: SmallStack,
                        timeout_s: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    job: dict[str, object] = {}
    while time.monotonic() < deadline:
        job = await _job(http, key, job_id)
        if job.get("started_at") is not None:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never started ({job}); {stack.worker_report()}")


async def test_fair_queue_flooding_tenant_does_not_starve_another(
        client: httpx.AsyncClient, small_stack: SmallStack, make_tenant: Callable[..., object]) -> None:
    _, flooder = await make_tenant(rate_limit=0)  # type: ignore[misc]
    _, other = await make_tenant(rate_limit=0)  # type: ignore[misc]
    flood = await asyncio.gather(*(_submit(client, flooder, FLOOD) for _ in range(MAX_DEPTH)))
    assert all(r.status_code == 202 for r in flood), [r.text for r in flood if r.status_code != 202]
    flood_ids = [str(r.json()["id"]) for r in flood]
    try:
        await asyncio.sleep(0.3)  # the worker is saturated by the flood
        waits = []
        for _ in range(3):
            response = await _submit(client, other, {**FLOOD, "model": "fake-openai"}, "interactive")
            assert response.status_code == 202, response.text
            job = await _wait_started(client, other, str(response.json()["id"]), small_stack)
            waits.append(float(job["started_at"]) - float(job["created_at"]))  # type: ignore[arg-type]
            states = await asyncio.gather(*(_job(client, flooder, job_id) for job_id in flood_ids))
            still_queued = sum(1 for state in states if state["status"] == "queued")
            assert still_queued >= 5, f"the flood had drained ({still_queued} queued): the test proves nothing"
        # FIFO would have made each wait for the whole flood (~3 s); fair, it waits for one freed slot.
        assert max(waits) < 1.0, waits
    finally:
        for job_id in flood_ids:
            await client.post(f"/api/v1/jobs/{job_id}/cancel", headers={"X-API-Key": flooder})


async def test_backpressure_refuses_batch_with_retry_after_and_admits_interactive(
        client: httpx.AsyncClient, make_tenant: Callable[..., object]) -> None:
    _, key = await make_tenant(rate_limit=0)  # type: ignore[misc]
    accepted: list[str] = []
    refused: httpx.Response | None = None
    for _ in range(MAX_DEPTH + SLOTS + 10):
        response = await _submit(client, key, HELD)
        if response.status_code == 503:
            refused = response
            break
        assert response.status_code == 202, response.text
        accepted.append(str(response.json()["id"]))
    try:
        assert refused is not None, "no batch submission was refused"
        assert refused.json()["error"]["code"] == "queue_full"
        assert int(refused.headers["retry-after"]) >= 1
        assert len(accepted) >= MAX_DEPTH
        interactive = await _submit(client, key, HELD, "interactive")
        assert interactive.status_code == 202, interactive.text  # shed only above 2 x QUEUE_MAX_DEPTH
        accepted.append(str(interactive.json()["id"]))
        messages = await client.post("/v1/messages", headers={"X-API-Key": key, "X-Priority": "batch"}, json={
            "model": "fake-anthropic", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
        assert messages.status_code == 503
        assert messages.json()["type"] == "error" and messages.json()["error"]["code"] == "queue_full"
        assert int(messages.headers["retry-after"]) >= 1
    finally:
        for job_id in accepted:  # cancelled queued jobs leave the fair queue at once
            await client.post(f"/api/v1/jobs/{job_id}/cancel", headers={"X-API-Key": key})
    again = await _submit(client, key, {**HELD, "model": "fake-openai"})
    assert again.status_code == 202, again.text


async def test_priority_header_is_validated(client: httpx.AsyncClient, make_tenant: Callable[..., object]) -> None:
    _, key = await make_tenant(rate_limit=0)  # type: ignore[misc]
    job = await _submit(client, key, {**FLOOD, "model": "fake-openai"}, "urgent")
    assert job.status_code == 400 and "X-Priority" in job.json()["error"]["message"]
    chat = await client.post("/v1/messages", headers={"X-API-Key": key, "X-Priority": "urgent"}, json={
        "model": "fake-anthropic", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 400 and chat.json()["type"] == "error"
