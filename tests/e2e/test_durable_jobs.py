"""Durable jobs end to end: jobs, their results and their events live in Redis, so an API process that was
not running when they were submitted (a restart) reads, lists and replays them; `GET /api/v1/jobs` lists
what the worker finished, with its status filter, and a job submission repeated with its Idempotency-Key
across that restart is still the same job."""

import asyncio
import time

import httpx

from tests.e2e.conftest import Gateway

BODY = {"model": "fake-openai", "messages": [{"role": "user", "content": "keep me"}]}


async def wait_until_ended(http: httpx.AsyncClient, headers: dict[str, str], job_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        job: dict[str, object] = (await http.get(f"/api/v1/jobs/{job_id}", headers=headers)).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end")


async def test_durable_jobs_survive_an_api_restart(gateway: Gateway, http: httpx.AsyncClient, make_tenant) -> None:
    _, key = await make_tenant()
    headers = {"X-API-Key": key}
    submitted = await http.post("/api/v1/jobs", json=BODY, headers={**headers, "Idempotency-Key": "durable"})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    failing = (await http.post("/api/v1/jobs", json={**BODY, "model": "reject-400"}, headers=headers)).json()["id"]
    finished = await wait_until_ended(http, headers, job_id)
    await wait_until_ended(http, headers, failing)

    process, url = gateway.start_api("api-restarted")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as fresh:
            assert (await fresh.get(f"/api/v1/jobs/{job_id}", headers=headers)).json() == finished
            listed = (await fresh.get("/api/v1/jobs", headers=headers)).json()
            assert [job["id"] for job in listed["data"]] == [failing, job_id]
            assert listed["data"][1] == finished and listed["has_more"] is False
            succeeded = (await fresh.get("/api/v1/jobs", params={"status": "succeeded"}, headers=headers)).json()
            assert [job["id"] for job in succeeded["data"]] == [job_id]
            again = await fresh.post("/api/v1/jobs", json=BODY, headers={**headers, "Idempotency-Key": "durable"})
            assert again.status_code == 202
            assert again.json() == {"id": job_id, "object": "job", "status": "succeeded"}
            async with fresh.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=headers) as events:
                kinds = [line[6:].strip() async for line in events.aiter_lines() if line.startswith("event:")]
            assert kinds[0] == "start" and kinds[-1] == "done" and "token" in kinds
    finally:
        process.stop()


async def test_durable_jobs_listing_is_per_tenant(http: httpx.AsyncClient, make_tenant) -> None:
    _, alice = await make_tenant()
    _, bob = await make_tenant()
    mine = (await http.post("/api/v1/jobs", json=BODY, headers={"X-API-Key": alice})).json()["id"]
    assert [job["id"] for job in (await http.get("/api/v1/jobs", headers={"X-API-Key": alice})).json()["data"]] \
        == [mine]
    assert (await http.get("/api/v1/jobs", headers={"X-API-Key": bob})).json() == {
        "object": "list", "data": [], "has_more": False, "next_cursor": None}
