"""Admin keys with roles, in-process (real Redis database 3, SQLite): the bootstrap key (ADMIN_API_KEY) issues
`admin` and `viewer` keys, shown once and stored hashed; a viewer may call every admin GET route and is
refused 403 `permission_denied` on every admin write route, found by walking the app's routes (so a new
write route cannot be missed); an admin-role key writes; a deleted key stops at once."""

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text

from api.main import create_app
from shared.config import Settings
from shared.db.engine import create_engine
from shared.tenants import hash_key
from tests.api.conftest import app_client

ADMIN_KEY = "admin-test-key"
BOOTSTRAP = {"X-API-Key": ADMIN_KEY}
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
# Reads a viewer may not make: a request's stored prompt and answer text (issue 15, request log).
ADMIN_ONLY_READS = {("GET", "/api/v1/admin/tenants/{tenant_id}/requests/{request_id}")}


@pytest.fixture
async def http(clean_redis: str, sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, admin_api_key=ADMIN_KEY,
                          webhook_secret="whsec-test", webhooks_allow_private=True) as client:
        yield client


async def issue(http: httpx.AsyncClient, name: str, role: str, headers: dict[str, str] = BOOTSTRAP) -> dict:
    response = await http.post("/api/v1/admin/keys", json={"name": name, "role": role}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict = response.json()
    return body


def admin_routes() -> list[tuple[str, str]]:
    """Every (method, path) of the admin API, from the app's own schema (every route it serves is in it)."""
    app = create_app(Settings(_env_file=None, admin_api_key=ADMIN_KEY))  # type: ignore[call-arg]
    paths: dict[str, dict[str, object]] = app.openapi()["paths"]
    return sorted((method.upper(), path) for path, item in paths.items() if path.startswith("/api/v1/admin")
                  for method in item if method.upper() in HTTP_METHODS)


async def fixtures(http: httpx.AsyncClient) -> dict[str, str]:
    """Real ids for every path parameter, so each read answers 200."""
    tenant = (await http.post("/api/v1/admin/tenants", json={"name": "roles", "budget_usd": 5.0},
                              headers=BOOTSTRAP)).json()
    alert = (await http.post(f"/api/v1/admin/tenants/{tenant['id']}/budget-alerts",
                             json={"url": "http://127.0.0.1:9/hook"}, headers=BOOTSTRAP)).json()
    spare = await issue(http, "spare", "viewer")
    tenant_key = (await http.post(f"/api/v1/admin/tenants/{tenant['id']}/keys", json={"name": "ci"},
                                  headers=BOOTSTRAP)).json()
    return {"tenant_id": tenant["id"], "alert_id": alert["id"], "admin_key_id": spare["id"],
            "key_id": tenant_key["id"], "request_id": "job_none"}


def fill(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no id for a path parameter of {path}: add it to fixtures()"
    return path


async def test_keys_are_shown_once_and_stored_hashed(http: httpx.AsyncClient, sqlite_url: str) -> None:
    created = await issue(http, "dash", "viewer")
    assert created["api_key"].startswith("gwa-") and created["role"] == "viewer"
    assert created["key_prefix"] == created["api_key"][:12]
    listed = (await http.get("/api/v1/admin/keys", headers=BOOTSTRAP)).json()["data"]
    assert [item["id"] for item in listed] == [created["id"]] and "api_key" not in listed[0]
    engine = create_engine(sqlite_url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT * FROM admin_key"))).all()
    finally:
        await engine.dispose()
    dump = " ".join(str(value) for row in rows for value in row)
    assert hash_key(created["api_key"]) in dump and created["api_key"] not in dump


async def test_viewer_reads_every_admin_get_and_is_refused_every_write(http: httpx.AsyncClient) -> None:
    ids = await fixtures(http)
    viewer = {"Authorization": f"Bearer {(await issue(http, 'viewer', 'viewer'))['api_key']}"}
    routes = admin_routes()
    writes = [(method, path) for method, path in routes if method not in ("GET", "HEAD")]
    reads = [(method, path) for method, path in routes if method == "GET" and (method, path) not in ADMIN_ONLY_READS]
    writes += sorted(ADMIN_ONLY_READS)
    assert len(writes) >= 10 and len(reads) >= 7  # the walk found the routes (tenants, keys, alerts, webhooks)
    for method, path in reads:
        response = await http.request(method, fill(path, ids), headers=viewer)
        assert response.status_code == 200, (method, path, response.text)
    for method, path in writes:
        response = await http.request(method, fill(path, ids), json={}, headers=viewer)
        assert response.status_code == 403, (method, path, response.text)
        error = response.json()["error"]
        assert error["type"] == "permission_error" and error["code"] == "permission_denied", (method, path)
    # Nothing changed: the viewer's attempts left the tenant enabled and the spare key in place.
    tenant = (await http.get(f"/api/v1/admin/tenants/{ids['tenant_id']}", headers=BOOTSTRAP)).json()
    assert tenant["disabled"] is False
    assert (await http.get(f"/api/v1/admin/keys/{ids['admin_key_id']}", headers=BOOTSTRAP)).status_code == 200


async def test_admin_role_key_writes_and_a_deleted_key_stops_at_once(http: httpx.AsyncClient) -> None:
    admin = await issue(http, "ops", "admin")
    headers = {"X-API-Key": admin["api_key"]}
    created = await http.post("/api/v1/admin/tenants", json={"name": "by-ops"}, headers=headers)
    assert created.status_code == 201, created.text
    viewer = await issue(http, "made-by-ops", "viewer", headers=headers)
    deleted = await http.delete(f"/api/v1/admin/keys/{admin['id']}", headers=BOOTSTRAP)
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    refused = await http.get("/api/v1/admin/tenants", headers=headers)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert (await http.get(f"/api/v1/admin/keys/{admin['id']}", headers=BOOTSTRAP)).status_code == 404
    assert (await http.delete(f"/api/v1/admin/keys/{admin['id']}", headers=BOOTSTRAP)).status_code == 404
    viewer_headers = {"X-API-Key": viewer["api_key"]}
    assert (await http.get("/api/v1/admin/tenants", headers=viewer_headers)).status_code == 200


@pytest.mark.parametrize("body", [{"name": "x", "role": "owner"}, {"name": ""}, {"name": "bad name!"},
                                  {"name": "x", "extra": 1}, {"role": "admin"}])
async def test_bad_admin_key_request_is_400(http: httpx.AsyncClient, body: dict) -> None:
    response = await http.post("/api/v1/admin/keys", json=body, headers=BOOTSTRAP)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("key", ["gwa-unknown", "gw-tenantish", "nope"])
async def test_unknown_admin_keys_are_401(http: httpx.AsyncClient, key: str) -> None:
    response = await http.get("/api/v1/admin/audit", headers={"X-API-Key": key})
    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"
