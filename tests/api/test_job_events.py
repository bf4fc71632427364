"""Following a job's events (GET /api/v1/jobs/{id}/events) with a short REQUEST_TIMEOUT_S and no worker: the
follower's deadline ends the stream with a `reconnect` event to resume from and never cancels the job;
resuming after the last event of an ended job is 204; a malformed, oversized or unknown `Last-Event-ID` or
`after` is a 400 that names it, not an error event or a stream that hangs."""

import json
import time

import httpx
import pytest
import redis.asyncio

from shared.keys import job_key
from shared.streams import EventKind, append_event
from tests.api.conftest import app_client, make_tenant_key

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "follow me"}]}
Events = list[tuple[str | None, str, dict[str, object]]]


async def _submit(http: httpx.AsyncClient, key: str) -> str:
    response = await http.post("/api/v1/jobs", json=BODY, headers={"X-API-Key": key})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def _follow(http: httpx.AsyncClient, key: str, job_id: str, **headers: str) -> tuple[int, Events]:
    """The status and the (id, event, data) of every event until the server ends the stream."""
    events: Events = []
    sent = {"X-API-Key": key, **{name.replace("_", "-"): value for name, value in headers.items()}}
    async with http.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=sent) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, [(None, "body", response.json())] if response.content else []
        event_id, kind = None, "message"
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                events.append((event_id, kind, json.loads(line[5:].strip())))
                event_id, kind = None, "message"
    return 200, events


@pytest.fixture
async def key(sqlite_url: str) -> str:
    return await make_tenant_key(sqlite_url)


async def test_job_events_follower_deadline_ends_with_reconnect_and_job_runs_on(
        clean_redis: str, sqlite_url: str, key: str, raw: redis.asyncio.Redis) -> None:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, openai_api_key="sk",
                          request_timeout_s=1) as http:
        job_id = await _submit(http, key)
        started = time.monotonic()
        status, events = await _follow(http, key, job_id)
        elapsed = time.monotonic() - started
        job = (await http.get(f"/api/v1/jobs/{job_id}", headers={"X-API-Key": key})).json()
    assert status == 200 and elapsed < 5
    assert [kind for _, kind, _ in events] == ["reconnect"], events
    marker_id, _, data = events[0]
    assert marker_id == "0-0" and data["last_event_id"] == "0-0" and data["status"] == "queued"
    assert job["status"] == "queued"  # the follower's deadline never cancels a submitted job
    assert await raw.hget(job_key(job_id), "cancel_requested") is None


async def test_job_events_resume_from_reconnect_marker_gets_the_rest(
        clean_redis: str, sqlite_url: str, key: str, raw: redis.asyncio.Redis) -> None:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, openai_api_key="sk",
                          request_timeout_s=1) as http:
        job_id = await _submit(http, key)
        await append_event(raw, job_id, EventKind.START, {"attempt": 1}, maxlen=100, ttl_s=600)
        _, first = await _follow(http, key, job_id)
        await append_event(raw, job_id, EventKind.TOKEN, {"text": "hi"}, maxlen=100, ttl_s=600)
        await append_event(raw, job_id, EventKind.DONE, {"completion": {}}, maxlen=100, ttl_s=600)
        _, rest = await _follow(http, key, job_id, Last_Event_ID=str(first[-1][0]))
    assert [kind for _, kind, _ in first] == ["start", "reconnect"]
    assert first[-1][0] == first[0][0]  # the marker repeats the last event's id: resuming loses nothing
    assert [kind for _, kind, _ in rest] == ["token", "done"]


async def test_job_events_after_the_terminal_event_is_204(clean_redis: str, sqlite_url: str, key: str) -> None:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, openai_api_key="sk",
                          request_timeout_s=1) as http:
        job_id = await _submit(http, key)
        assert (await http.post(f"/api/v1/jobs/{job_id}/cancel", headers={"X-API-Key": key})).status_code == 200
        _, events = await _follow(http, key, job_id)
        started = time.monotonic()
        status, after = await _follow(http, key, job_id, Last_Event_ID=str(events[-1][0]))
        elapsed = time.monotonic() - started
    assert [kind for _, kind, _ in events] == ["cancelled"]
    # 204 is how SSE tells an EventSource to stop reconnecting: there is nothing after the end.
    assert (status, after) == (204, []) and elapsed < 0.9


BAD_IDS = [
    "18446744073709551616-0",  # 2^64: past what a stream id can hold
    "1-18446744073709551616",
    "99999999999999999999999999999999-0",
    "5" * 4000 + "-0",
    "\u0661\u0662-\u0663",  # Arabic-Indic digits: str.isdigit() says yes, Redis says no
    "12",
    "-1-0",
    "1-0-0",
    " 1-0",
]


@pytest.mark.parametrize("value", BAD_IDS)
async def test_job_events_bad_last_event_id_is_400_naming_the_header(
        clean_redis: str, sqlite_url: str, key: str, value: str) -> None:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, openai_api_key="sk",
                          request_timeout_s=1) as http:
        job_id = await _submit(http, key)
        response = await http.get(f"/api/v1/jobs/{job_id}/events",
                                  headers={"X-API-Key": key, "Last-Event-ID": value.encode()})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and "Last-Event-ID" in error["message"]


@pytest.mark.parametrize("value", BAD_IDS)
async def test_job_events_bad_after_is_400_naming_the_parameter(
        clean_redis: str, sqlite_url: str, key: str, value: str) -> None:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, openai_api_key="sk",
                          request_timeout_s=1) as http:
        job_id = await _submit(http, key)
        response = await http.get(f"/api/v1/jobs/{job_id}/events", params={"after": value},
                                  headers={"X-API-Key": key})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    # Named by this check ('after') or by the schema's pattern (query.after).
    assert error["code"] == "invalid_request" and ("'after'" in error["message"] or "query.after" in error["message"])


@pytest.mark.parametrize("where", ["header", "query"])
async def test_job_events_id_past_the_stream_end_is_400_not_a_hang(
        clean_redis: str, sqlite_url: str, key: str, raw: redis.asyncio.Redis, where: str) -> None:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, openai_api_key="sk",
                          request_timeout_s=1) as http:
        job_id = await _submit(http, key)
        await append_event(raw, job_id, EventKind.START, {"attempt": 1}, maxlen=100, ttl_s=600)
        future = f"{int(time.time() * 1000) + 10**9}-0"  # a valid id that this stream never had
        started = time.monotonic()
        response = await http.get(f"/api/v1/jobs/{job_id}/events", headers={
            "X-API-Key": key, **({"Last-Event-ID": future} if where == "header" else {})},
            params={"after": future} if where == "query" else None)
        elapsed = time.monotonic() - started
        job = (await http.get(f"/api/v1/jobs/{job_id}", headers={"X-API-Key": key})).json()
    assert response.status_code == 400 and elapsed < 0.9, response.text
    assert ("Last-Event-ID" if where == "header" else "'after'") in response.json()["error"]["message"]
    assert job["status"] == "queued"
