"""Several named, scoped keys per tenant (issue 15), end to end through the official SDKs and a real API,
worker, Redis and PostgreSQL: model scopes (403 `model_not_allowed` in each client's own error shape, and a
filtered `/v1/models`), endpoint scopes, a key's own rate limit and budget inside the tenant's (one key's
budget exhausted while the tenant's other key, with other scopes and a budget of its own, still works), expiry,
a scope change and a revocation seen by a second API process within a second, `last_used_at`, and the admin
routes' errors."""

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anthropic
import httpx
import openai
import pytest

from tests.e2e.conftest import ADMIN_KEY, Gateway

ADMIN = {"X-API-Key": ADMIN_KEY}
CHAT = {"model": "fake-openai", "messages": [{"role": "user", "content": "hi"}]}


async def issue_key(http: httpx.AsyncClient, tenant_id: str, **scopes: object) -> dict[str, object]:
    body = {"name": f"k-{uuid.uuid4().hex[:8]}", **scopes}
    response = await http.post(f"/api/v1/admin/tenants/{tenant_id}/keys", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    key: dict[str, object] = response.json()
    return key


def openai_client(base_url: str, key: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=str(key), max_retries=0)


async def test_keys_with_different_model_scopes(gateway: Gateway, http: httpx.AsyncClient,
                                                make_tenant: Callable[..., object]) -> None:
    tenant_id, _ = await make_tenant()  # type: ignore[misc]
    openai_only = await issue_key(http, tenant_id, allowed_models=["fake-openai"])
    claude_only = await issue_key(http, tenant_id, allowed_models=["fake-anthropic", "claude-*"])
    client = openai_client(gateway.base_url, openai_only["api_key"])
    answer = await client.chat.completions.create(model="fake-openai", messages=[{"role": "user", "content": "a"}])
    assert answer.choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await client.chat.completions.create(model="fake-anthropic", messages=[{"role": "user", "content": "a"}])
    assert refused.value.code == "model_not_allowed" and "API key" in refused.value.message
    claude = anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key=str(claude_only["api_key"]), max_retries=0)
    message = await claude.messages.create(model="fake-anthropic", max_tokens=16,
                                           messages=[{"role": "user", "content": "a"}])
    assert message.content
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        await claude.messages.create(model="fake-openai", max_tokens=16, messages=[{"role": "user", "content": "a"}])
    assert denied.value.body["type"] == "error"  # type: ignore[index]
    assert denied.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    assert "not allowed" in denied.value.body["error"]["message"]  # type: ignore[index]
    with pytest.raises(anthropic.PermissionDeniedError):
        await claude.messages.count_tokens(model="fake-openai", messages=[{"role": "user", "content": "a"}])


async def test_models_list_shows_only_what_the_key_may_call(gateway: Gateway, http: httpx.AsyncClient,
                                                            make_tenant: Callable[..., object]) -> None:
    tenant_id, default_key = await make_tenant()  # type: ignore[misc]
    scoped = await issue_key(http, tenant_id, allowed_models=["fake-*", "priced"])
    names = [model.id async for model in openai_client(gateway.base_url, scoped["api_key"]).models.list()]
    assert sorted(names) == ["fake-anthropic", "fake-openai", "priced"]
    everything = [model.id async for model in openai_client(gateway.base_url, default_key).models.list()]
    assert len(everything) > 3 and set(names) < set(everything)
    with pytest.raises(openai.PermissionDeniedError):
        await openai_client(gateway.base_url, scoped["api_key"]).models.retrieve("fallback-500")
    claude = anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key=str(scoped["api_key"]), max_retries=0)
    assert sorted([model.id async for model in claude.models.list()]) == sorted(names)


async def test_tenant_allow_list_applies_to_every_key(http: httpx.AsyncClient,
                                                      make_tenant: Callable[..., object]) -> None:
    tenant_id, key = await make_tenant(rate_limit=1)  # type: ignore[misc]
    patched = await http.patch(f"/api/v1/admin/tenants/{tenant_id}", json={"allowed_models": ["fake-anthropic"]},
                               headers=ADMIN)
    assert patched.status_code == 200 and patched.json()["allowed_models"] == ["fake-anthropic"]
    refused = await http.post("/v1/chat/completions", json=CHAT, headers={"X-API-Key": key})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed" and "tenant" in refused.json()["error"]["message"]
    job = await http.post("/api/v1/jobs", json=CHAT, headers={"X-API-Key": key})
    assert job.status_code == 403 and job.json()["error"]["code"] == "model_not_allowed"
    # Refused before admission: the two refusals took nothing of the tenant's one request a minute.
    allowed = await http.post("/v1/chat/completions", json={**CHAT, "model": "fake-anthropic"},
                              headers={"X-API-Key": key})
    assert allowed.status_code == 200, allowed.text


