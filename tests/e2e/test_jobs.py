"""Submit-and-poll jobs: 202 at once, polling to the result, an event stream that replays and resumes from
Last-Event-ID without losing or repeating a token, cancellation, and tenant isolation."""

import asyncio
import json
import time

import httpx

BODY = {"model": "fake-openai", "messages": [{"role": "user", "content": "job please"}]}


async def _submit(http: httpx.AsyncClient, key: str, body: dict[str, object] = BODY) -> str:
    response = await http.post("/api/v1/jobs", json=body, headers={"X-API-Key": key})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    return str(response.json()["id"])


async def _poll_until_done(http: httpx.AsyncClient, key: str, job_id: str, timeout_s: float = 20) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = (await http.get(f"/api/v1/jobs/{job_id}", headers={"X-API-Key": key})).json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return dict(body)
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


async def _read_events(http: httpx.AsyncClient, key: str, job_id: str, *, last_event_id: str | None = None,
                       stop_after: int | None = None) -> list[tuple[str, str, dict]]:
    headers = {"X-API-Key": key}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    events: list[tuple[str, str, dict]] = []
    event_id, kind = "", ""
    async with http.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                events.append((event_id, kind, json.loads(line[5:].strip())))
                if stop_after is not None and len(events) >= stop_after:
                    break  # drop the connection mid-stream, as a flaky client would
    return events


async def test_job_submit_answers_202_and_polling_reaches_succeeded(http: httpx.AsyncClient, tenant_key: str) -> None:
    job_id = await _submit(http, tenant_key)
    job = await _poll_until_done(http, tenant_key, job_id)
    assert job["status"] == "succeeded"
    assert job["result"]["choices"][0]["message"]["content"].startswith("Fake reply to: job please")
    assert job["provider"] == "openai" and job["served_model"] == "fake-model"
    assert job["error"] is None


async def test_job_events_replay_from_start_after_completion(http: httpx.AsyncClient, tenant_key: str) -> None:
    job_id = await _submit(http, tenant_key)
    job = await _poll_until_done(http, tenant_key, job_id)
    events = await _read_events(http, tenant_key, job_id)
    kinds = [kind for _, kind, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    text = "".join(data["text"] for _, kind, data in events if kind == "token")
    assert text == job["result"]["choices"][0]["message"]["content"]


async def test_job_events_resume_from_last_event_id_without_loss_or_repeat(
    http: httpx.AsyncClient, tenant_key: str
) -> None:
    job_id = await _submit(http, tenant_key)
    first = await _read_events(http, tenant_key, job_id, stop_after=3)
    rest = await _read_events(http, tenant_key, job_id, last_event_id=first[-1][0])
    ids = [event_id for event_id, _, _ in first + rest]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    text = "".join(data["text"] for _, kind, data in first + rest if kind == "token")
    job = await _poll_until_done(http, tenant_key, job_id)
    assert text == job["result"]["choices"][0]["message"]["content"]
    assert rest[-1][1] == "done"


async def test_job_is_invisible_to_other_tenants(http: httpx.AsyncClient, make_tenant, tenant_key: str) -> None:
    job_id = await _submit(http, tenant_key)
    _, other_key = await make_tenant()
    for path in (f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/events"):
        response = await http.get(path, headers={"X-API-Key": other_key})
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found_error"
    response = await http.post(f"/api/v1/jobs/{job_id}/cancel", headers={"X-API-Key": other_key})
    assert response.status_code == 404


async def test_job_cancel_stops_a_queued_or_running_job(http: httpx.AsyncClient, tenant_key: str) -> None:
    job_id = await _submit(http, tenant_key, {**BODY, "model": "slow-300"})
    response = await http.post(f"/api/v1/jobs/{job_id}/cancel", headers={"X-API-Key": tenant_key})
    assert response.status_code == 200
    job = await _poll_until_done(http, tenant_key, job_id)
    assert job["status"] == "cancelled"
    events = await _read_events(http, tenant_key, job_id)
    assert events[-1][1] == "cancelled"
    again = await http.post(f"/api/v1/jobs/{job_id}/cancel", headers={"X-API-Key": tenant_key})
    assert again.status_code == 409


async def test_job_failure_is_reported_with_error(http: httpx.AsyncClient, tenant_key: str) -> None:
    job_id = await _submit(http, tenant_key, {**BODY, "model": "reject-400"})
    job = await _poll_until_done(http, tenant_key, job_id)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "invalid_request_error"
    events = await _read_events(http, tenant_key, job_id)
    assert events[-1][1] == "error"


async def test_job_unknown_id_is_404(http: httpx.AsyncClient, tenant_key: str) -> None:
    response = await http.get("/api/v1/jobs/job_doesnotexist", headers={"X-API-Key": tenant_key})
    assert response.status_code == 404


async def test_job_events_reject_malformed_last_event_id(http: httpx.AsyncClient, tenant_key: str) -> None:
    job_id = await _submit(http, tenant_key)
    response = await http.get(f"/api/v1/jobs/{job_id}/events",
                              headers={"X-API-Key": tenant_key, "Last-Event-ID": "garbage"})
    assert response.status_code == 400


async def test_attached_stream_disconnect_cancels_its_job(http: httpx.AsyncClient, tenant_key: str) -> None:
    body = {"model": "slow-300", "messages": [{"role": "user", "content": "leaving early"}], "stream": True}
    async with http.stream("POST", "/v1/chat/completions", json=body,
                           headers={"X-API-Key": tenant_key}) as response:
        assert response.status_code == 200
        job_id = response.headers["x-gateway-job-id"]
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                break  # the client goes away after the first chunk
    job = await _poll_until_done(http, tenant_key, job_id)
    assert job["status"] == "cancelled"


async def test_submitted_job_survives_event_reader_disconnect(http: httpx.AsyncClient, tenant_key: str) -> None:
    job_id = await _submit(http, tenant_key, {**BODY, "model": "slow-300"})
    first = await _read_events(http, tenant_key, job_id, stop_after=1)
    assert first[0][1] == "start"
    job = await _poll_until_done(http, tenant_key, job_id)
    assert job["status"] == "succeeded"
