"""Tenant limits through the admin API, in-process: set on create (query or JSON body), changed with PATCH,
shown on every tenant, refused with a 400 in OpenAI's error shape when bad, and applied at once by dropping
the tenant's cached snapshot."""

from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio

from shared.keys import auth_cache_key
from shared.tenants import hash_key
from tests.api.conftest import app_client

ADMIN_KEY = "admin-test-key"
ADMIN = {"X-API-Key": ADMIN_KEY}
LIMITS = {"rate_limit": 30, "tpm_limit": 50_000, "max_concurrent": 4, "budget_usd": 12.5, "budget_period": "weekly"}


@pytest.fixture
async def http(clean_redis: str, sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, admin_api_key=ADMIN_KEY) as client:
        yield client


async def create(http: httpx.AsyncClient, **fields: object) -> dict[str, object]:
    response = await http.post("/api/v1/admin/tenants", json={"name": "acme", **fields}, headers=ADMIN)
    assert response.status_code == 201, response.text
    tenant: dict[str, object] = response.json()
    return tenant


def limits_of(tenant: dict[str, object]) -> dict[str, object]:
    return {key: tenant[key] for key in LIMITS}


async def test_create_tenant_takes_limits_from_json_body(http: httpx.AsyncClient) -> None:
    tenant = await create(http, **LIMITS)
    assert limits_of(tenant) == LIMITS
    stored = (await http.get(f"/api/v1/admin/tenants/{tenant['id']}", headers=ADMIN)).json()
    assert limits_of(stored) == LIMITS


async def test_create_tenant_takes_limits_from_query(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/v1/admin/tenants", params={"name": "acme", **LIMITS}, headers=ADMIN)
    assert response.status_code == 201, response.text
    assert limits_of(response.json()) == LIMITS


async def test_create_tenant_without_limits_renders_defaults(http: httpx.AsyncClient) -> None:
    tenant = await create(http)
    assert limits_of(tenant) == {"rate_limit": None, "tpm_limit": None, "max_concurrent": None,
                                 "budget_usd": None, "budget_period": "monthly"}
    listed = (await http.get("/api/v1/admin/tenants", headers=ADMIN)).json()["data"]
    assert [limits_of(item) for item in listed] == [limits_of(tenant)]


@pytest.mark.parametrize(
    "fields",
    [{"budget_usd": -1}, {"max_concurrent": 0}, {"budget_period": "yearly"}, {"tpm_limit": "many"}, {"budget": 5}],
)
async def test_create_tenant_bad_limit_is_400(http: httpx.AsyncClient, fields: dict[str, object]) -> None:
    response = await http.post("/api/v1/admin/tenants", json={"name": "acme", **fields}, headers=ADMIN)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and next(iter(fields)) in error["message"]
    assert (await http.get("/api/v1/admin/tenants", headers=ADMIN)).json()["data"] == []


async def test_update_tenant_changes_only_the_given_fields(http: httpx.AsyncClient) -> None:
    tenant = await create(http, **LIMITS)
    response = await http.patch(f"/api/v1/admin/tenants/{tenant['id']}", json={"tpm_limit": 1000}, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert limits_of(response.json()) == {**LIMITS, "tpm_limit": 1000}
    stored = (await http.get(f"/api/v1/admin/tenants/{tenant['id']}", headers=ADMIN)).json()
    assert limits_of(stored) == {**LIMITS, "tpm_limit": 1000}


async def test_update_tenant_null_clears_a_limit(http: httpx.AsyncClient) -> None:
    tenant = await create(http, **LIMITS)
    changes = {"budget_usd": None, "max_concurrent": None}
    response = await http.patch(f"/api/v1/admin/tenants/{tenant['id']}", json=changes, headers=ADMIN)
    assert response.status_code == 200
    assert limits_of(response.json()) == {**LIMITS, **changes}


@pytest.mark.parametrize(
    "body",
    [
        {"budget_usd": -0.01},
        {"max_concurrent": 0},
        {"rate_limit": -1},
        {"rate_limit": 1.5},
        {"rate_limit": True},
        {"budget_period": "yearly"},
        {"budget_period": None},
        {"name": "renamed"},
        [1, 2],
        "not json",
    ],
)
async def test_update_tenant_bad_body_is_400_and_changes_nothing(http: httpx.AsyncClient, body: object) -> None:
    tenant = await create(http, **LIMITS)
    path = f"/api/v1/admin/tenants/{tenant['id']}"
    content = body if isinstance(body, str) else None
    json_body = None if isinstance(body, str) else body
    response = await http.patch(path, json=json_body, content=content, headers=ADMIN)
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "code", "param"}
    assert limits_of((await http.get(path, headers=ADMIN)).json()) == LIMITS


async def test_update_tenant_unknown_tenant_is_404(http: httpx.AsyncClient) -> None:
    response = await http.patch("/api/v1/admin/tenants/ten_missing", json={"tpm_limit": 5}, headers=ADMIN)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


async def test_update_tenant_needs_the_admin_key(http: httpx.AsyncClient) -> None:
    tenant = await create(http)
    response = await http.patch(f"/api/v1/admin/tenants/{tenant['id']}", json={"tpm_limit": 5},
                                headers={"X-API-Key": str(tenant["api_key"])})
    assert response.status_code == 401


async def test_update_tenant_drops_the_cached_snapshot(http: httpx.AsyncClient, clean_redis: str) -> None:
    tenant = await create(http)
    key = str(tenant["api_key"])
    assert (await http.get("/v1/models", headers={"X-API-Key": key})).status_code == 200
    client = redis.asyncio.Redis.from_url(clean_redis)
    try:
        cached = await client.get(auth_cache_key(hash_key(key)))
        assert cached is not None and b'"tpm_limit":null' in cached
        response = await http.patch(f"/api/v1/admin/tenants/{tenant['id']}", json={"tpm_limit": 7}, headers=ADMIN)
        assert response.status_code == 200
        assert await client.get(auth_cache_key(hash_key(key))) is None
        assert (await http.get("/v1/models", headers={"X-API-Key": key})).status_code == 200
        refreshed = await client.get(auth_cache_key(hash_key(key)))
        assert refreshed is not None and b'"tpm_limit":7' in refreshed
    finally:
        await client.aclose()
