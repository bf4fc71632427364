"""The audit log, in-process (real Redis database 3, SQLite): every admin action leaves one entry naming the
actor (`bootstrap`, or the admin key's id), the action, the target and its state before and after; never a key
or a key's hash; a refused change leaves none (the entry shares the change's transaction); and
`GET /api/v1/admin/audit` filters by action, target, actor and time, and pages."""

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis.asyncio

from shared.keys import WEBHOOK_DEAD_STREAM
from shared.tenants import hash_key
from tests.api.conftest import app_client

ADMIN_KEY = "admin-test-key"
BOOTSTRAP = {"X-API-Key": ADMIN_KEY}
AUDIT = "/api/v1/admin/audit"


@pytest.fixture
async def http(clean_redis: str, sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, admin_api_key=ADMIN_KEY,
                          webhook_secret="whsec-test", webhooks_allow_private=True) as client:
        yield client


async def ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    body: dict = response.json()
    return body


async def entries(http: httpx.AsyncClient, **params: object) -> list[dict]:
    page = await ok(await http.get(AUDIT, params=params, headers=BOOTSTRAP))
    data: list[dict] = page["data"]
    return data


async def test_every_admin_action_is_audited_with_before_and_after(http: httpx.AsyncClient,
                                                                   raw: redis.asyncio.Redis) -> None:
    ops = await ok(await http.post("/api/v1/admin/keys", json={"name": "ops", "role": "admin"}, headers=BOOTSTRAP),
                   201)
    by_ops = {"X-API-Key": ops["api_key"]}
    tenant = await ok(await http.post("/api/v1/admin/tenants", json={"name": "acme"}, headers=by_ops), 201)
    tid = tenant["id"]
    await ok(await http.patch(f"/api/v1/admin/tenants/{tid}", json={"budget_usd": 10.0, "tpm_limit": 500},
                              headers=by_ops))
    await ok(await http.post(f"/api/v1/admin/tenants/{tid}/disable", headers=by_ops))
    await ok(await http.post(f"/api/v1/admin/tenants/{tid}/enable", headers=by_ops))
    rotated = await ok(await http.post(f"/api/v1/admin/tenants/{tid}/rotate-key", headers=by_ops))
    key = await ok(await http.post(f"/api/v1/admin/tenants/{tid}/keys", json={"name": "ci", "rate_limit": 5},
                                   headers=by_ops), 201)
    await ok(await http.patch(f"/api/v1/admin/tenants/{tid}/keys/{key['id']}",
                              json={"allowed_models": ["gpt-4o*"], "rate_limit": None}, headers=by_ops))
    await ok(await http.delete(f"/api/v1/admin/tenants/{tid}/keys/{key['id']}", headers=by_ops))
    alert = await ok(await http.post(f"/api/v1/admin/tenants/{tid}/budget-alerts",
                                     json={"url": "http://127.0.0.1:9/hook", "thresholds": [80, 50]},
                                     headers=by_ops), 201)
    await ok(await http.delete(f"/api/v1/admin/tenants/{tid}/budget-alerts/{alert['id']}", headers=by_ops))
    dead = (await raw.xadd(WEBHOOK_DEAD_STREAM, {"job_id": "job_x", "url": "http://h/x", "attempts": "3",
                                                 "reason": "exhausted", "detail": "HTTP 503",
                                                 "at": str(time.time())})).decode()
    await ok(await http.post("/api/v1/admin/webhooks/dead/redeliver", json={"ids": [dead]}, headers=by_ops))
    await ok(await http.delete(f"/api/v1/admin/keys/{ops['id']}", headers=BOOTSTRAP))

    log = list(reversed(await entries(http)))  # oldest first
    assert [(e["action"], e["actor"]) for e in log] == [
        ("admin_key.created", "bootstrap"), ("tenant.created", ops["id"]), ("tenant.updated", ops["id"]),
        ("tenant.disabled", ops["id"]), ("tenant.enabled", ops["id"]), ("tenant.key_rotated", ops["id"]),
        ("key.created", ops["id"]), ("key.updated", ops["id"]), ("key.revoked", ops["id"]),
        ("budget_alert.created", ops["id"]), ("budget_alert.deleted", ops["id"]),
        ("webhooks.redelivered", ops["id"]), ("admin_key.deleted", "bootstrap"),
    ]
    by_action = {e["action"]: e for e in log}
    assert by_action["tenant.created"]["before"] is None and by_action["tenant.created"]["after"]["name"] == "acme"
    updated = by_action["tenant.updated"]
    assert (updated["before"]["budget_usd"], updated["after"]["budget_usd"]) == (None, 10.0)
    assert (updated["before"]["tpm_limit"], updated["after"]["tpm_limit"]) == (None, 500)
    assert updated["target_type"] == "tenant" and updated["target_id"] == tid
    assert (by_action["tenant.disabled"]["before"]["disabled"], by_action["tenant.disabled"]["after"]["disabled"]) \
        == (False, True)
    assert by_action["tenant.enabled"]["after"]["disabled"] is False
    assert by_action["tenant.key_rotated"]["after"] == {"key_prefix": rotated["api_key"][:12]}
    created, changed, revoked = by_action["key.created"], by_action["key.updated"], by_action["key.revoked"]
    assert {e["target_type"] for e in (created, changed, revoked)} == {"api_key"}
    assert {e["target_id"] for e in (created, changed, revoked)} == {key["id"]}
    assert created["before"] is None and created["after"]["name"] == "ci" and created["after"]["rate_limit"] == 5
    assert (changed["before"]["allowed_models"], changed["after"]["allowed_models"]) == (None, ["gpt-4o*"])
    assert (changed["before"]["rate_limit"], changed["after"]["rate_limit"]) == (5, None)
    assert (revoked["before"]["revoked_at"], revoked["after"]["revoked_at"]) == (None, revoked["after"]["revoked_at"])
    assert revoked["after"]["revoked_at"] is not None
    assert by_action["budget_alert.created"]["after"]["thresholds"] == [50, 80]
    assert by_action["budget_alert.deleted"]["before"]["id"] == alert["id"]
    assert by_action["webhooks.redelivered"]["after"] == {"redelivered": [dead], "not_found": []}
    assert by_action["admin_key.deleted"]["before"]["name"] == "ops" and by_action["admin_key.deleted"]["after"] is None
    dump = json.dumps(log)
    for secret in (tenant["api_key"], rotated["api_key"], ops["api_key"], key["api_key"]):
        assert secret not in dump and hash_key(secret) not in dump


