"""Dead-lettered webhooks through the admin API, in-process against real Redis (database 3): listed newest
first and paged, redelivered as first attempts due now (and gone from the dead-letter stream), reported
`not_found` when already redelivered (also under a concurrent double replay), bad input refused with 400, and
the admin key required."""

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio

from shared.keys import WEBHOOK_DEAD_STREAM, WEBHOOK_RETRY_KEY
from tests.api.conftest import app_client, make_tenant_key

ADMIN = {"X-API-Key": "admin-test-key"}
DEAD = "/api/v1/admin/webhooks/dead"


@pytest.fixture
async def http(clean_redis: str, sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, admin_api_key=ADMIN["X-API-Key"]) as client:
        yield client


async def dead_letter(raw: redis.asyncio.Redis, job_id: str, reason: str = "exhausted") -> str:
    """An entry as worker/webhooks.py writes it when it gives a delivery up."""
    ident = await raw.xadd(WEBHOOK_DEAD_STREAM, {"job_id": job_id, "url": f"https://hooks.example/{job_id}",
                                                  "attempts": "8", "reason": reason, "detail": "HTTP 503",
                                                  "at": str(time.time())})
    return ident.decode()


async def test_dead_letters_are_listed_newest_first_and_paged(http: httpx.AsyncClient,
                                                              raw: redis.asyncio.Redis) -> None:
    ids = [await dead_letter(raw, f"job_{n}") for n in range(5)]
    first = (await http.get(DEAD, params={"limit": 3}, headers=ADMIN)).json()
    assert [entry["id"] for entry in first["data"]] == ids[:1:-1] and first["has_more"]
    entry = first["data"][0]
    assert entry["job_id"] == "job_4" and entry["attempts"] == 8 and entry["reason"] == "exhausted"
    assert entry["url"] == "https://hooks.example/job_4" and entry["detail"] == "HTTP 503"
    rest = (await http.get(DEAD, params={"limit": 3, "before": first["next_cursor"]}, headers=ADMIN)).json()
    assert [entry["id"] for entry in rest["data"]] == ids[1::-1]
    assert rest["has_more"] is False and rest["next_cursor"] is None


async def test_redeliver_schedules_a_first_attempt_due_now_and_drops_the_dead_letter(
        http: httpx.AsyncClient, raw: redis.asyncio.Redis) -> None:
    keep, replay = await dead_letter(raw, "job_keep"), await dead_letter(raw, "job_replay", "rejected")
    before_ms = time.time() * 1000
    response = await http.post(f"{DEAD}/redeliver", json={"ids": [replay, "1-0"]}, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json() == {"redelivered": [replay], "not_found": ["1-0"]}
    [(member, due_ms)] = await raw.zrange(WEBHOOK_RETRY_KEY, 0, -1, withscores=True)
    assert json.loads(member) == {"attempt": 1, "job_id": "job_replay", "url": "https://hooks.example/job_replay"}
    assert before_ms - 1 <= due_ms <= time.time() * 1000 + 1
    listed = (await http.get(DEAD, headers=ADMIN)).json()["data"]
    assert [entry["id"] for entry in listed] == [keep]
    again = await http.post(f"{DEAD}/redeliver", json={"ids": [replay]}, headers=ADMIN)
    assert again.json() == {"redelivered": [], "not_found": [replay]}


async def test_concurrent_replays_of_one_dead_letter_redeliver_it_once(http: httpx.AsyncClient,
                                                                       raw: redis.asyncio.Redis) -> None:
    ident = await dead_letter(raw, "job_twice")
    answers = await asyncio.gather(*(http.post(f"{DEAD}/redeliver", json={"ids": [ident]}, headers=ADMIN)
                                     for _ in range(5)))
    assert sorted(len(answer.json()["redelivered"]) for answer in answers) == [0, 0, 0, 0, 1]
    assert await raw.zcard(WEBHOOK_RETRY_KEY) == 1


@pytest.mark.parametrize("body", [{}, {"ids": []}, {"ids": ["not-an-id"]}, {"ids": "1-0"}, {"ids": [1]},
                                  {"ids": ["1-0"] * 1001}], ids=["missing", "empty", "bad-id", "string",
                                                                 "number", "too-many"])
async def test_redeliver_refuses_bad_bodies_with_400(http: httpx.AsyncClient, body: dict[str, object]) -> None:
    response = await http.post(f"{DEAD}/redeliver", json=body, headers=ADMIN)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("params", [{"before": "yesterday"}, {"limit": 0}, {"limit": 1001}])
async def test_dead_letter_listing_refuses_bad_parameters_with_400(http: httpx.AsyncClient,
                                                                   params: dict[str, object]) -> None:
    response = await http.get(DEAD, params=params, headers=ADMIN)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"]


async def test_dead_letter_endpoints_need_the_admin_key(http: httpx.AsyncClient, sqlite_url: str) -> None:
    tenant_key = await make_tenant_key(sqlite_url)
    for headers, status in (({}, 401), ({"X-API-Key": "wrong"}, 401), ({"X-API-Key": tenant_key}, 401)):
        assert (await http.get(DEAD, headers=headers)).status_code == status
        assert (await http.post(f"{DEAD}/redeliver", json={"ids": ["1-0"]}, headers=headers)).status_code == status
