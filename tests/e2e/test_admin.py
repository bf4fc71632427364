"""The admin API: guarded by the admin key; tenants are created (query or JSON body), listed, read,
disabled (their key gets 403 at once) and their keys rotated (the old key stops working)."""

import asyncio
import uuid

import httpx
import pytest

from tests.e2e.conftest import ADMIN_KEY

ADMIN = {"X-API-Key": ADMIN_KEY}
CHAT = {"model": "fake-openai", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}])
async def test_admin_rejects_missing_or_wrong_key(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await http.get("/api/v1/admin/tenants", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


async def test_admin_rejects_tenant_key(http: httpx.AsyncClient, tenant_key: str) -> None:
    response = await http.get("/api/v1/admin/tenants", headers={"X-API-Key": tenant_key})
    assert response.status_code == 401


async def test_admin_creates_tenant_from_query_and_key_works(http: httpx.AsyncClient) -> None:
    name = f"app-{uuid.uuid4().hex[:8]}"
    response = await http.post("/api/v1/admin/tenants", params={"name": name, "rate_limit": 100},
                               headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 201
    tenant = response.json()
    assert tenant["name"] == name and tenant["rate_limit"] == 100 and tenant["api_key"].startswith("gw-")
    chat = await http.post("/v1/chat/completions", json=CHAT, headers={"X-API-Key": tenant["api_key"]})
    assert chat.status_code == 200
    listed = (await http.get("/api/v1/admin/tenants", headers=ADMIN)).json()["data"]
    assert any(t["id"] == tenant["id"] for t in listed)
    assert all("api_key" not in t for t in listed)


async def test_admin_creates_tenant_from_json_body(http: httpx.AsyncClient) -> None:
    name = f"json-{uuid.uuid4().hex[:8]}"
    response = await http.post("/api/v1/admin/tenants", json={"name": name, "rate_limit": 5}, headers=ADMIN)
    assert response.status_code == 201
    got = await http.get(f"/api/v1/admin/tenants/{response.json()['id']}", headers=ADMIN)
    assert got.json()["name"] == name and got.json()["rate_limit"] == 5


@pytest.mark.parametrize("params", [{}, {"name": ""}, {"name": "ok", "rate_limit": -1}, {"name": "bad name!"}])
async def test_admin_rejects_invalid_tenant(http: httpx.AsyncClient, params: dict) -> None:
    response = await http.post("/api/v1/admin/tenants", params=params, headers=ADMIN)
    assert response.status_code == 400
    assert "message" in response.json()["error"]


async def test_admin_rejects_duplicate_tenant_name(http: httpx.AsyncClient) -> None:
    name = f"dup-{uuid.uuid4().hex[:8]}"
    assert (await http.post("/api/v1/admin/tenants", params={"name": name}, headers=ADMIN)).status_code == 201
    again = await http.post("/api/v1/admin/tenants", params={"name": name}, headers=ADMIN)
    assert again.status_code == 409


async def test_admin_disabled_tenant_gets_403_at_once(http: httpx.AsyncClient, make_tenant) -> None:
    tenant_id, key = await make_tenant()
    assert (await http.post("/v1/chat/completions", json=CHAT, headers={"X-API-Key": key})).status_code == 200
    disabled = await http.post(f"/api/v1/admin/tenants/{tenant_id}/disable", headers=ADMIN)
    assert disabled.json()["disabled"] is True
    response = await http.post("/v1/chat/completions", json=CHAT, headers={"X-API-Key": key})
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"
    await http.post(f"/api/v1/admin/tenants/{tenant_id}/enable", headers=ADMIN)
    assert (await http.post("/v1/chat/completions", json=CHAT, headers={"X-API-Key": key})).status_code == 200


async def test_admin_rotate_key_revokes_old_key(http: httpx.AsyncClient, make_tenant) -> None:
    tenant_id, old_key = await make_tenant()
    rotated = await http.post(f"/api/v1/admin/tenants/{tenant_id}/rotate-key", headers=ADMIN)
    new_key = rotated.json()["api_key"]
    assert new_key != old_key
    assert (await http.get("/v1/models", headers={"X-API-Key": old_key})).status_code == 401
    assert (await http.get("/v1/models", headers={"X-API-Key": new_key})).status_code == 200


async def test_admin_unknown_tenant_is_404(http: httpx.AsyncClient) -> None:
    for path in ("/api/v1/admin/tenants/ten_missing", "/api/v1/admin/tenants/ten_missing/usage"):
        assert (await http.get(path, headers=ADMIN)).status_code == 404


async def test_admin_usage_counts_completed_requests(http: httpx.AsyncClient, make_tenant) -> None:
    tenant_id, key = await make_tenant()
    for _ in range(3):
        assert (await http.post("/v1/chat/completions", json=CHAT, headers={"X-API-Key": key})).status_code == 200
    totals: dict = {}
    for _ in range(50):  # the usage writer batches off the request path
        report = (await http.get(f"/api/v1/admin/tenants/{tenant_id}/usage?days=30", headers=ADMIN)).json()
        totals = report["totals"]
        if totals["requests"] == 3:
            break
        await asyncio.sleep(0.1)
    assert totals["requests"] == 3
    assert totals["completion_tokens"] == 24
    assert report["by_model"][0]["model"] == "fake-openai"
    own = (await http.get("/api/v1/usage", headers={"X-API-Key": key})).json()
    assert own["totals"]["requests"] == 3
