"""Budget alerts through the admin API and the tenant's own API, in-process (real Redis database 3, SQLite):
created, listed and deleted, mirrored to Redis for the workers (with the tenant's budget), bad input refused
with 400 in OpenAI's shape, a tenant confined to its own alerts, and the tenant's changes audited as
`tenant:<id>`. A key's alert: mirrored under the key with its budget, following the key's PATCH and
revocation; refused for a key of another tenant, revoked or unknown (404) or without a budget (400)."""

from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio

from shared.keys import budget_alerts_key
from tests.api.conftest import app_client

ADMIN_KEY = "admin-test-key"
ADMIN = {"X-API-Key": ADMIN_KEY}
OWN = "/api/v1/budget-alerts"


@pytest.fixture
async def http(clean_redis: str, sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, admin_api_key=ADMIN_KEY,
                          webhook_secret="whsec-test", webhooks_allow_private=True) as client:
        yield client


async def tenant(http: httpx.AsyncClient, name: str, **limits: object) -> tuple[str, dict[str, str]]:
    response = await http.post("/api/v1/admin/tenants", json={"name": name, **limits}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()["id"], {"Authorization": f"Bearer {response.json()['api_key']}"}


async def test_admin_alerts_are_mirrored_with_the_budget(http: httpx.AsyncClient, raw: redis.asyncio.Redis) -> None:
    tid, _ = await tenant(http, "acme", budget_usd=20.0, budget_period="weekly")
    path = f"/api/v1/admin/tenants/{tid}/budget-alerts"
    created = await http.post(path, json={"url": "http://127.0.0.1:9/hook"}, headers=ADMIN)
    assert created.status_code == 201, created.text
    alert = created.json()
    assert alert["thresholds"] == [50, 80, 100] and alert["key_id"] is None and alert["tenant_id"] == tid
    mirror = await raw.hgetall(budget_alerts_key(tid))
    assert mirror[b"budget_micros"] == b"20000000" and mirror[b"period"] == b"weekly"
    assert f"alert:{alert['id']}".encode() in mirror
    assert (await http.get(path, headers=ADMIN)).json()["data"] == [alert]
    patched = await http.patch(f"/api/v1/admin/tenants/{tid}", json={"budget_usd": 5.0}, headers=ADMIN)
    assert patched.status_code == 200
    assert await raw.hget(budget_alerts_key(tid), "budget_micros") == b"5000000"
    assert (await http.delete(f"{path}/{alert['id']}", headers=ADMIN)).status_code == 200
    assert not await raw.exists(budget_alerts_key(tid)) and (await http.get(path, headers=ADMIN)).json()["data"] == []
    assert (await http.delete(f"{path}/{alert['id']}", headers=ADMIN)).status_code == 404


@pytest.mark.parametrize("body", [
    {"url": "ftp://example.com/x"}, {"url": "http://user:pw@example.com/"}, {"url": "http://h/", "thresholds": []},
    {"url": "http://h/", "thresholds": [0]}, {"url": "http://h/", "thresholds": [50, 50]},
    {"url": "http://h/", "thresholds": [1001]}, {"url": "http://h/", "extra": 1}, {"thresholds": [50]},
])
async def test_bad_alert_is_400(http: httpx.AsyncClient, body: dict) -> None:
    tid, _ = await tenant(http, "acme", budget_usd=1.0)
    response = await http.post(f"/api/v1/admin/tenants/{tid}/budget-alerts", json=body, headers=ADMIN)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_alert_for_a_missing_tenant_is_404(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/v1/admin/tenants/ten_missing/budget-alerts", json={"url": "http://h/"},
                               headers=ADMIN)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


async def test_a_tenant_manages_only_its_own_alerts_and_is_audited(http: httpx.AsyncClient) -> None:
    tid, key = await tenant(http, "acme", budget_usd=1.0)
    other_id, other_key = await tenant(http, "other", budget_usd=1.0)
    assert (await http.get(OWN)).status_code == 401
    created = await http.post(OWN, json={"url": "http://127.0.0.1:9/own", "thresholds": [90]}, headers=key)
    assert created.status_code == 201, created.text
    alert = created.json()
    assert alert["tenant_id"] == tid and alert["thresholds"] == [90]
    assert (await http.get(OWN, headers=other_key)).json()["data"] == []
    assert (await http.delete(f"{OWN}/{alert['id']}", headers=other_key)).status_code == 404
    assert [a["id"] for a in (await http.get(OWN, headers=key)).json()["data"]] == [alert["id"]]
    assert (await http.delete(f"{OWN}/{alert['id']}", headers=key)).status_code == 200
    audit = (await http.get("/api/v1/admin/audit", params={"target_type": "budget_alert"}, headers=ADMIN)).json()
    assert [(e["action"], e["actor"]) for e in audit["data"]] == [
        ("budget_alert.deleted", f"tenant:{tid}"), ("budget_alert.created", f"tenant:{tid}")]
    assert other_id != tid


async def key(http: httpx.AsyncClient, tid: str, name: str, **scopes: object) -> str:
    response = await http.post(f"/api/v1/admin/tenants/{tid}/keys", json={"name": name, **scopes}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_a_key_alert_is_mirrored_with_the_keys_budget_and_follows_the_key(
        http: httpx.AsyncClient, raw: redis.asyncio.Redis) -> None:
    tid, _ = await tenant(http, "acme", budget_usd=20.0)
    key_id = await key(http, tid, "ci", budget_usd=2.0, budget_period="daily")
    path = f"/api/v1/admin/tenants/{tid}/budget-alerts"
    created = await http.post(path, json={"url": "http://127.0.0.1:9/k", "key_id": key_id}, headers=ADMIN)
    assert created.status_code == 201, created.text
    alert = created.json()
    assert alert["key_id"] == key_id and alert["tenant_id"] == tid
    mirror = await raw.hgetall(budget_alerts_key(key_id))
    assert mirror[b"budget_micros"] == b"2000000" and mirror[b"period"] == b"daily"
    assert f"alert:{alert['id']}".encode() in mirror and not await raw.exists(budget_alerts_key(tid))
    keys = f"/api/v1/admin/tenants/{tid}/keys/{key_id}"
    assert (await http.patch(keys, json={"budget_usd": 3.0}, headers=ADMIN)).status_code == 200
    assert await raw.hget(budget_alerts_key(key_id), "budget_micros") == b"3000000"
    assert (await http.patch(keys, json={"budget_usd": None}, headers=ADMIN)).status_code == 200
    assert not await raw.exists(budget_alerts_key(key_id))  # kept, but silent without a budget
    assert (await http.patch(keys, json={"budget_usd": 1.0}, headers=ADMIN)).status_code == 200
    assert (await http.delete(keys, headers=ADMIN)).status_code == 200
    assert not await raw.exists(budget_alerts_key(key_id))
    assert [a["id"] for a in (await http.get(path, headers=ADMIN)).json()["data"]] == [alert["id"]]


async def test_a_key_alert_is_refused_for_a_key_that_cannot_have_one(http: httpx.AsyncClient) -> None:
    tid, own = await tenant(http, "acme", budget_usd=20.0)
    other_id, _ = await tenant(http, "other", budget_usd=1.0)
    unbudgeted, revoked = await key(http, tid, "plain"), await key(http, tid, "gone", budget_usd=1.0)
    foreign = await key(http, other_id, "theirs", budget_usd=1.0)
    assert (await http.delete(f"/api/v1/admin/tenants/{tid}/keys/{revoked}", headers=ADMIN)).status_code == 200
    path = f"/api/v1/admin/tenants/{tid}/budget-alerts"
    cases = [(unbudgeted, 400, "has no budget"), (revoked, 404, "is revoked"), (foreign, 404, "not found"),
             ("key_missing", 404, "not found"), ("bad id!", 400, "key_id")]
    for key_id, status, words in cases:
        for url, headers in ((path, ADMIN), (OWN, own)):
            response = await http.post(url, json={"url": "http://127.0.0.1:9/k", "key_id": key_id}, headers=headers)
            assert response.status_code == status, (key_id, response.text)
            error = response.json()["error"]
            assert words in error["message"] and error["type"] in ("invalid_request_error", "not_found_error")
    assert (await http.get(path, headers=ADMIN)).json()["data"] == []


async def test_a_tenant_registers_an_alert_on_its_own_key(http: httpx.AsyncClient, raw: redis.asyncio.Redis) -> None:
    tid, own = await tenant(http, "acme")
    key_id = await key(http, tid, "staging", budget_usd=5.0)
    created = await http.post(OWN, json={"url": "http://127.0.0.1:9/k", "thresholds": [80], "key_id": key_id},
                              headers=own)
    assert created.status_code == 201, created.text
    assert created.json()["key_id"] == key_id and await raw.hget(budget_alerts_key(key_id), "period") == b"monthly"
    assert (await http.delete(f"{OWN}/{created.json()['id']}", headers=own)).status_code == 200
    assert not await raw.exists(budget_alerts_key(key_id))