async def test_refused_changes_leave_no_entry(http: httpx.AsyncClient) -> None:
    await ok(await http.post("/api/v1/admin/tenants", json={"name": "acme"}, headers=BOOTSTRAP), 201)
    assert (await http.post("/api/v1/admin/tenants", json={"name": "acme"}, headers=BOOTSTRAP)).status_code == 409
    assert (await http.patch("/api/v1/admin/tenants/ten_missing", json={"tpm_limit": 5},
                             headers=BOOTSTRAP)).status_code == 404
    assert (await http.post("/api/v1/admin/tenants/ten_missing/rotate-key", headers=BOOTSTRAP)).status_code == 404
    assert [e["action"] for e in await entries(http)] == ["tenant.created"]


async def test_audit_filters_and_pages(http: httpx.AsyncClient) -> None:
    ids = []
    for n in range(5):
        ids.append((await ok(await http.post("/api/v1/admin/tenants", json={"name": f"t{n}"}, headers=BOOTSTRAP),
                             201))["id"])
    await ok(await http.post(f"/api/v1/admin/tenants/{ids[2]}/disable", headers=BOOTSTRAP))
    assert [e["target_id"] for e in await entries(http, action="tenant.disabled")] == [ids[2]]
    assert [e["action"] for e in await entries(http, target_id=ids[2])] == ["tenant.disabled", "tenant.created"]
    assert len(await entries(http, actor="bootstrap", target_type="tenant")) == 6
    assert await entries(http, actor="adm_nobody") == []
    future = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert await entries(http, since=future) == [] and len(await entries(http, since=past, until=future)) == 6
    first = await ok(await http.get(AUDIT, params={"limit": 4}, headers=BOOTSTRAP))
    assert first["has_more"] is True and len(first["data"]) == 4
    rest = await ok(await http.get(AUDIT, params={"limit": 4, "before": first["next_cursor"]}, headers=BOOTSTRAP))
    assert rest["has_more"] is False and rest["next_cursor"] is None
    seen = [e["id"] for e in first["data"] + rest["data"]]
    assert len(seen) == 6 and seen == sorted(seen, reverse=True)


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"since": "yesterday"}, {"before": "x"}])
async def test_bad_audit_query_is_400(http: httpx.AsyncClient, params: dict) -> None:
    response = await http.get(AUDIT, params=params, headers=BOOTSTRAP)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