async def test_endpoint_scopes_allow_only_the_listed_routes(http: httpx.AsyncClient,
                                                            make_tenant: Callable[..., object]) -> None:
    tenant_id, _ = await make_tenant()  # type: ignore[misc]
    ci = await issue_key(http, tenant_id, allowed_endpoints=["jobs"])
    headers = {"X-API-Key": str(ci["api_key"])}
    assert (await http.post("/api/v1/jobs", json=CHAT, headers=headers)).status_code == 202
    for method, path in (("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("POST", "/v1/messages")):
        response = await http.request(method, path, json=CHAT if method == "POST" else None, headers=headers)
        assert response.status_code == 403, path
        assert "endpoint_not_allowed" in response.text


async def test_key_budget_exhausted_while_the_other_key_still_works(http: httpx.AsyncClient,
                                                                    make_tenant: Callable[..., object]) -> None:
    """Two keys of one tenant with different model scopes and budgets: the small one's budget runs out (402
    naming the key) while the other, with a budget of its own, goes on; each keeps to its own models."""
    tenant_id, _ = await make_tenant(budget_usd=10.0)  # type: ignore[misc]
    small = await issue_key(http, tenant_id, allowed_models=["priced"], budget_usd=0.0003, budget_period="daily")
    other = await issue_key(http, tenant_id, allowed_models=["priced", "fake-*"], budget_usd=1.0)
    def body() -> dict[str, object]:  # a new prompt each time: a cache hit would cost nothing
        return {"model": "priced", "max_tokens": 8, "messages": [{"role": "user", "content": uuid.uuid4().hex}]}

    statuses = []
    for _ in range(6):
        response = await http.post("/v1/chat/completions", json=body(), headers={"X-API-Key": str(small["api_key"])})
        statuses.append(response.status_code)
        if response.status_code == 402:
            error = response.json()["error"]
            assert error["code"] == "budget_exceeded" and "API key" in error["message"], error
            break
    assert statuses[0] == 200 and statuses[-1] == 402, statuses
    for _ in range(3):
        response = await http.post("/v1/chat/completions", json=body(), headers={"X-API-Key": str(other["api_key"])})
        assert response.status_code == 200, response.text
    free = {**body(), "model": "fake-openai"}
    assert (await http.post("/v1/chat/completions", json=free, headers={"X-API-Key": str(other["api_key"])})
            ).status_code == 200
    refused = await http.post("/v1/chat/completions", json=free, headers={"X-API-Key": str(small["api_key"])})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"
    for _ in range(50):  # the usage writer batches off the request path
        spent = (await http.get(f"/api/v1/admin/tenants/{tenant_id}/usage", params={"group_by": "key"},
                                headers=ADMIN)).json()
        if spent["totals"]["requests"] == statuses.count(200) + 4:
            break
        await asyncio.sleep(0.1)
    by_key = {group["key"]: group["cost_usd"] for group in spent["groups"]}
    assert 0 < by_key[small["id"]] <= 0.0003 and by_key[other["id"]] > 0, by_key  # each key's spend its own


async def test_key_rate_limit_refuses_that_key_only(http: httpx.AsyncClient,
                                                    make_tenant: Callable[..., object]) -> None:
    tenant_id, default_key = await make_tenant(rate_limit=100)  # type: ignore[misc]
    slow = await issue_key(http, tenant_id, rate_limit=1)
    assert (await http.post("/v1/chat/completions", json=CHAT, headers={"X-API-Key": str(slow["api_key"])})
            ).status_code == 200
    refused = await http.post("/v1/chat/completions", json=CHAT, headers={"X-API-Key": str(slow["api_key"])})
    assert refused.status_code == 429 and "API key" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert (await http.post("/v1/chat/completions", json=CHAT, headers={"X-API-Key": default_key})).status_code == 200


async def test_expired_key_is_refused_saying_it_expired(http: httpx.AsyncClient,
                                                        make_tenant: Callable[..., object]) -> None:
    tenant_id, _ = await make_tenant()  # type: ignore[misc]
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    key = await issue_key(http, tenant_id, expires_at=soon.isoformat())
    headers = {"X-API-Key": str(key["api_key"])}
    assert (await http.post("/v1/chat/completions", json=CHAT, headers=headers)).status_code == 200
    await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
    expired = await http.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    assert expired.json()["error"]["code"] == "expired_api_key"


async def test_scope_change_and_revocation_reach_a_second_api_process_within_a_second(
        gateway: Gateway, http: httpx.AsyncClient, make_tenant: Callable[..., object]) -> None:
    tenant_id, default_key = await make_tenant()  # type: ignore[misc]
    key = await issue_key(http, tenant_id)
    headers = {"X-API-Key": str(key["api_key"])}
    process, url = gateway.start_api("api-keys-2")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as second:
            # Warm the second process (and the shared cache) with the key first.
            assert (await second.post("/v1/chat/completions", json=CHAT, headers=headers)).status_code == 200
            patched = await http.patch(f"/api/v1/admin/tenants/{tenant_id}/keys/{key['id']}",
                                       json={"allowed_models": ["fake-anthropic"]}, headers=ADMIN)
            assert patched.status_code == 200, patched.text
            started = time.monotonic()
            scoped = await second.post("/v1/chat/completions", json=CHAT, headers=headers)
            assert scoped.status_code == 403 and time.monotonic() - started < 1.0
            assert scoped.json()["error"]["code"] == "model_not_allowed"
            assert (await second.post("/v1/chat/completions", json={**CHAT, "model": "fake-anthropic"},
                                      headers=headers)).status_code == 200
            revoked = await http.delete(f"/api/v1/admin/tenants/{tenant_id}/keys/{key['id']}", headers=ADMIN)
            assert revoked.status_code == 200 and revoked.json()["revoked_at"]
            started = time.monotonic()
            refused = await second.post("/v1/chat/completions", json=CHAT, headers=headers)
            assert refused.status_code == 401 and time.monotonic() - started < 1.0
            kept = await second.post("/v1/chat/completions", json=CHAT, headers={"X-API-Key": default_key})
            assert kept.status_code == 200
    finally:
        process.stop()


async def test_scope_change_reaches_the_next_request(http: httpx.AsyncClient,
                                                     make_tenant: Callable[..., object]) -> None:
    tenant_id, _ = await make_tenant()  # type: ignore[misc]
    key = await issue_key(http, tenant_id)
    headers = {"X-API-Key": str(key["api_key"])}
    assert (await http.post("/v1/chat/completions", json=CHAT, headers=headers)).status_code == 200
    patched = await http.patch(f"/api/v1/admin/tenants/{tenant_id}/keys/{key['id']}",
                               json={"allowed_models": ["other"]}, headers=ADMIN)
    assert patched.status_code == 200 and patched.json()["allowed_models"] == ["other"]
    assert (await http.post("/v1/chat/completions", json=CHAT, headers=headers)).status_code == 403


async def test_last_used_at_is_recorded(http: httpx.AsyncClient, make_tenant: Callable[..., object]) -> None:
    tenant_id, _ = await make_tenant()  # type: ignore[misc]
    key = await issue_key(http, tenant_id)
    assert key["last_used_at"] is None and "api_key" in key
    assert (await http.get("/v1/models", headers={"X-API-Key": str(key["api_key"])})).status_code == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        read = (await http.get(f"/api/v1/admin/tenants/{tenant_id}/keys/{key['id']}", headers=ADMIN)).json()
        if read["last_used_at"]:
            assert "api_key" not in read and "key_hash" not in read
            return
        await asyncio.sleep(0.1)
    raise AssertionError("last_used_at was not recorded")


async def test_admin_key_routes_errors(http: httpx.AsyncClient, make_tenant: Callable[..., object]) -> None:
    tenant_id, _ = await make_tenant()  # type: ignore[misc]
    base = f"/api/v1/admin/tenants/{tenant_id}/keys"
    key = await issue_key(http, tenant_id)
    assert (await http.get(base)).status_code == 401
    duplicate = await http.post(base, json={"name": key["name"]}, headers=ADMIN)
    assert duplicate.status_code == 409 and duplicate.json()["error"]["type"] == "conflict_error"
    bad = await http.post(base, json={"name": "x", "allowed_endpoints": ["images"]}, headers=ADMIN)
    assert bad.status_code == 400 and "images" in bad.json()["error"]["message"]
    missing = await http.patch(f"{base}/key_missing", json={"rate_limit": 1}, headers=ADMIN)
    assert missing.status_code == 404
    assert (await http.post("/api/v1/admin/tenants/ten_missing/keys", json={"name": "x"},
                            headers=ADMIN)).status_code == 404
    listed = (await http.get(base, headers=ADMIN)).json()["data"]
    assert sorted(item["name"] for item in listed) == sorted(["default", str(key["name"])])
    assert (await http.delete(f"{base}/{key['id']}", headers=ADMIN)).status_code == 200
    assert (await http.delete(f"{base}/{key['id']}", headers=ADMIN)).status_code == 404
    with_revoked = (await http.get(base, params={"include_revoked": "true"}, headers=ADMIN)).json()["data"]
    assert len(with_revoked) == 2
