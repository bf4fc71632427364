"""`Idempotency-Key` on job submission, in-process on real Redis (no worker: jobs stay queued): a repeat is
the same job, concurrent identical requests make one job, another body is 409, a refused first request
frees its key, repeats are not admitted again (no request counted), keys are per tenant and per route, and
malformed keys are 400. Completions (sync and streamed) and billing are covered end to end in
tests/e2e/test_idempotency.py."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio

from shared.idempotency import IdempotencyStore, body_fingerprint
from shared.keys import job_key, tenant_jobs_key
from tests.api.conftest import app_client

ADMIN_KEY = "admin-test-key"
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "once only"}]}


@pytest.fixture
async def http(clean_redis: str, sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, admin_api_key=ADMIN_KEY) as client:
        yield client


async def new_tenant(http: httpx.AsyncClient, name: str, **limits: object) -> tuple[str, dict[str, str]]:
    response = await http.post("/api/v1/admin/tenants", json={"name": name, **limits},
                               headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 201, response.text
    return response.json()["id"], {"X-API-Key": response.json()["api_key"]}


async def post_job(http: httpx.AsyncClient, auth: dict[str, str], key: str | None,
                   body: dict[str, object] = BODY) -> httpx.Response:
    headers = {**auth, **({"Idempotency-Key": key} if key is not None else {})}
    return await http.post("/api/v1/jobs", json=body, headers=headers)


async def test_idempotency_repeat_job_submission_returns_same_job(http: httpx.AsyncClient,
                                                                  raw: redis.asyncio.Redis) -> None:
    tenant_id, auth = await new_tenant(http, "repeat")
    first = await post_job(http, auth, "order-42")
    again = await post_job(http, auth, "order-42")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert await raw.zcard(tenant_jobs_key(tenant_id)) == 1


async def test_idempotency_repeat_reports_the_jobs_current_status(http: httpx.AsyncClient,
                                                                  raw: redis.asyncio.Redis) -> None:
    _, auth = await new_tenant(http, "status")
    job_id = (await post_job(http, auth, "k1")).json()["id"]
    await raw.hset(job_key(job_id), "status", "succeeded")
    assert (await post_job(http, auth, "k1")).json() == {"id": job_id, "object": "job", "status": "succeeded"}


async def test_idempotency_concurrent_identical_requests_make_one_job(http: httpx.AsyncClient,
                                                                      raw: redis.asyncio.Redis) -> None:
    tenant_id, auth = await new_tenant(http, "racer")
    responses = await asyncio.gather(*(post_job(http, auth, "same-key") for _ in range(12)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum("idempotent-replayed" in r.headers for r in responses) == 11
    assert await raw.zcard(tenant_jobs_key(tenant_id)) == 1


async def test_idempotency_different_body_is_409(http: httpx.AsyncClient) -> None:
    _, auth = await new_tenant(http, "reuser")
    assert (await post_job(http, auth, "k")).status_code == 202
    other = {**BODY, "messages": [{"role": "user", "content": "something else"}]}
    response = await post_job(http, auth, "k", other)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert response.json()["error"]["type"] == "conflict_error"


async def test_idempotency_refused_request_releases_its_key(http: httpx.AsyncClient,
                                                             raw: redis.asyncio.Redis) -> None:
    tenant_id, auth = await new_tenant(http, "refused", rate_limit=1)
    assert (await post_job(http, auth, None)).status_code == 202  # uses the one request of this minute
    refused = await post_job(http, auth, "retry-me")
    assert refused.status_code == 429
    assert await raw.keys("gw:idem:*") == []
    await raw.delete(f"gw:rl:req:{tenant_id}")  # the minute has passed
    retried = await post_job(http, auth, "retry-me")
    assert retried.status_code == 202 and "idempotent-replayed" not in retried.headers


async def test_idempotency_unknown_model_releases_its_key(http: httpx.AsyncClient) -> None:
    _, auth = await new_tenant(http, "typo")
    assert (await post_job(http, auth, "k", {**BODY, "model": "no-such-model"})).status_code == 404
    assert (await post_job(http, auth, "k")).status_code == 202  # another body: fine, the key was freed


async def test_idempotency_repeats_are_not_admitted_again(http: httpx.AsyncClient) -> None:
    _, auth = await new_tenant(http, "counted", rate_limit=2)
    first = await post_job(http, auth, "k")
    for _ in range(5):
        again = await post_job(http, auth, "k")
        assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert (await post_job(http, auth, None)).status_code == 202  # the second request of the minute
    assert (await post_job(http, auth, None)).status_code == 429


async def test_idempotency_keys_are_scoped_per_tenant(http: httpx.AsyncClient) -> None:
    _, alice = await new_tenant(http, "alice")
    _, bob = await new_tenant(http, "bob")
    a = await post_job(http, alice, "shared-key")
    b = await post_job(http, bob, "shared-key", {**BODY, "max_tokens": 5})
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]


async def test_idempotency_keys_are_scoped_per_route(http: httpx.AsyncClient, raw: redis.asyncio.Redis) -> None:
    tenant_id, auth = await new_tenant(http, "routes")
    # The key was used on /v1/chat/completions for another body: on /api/v1/jobs it is another key.
    store = IdempotencyStore(raw, ttl_s=600)
    claim = await store.claim(tenant_id, "chat", "k", body_fingerprint({"other": True}))
    await claim.bind("job_elsewhere")
    assert (await post_job(http, auth, "k")).status_code == 202


async def test_idempotency_key_of_an_expired_job_starts_afresh(http: httpx.AsyncClient,
                                                                raw: redis.asyncio.Redis) -> None:
    _, auth = await new_tenant(http, "expired")
    first = (await post_job(http, auth, "k")).json()["id"]
    await raw.delete(job_key(first))
    second = await post_job(http, auth, "k")
    assert second.status_code == 202 and second.json()["id"] != first


async def test_idempotency_key_entry_lives_for_the_retention(http: httpx.AsyncClient,
                                                             raw: redis.asyncio.Redis) -> None:
    _, auth = await new_tenant(http, "ttl")
    await post_job(http, auth, "k")
    (entry,) = await raw.keys("gw:idem:*")
    assert 86_000 < await raw.ttl(entry) <= 86_400


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9"])
async def test_idempotency_malformed_key_is_400(http: httpx.AsyncClient, key: str) -> None:
    _, auth = await new_tenant(http, "malformed")
    headers = {**auth, "Idempotency-Key": key.encode("utf-8")}
    response = await http.post("/api/v1/jobs", json=BODY, headers=headers)  # type: ignore[arg-type]
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"


async def test_idempotency_longest_printable_key_is_accepted(http: httpx.AsyncClient) -> None:
    _, auth = await new_tenant(http, "longest")
    assert (await post_job(http, auth, "~ !" * 85)).status_code == 202
