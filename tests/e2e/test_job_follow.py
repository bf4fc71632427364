"""Following a job for longer than REQUEST_TIMEOUT_S, against the real API and worker: a second API process
with REQUEST_TIMEOUT_S=1 follows a 3-second job submitted through the first. Each stream ends with a
`reconnect` event; resuming from its id loses and repeats nothing, and the job runs to its end."""

import asyncio
import json
import time

import httpx

Event = tuple[str | None, str, dict[str, object]]
TERMINAL = ("done", "error", "cancelled")


async def _follow_once(http: httpx.AsyncClient, key: str, job_id: str, last_event_id: str | None) -> list[Event]:
    headers = {"X-API-Key": key, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    events: list[Event] = []
    event_id, kind = None, "message"
    async with http.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                events.append((event_id, kind, json.loads(line[5:].strip())))
                event_id, kind = None, "message"
    return events


async def test_job_follower_past_request_timeout_reconnects_and_job_finishes(
        http: httpx.AsyncClient, tenant_key: str, short_api: str) -> None:
    submitted = await http.post("/api/v1/jobs", headers={"X-API-Key": tenant_key}, json={
        "model": "slow-3000", "messages": [{"role": "user", "content": "follow me past the deadline"}]})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    streams: list[list[Event]] = []
    last_id: str | None = None
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=short_api, timeout=30) as follower:
        while time.monotonic() - started < 20 and not (streams and streams[-1][-1][1] in TERMINAL):
            streams.append(await _follow_once(follower, tenant_key, job_id, last_id))
            last_id = streams[-1][-1][0]
            await asyncio.sleep(0.05)
    job = (await http.get(f"/api/v1/jobs/{job_id}", headers={"X-API-Key": tenant_key})).json()
    ends = [stream[-1][1] for stream in streams]
    assert ends[0] == "reconnect" and ends[-1] == "done", ends
    assert all(end == "reconnect" for end in ends[:-1]), ends
    events = [event for stream in streams for event in stream if event[1] != "reconnect"]
    ids = [event[0] for event in events]
    assert len(ids) == len(set(ids)) and ids == sorted(ids, key=lambda i: tuple(map(int, str(i).split("-"))))
    text = "".join(str(data["text"]) for _, kind, data in events if kind == "token")
    assert job["status"] == "succeeded", job
    assert text == job["result"]["choices"][0]["message"]["content"]
    print(f"{len(streams)} streams ({ends}) over {time.monotonic() - started:.1f}s; job {job['status']}")
