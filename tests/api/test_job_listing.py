"""`GET /api/v1/jobs`, in-process on real Redis: newest-first pages that follow `next_cursor` to the end
without loss or repeat, a status filter that fills its pages, the tenant's own jobs only, expired records
skipped and pruned from the index, the bounded walk, and 400s in OpenAI's shape for every bad parameter.
No worker runs here: jobs stay queued unless a test sets their status."""

from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio

from api.routes import job_list
from shared.keys import job_key, tenant_jobs_key
from tests.api.conftest import app_client

ADMIN_KEY = "admin-test-key"
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "list me"}]}


@pytest.fixture
async def http(clean_redis: str, sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, admin_api_key=ADMIN_KEY,
                          default_rate_limit=0) as client:
        yield client


async def new_tenant(http: httpx.AsyncClient, name: str) -> tuple[str, dict[str, str]]:
    response = await http.post("/api/v1/admin/tenants", json={"name": name}, headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 201, response.text
    return response.json()["id"], {"X-API-Key": response.json()["api_key"]}


async def submit(http: httpx.AsyncClient, auth: dict[str, str], count: int) -> list[str]:
    ids = []
    for n in range(count):
        response = await http.post("/api/v1/jobs", json={**BODY, "user": str(n)}, headers=auth)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


async def walk(http: httpx.AsyncClient, auth: dict[str, str], **params: object) -> list[list[dict[str, object]]]:
    pages, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await http.get("/api/v1/jobs", params=query, headers=auth)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "list"
        assert body["has_more"] is (body["next_cursor"] is not None)
        pages.append(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


async def test_list_jobs_pages_newest_first_without_loss_or_repeat(http: httpx.AsyncClient) -> None:
    _, auth = await new_tenant(http, "pager")
    ids = await submit(http, auth, 25)
    pages = await walk(http, auth, limit=10)
    assert [len(page) for page in pages] == [10, 10, 5]
    listed = [job["id"] for page in pages for job in page]
    assert listed == list(reversed(ids))
    created = [job["created_at"] for page in pages for job in page]
    assert created == sorted(created, reverse=True)


async def test_list_jobs_defaults_to_twenty_and_renders_like_get(http: httpx.AsyncClient) -> None:
    _, auth = await new_tenant(http, "renderer")
    await submit(http, auth, 21)
    body = (await http.get("/api/v1/jobs", headers=auth)).json()
    assert len(body["data"]) == 20 and body["has_more"] is True
    first = body["data"][0]
    assert first == (await http.get(f"/api/v1/jobs/{first['id']}", headers=auth)).json()


async def test_list_jobs_status_filter_fills_pages(http: httpx.AsyncClient, raw: redis.asyncio.Redis) -> None:
    _, auth = await new_tenant(http, "filter")
    ids = await submit(http, auth, 30)
    done = ids[::3]
    for job_id in done:
        await raw.hset(job_key(job_id), "status", "succeeded")
    pages = await walk(http, auth, status="succeeded", limit=4)
    assert [len(page) for page in pages] == [4, 4, 2]
    assert [job["id"] for page in pages for job in page] == list(reversed(done))
    assert all(job["status"] == "succeeded" for page in pages for job in page)
    queued = [job["id"] for page in await walk(http, auth, status="queued", limit=100) for job in page]
    assert queued == [job_id for job_id in reversed(ids) if job_id not in done]
    assert await walk(http, auth, status="cancelled") == [[]]


async def test_list_jobs_shows_only_the_tenants_own_jobs(http: httpx.AsyncClient) -> None:
    _, alice = await new_tenant(http, "alice")
    _, bob = await new_tenant(http, "bob")
    alice_ids = await submit(http, alice, 3)
    bob_ids = await submit(http, bob, 2)
    assert [job["id"] for job in (await walk(http, alice))[0]] == list(reversed(alice_ids))
    assert [job["id"] for job in (await walk(http, bob))[0]] == list(reversed(bob_ids))


async def test_list_jobs_skips_and_prunes_expired_records(http: httpx.AsyncClient, raw: redis.asyncio.Redis) -> None:
    tenant_id, auth = await new_tenant(http, "expiry")
    ids = await submit(http, auth, 12)
    gone = ids[2:9]
    for job_id in gone[:-1]:
        await raw.delete(job_key(job_id))
    await raw.pexpire(job_key(gone[-1]), 1)  # a real expiry, not only a deletion
    pages = await walk(http, auth, limit=3)
    assert [len(page) for page in pages] == [3, 2]
    assert [job["id"] for page in pages for job in page] == [j for j in reversed(ids) if j not in gone]
    members = {m.decode() for m in await raw.zrange(tenant_jobs_key(tenant_id), 0, -1)}
    assert members == set(ids) - set(gone)


async def test_list_jobs_bounded_walk_returns_short_page_with_cursor(
    http: httpx.AsyncClient, raw: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_list, "BATCH", 3)
    monkeypatch.setattr(job_list, "MAX_SCAN", 6)
    _, auth = await new_tenant(http, "bounded")
    ids = await submit(http, auth, 20)
    wanted = [ids[0], ids[1], ids[19]]  # the two oldest and the newest
    for job_id in wanted:
        await raw.hset(job_key(job_id), "status", "failed")
    pages = await walk(http, auth, status="failed", limit=5)
    assert [job["id"] for page in pages for job in page] == list(reversed(wanted))
    assert len(pages) > 1 and all(len(page) <= 5 for page in pages)


@pytest.mark.parametrize("params", [
    {"status": "done"}, {"status": ""}, {"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"limit": -1},
    {"cursor": "not-a-cursor"}, {"cursor": ""}, {"cursor": "W10"}, {"cursor": "x" * 600},
])
async def test_list_jobs_rejects_bad_parameters_with_400(http: httpx.AsyncClient, params: dict[str, object]) -> None:
    _, auth = await new_tenant(http, "params")
    response = await http.get("/api/v1/jobs", params=params, headers=auth)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]


async def test_list_jobs_needs_a_tenant_key(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/v1/jobs")).status_code == 401


def test_list_jobs_cursor_round_trips() -> None:
    position = (1795823681.056123, "job_abc")
    assert job_list.decode_cursor(job_list.encode_cursor(position)) == position
