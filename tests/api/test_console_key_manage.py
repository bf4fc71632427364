"""A tenant key's `manage` scope (issue 16), in process: the admin API sets, shows and clears it; a console session
opened with such a key issues keys for its own tenant within its own scopes and revokes them, audited as
`tenant:<tenant_id>:<key_id>`, and is refused another tenant's keys (404), more than its own scopes (400 naming the
field) and the operator's tenant forms (403); a session with a key without it is refused every key write (403).
tests/e2e/test_console_key_manage.py drives the same in a browser against a running gateway."""

import re

import httpx
import redis.asyncio

from shared.keys import budget_alerts_key
from tests.api.conftest import REDIS_URL, app_client
from tests.api.test_console import ADMIN, SECRET, _sign_in
from tests.api.test_console_governance import POST_FORM, _csrf

ADMIN_HEADERS = {"X-API-Key": ADMIN}


async def _tenant(client: httpx.AsyncClient, name: str) -> str:
    created = await client.post("/api/v1/admin/tenants", json={"name": name}, headers=ADMIN_HEADERS)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _key(client: httpx.AsyncClient, tenant_id: str, **body: object) -> dict[str, object]:
    issued = await client.post(f"/api/v1/admin/tenants/{tenant_id}/keys", json=body, headers=ADMIN_HEADERS)
    assert issued.status_code == 201, issued.text
    data: dict[str, object] = issued.json()
    return data


async def _keys(client: httpx.AsyncClient, tenant_id: str) -> dict[str, bool]:
    """Each key's name, and whether it is still active."""
    listed = await client.get(f"/api/v1/admin/tenants/{tenant_id}/keys", params={"include_revoked": "true"},
                              headers=ADMIN_HEADERS)
    return {key["name"]: key["revoked_at"] is None for key in listed.json()["data"]}


async def test_admin_api_sets_shows_and_clears_the_manage_scope(sqlite_url: str, clean_redis: str) -> None:
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        tenant_id = await _tenant(client, "acme")
        plain = await _key(client, tenant_id, name="ci")
        managing = await _key(client, tenant_id, name="ops", manage=True)
        path = f"/api/v1/admin/tenants/{tenant_id}/keys/{managing['id']}"
        shown = (await client.get(path, headers=ADMIN_HEADERS)).json()
        cleared = await client.patch(path, json={"manage": False}, headers=ADMIN_HEADERS)
        bad = [await client.post(f"/api/v1/admin/tenants/{tenant_id}/keys", json={"name": "x", "manage": value},
                                 headers=ADMIN_HEADERS) for value in ("yes", 1, None)]
        bad_patch = await client.patch(path, json={"manage": "true"}, headers=ADMIN_HEADERS)
        audit = (await client.get("/api/v1/admin/audit", params={"target_id": str(managing["id"])},
                                  headers=ADMIN_HEADERS)).json()["data"]
    assert plain["manage"] is False and managing["manage"] is True and shown["manage"] is True
    assert cleared.status_code == 200 and cleared.json()["manage"] is False
    assert [answer.status_code for answer in bad] == [400] * 3 and all("manage" in answer.text for answer in bad)
    assert bad_patch.status_code == 400 and "manage" in bad_patch.text
    assert [(entry["before"] or {}).get("manage") for entry in audit] == [True, None]
    assert [entry["after"]["manage"] for entry in audit] == [False, True]


async def test_console_manage_session_issues_and_revokes_its_tenants_keys_audited_as_tenant_and_key(
    sqlite_url: str, clean_redis: str
) -> None:
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        tenant_id = await _tenant(client, "acme")
        manager = await _key(client, tenant_id, name="ops", manage=True)
        assert (await _sign_in(client, str(manager["api_key"]))).status_code == 303
        path = f"/console/tenants/{tenant_id}/keys"
        page = await client.get(path)
        token = await _csrf(client, path)
        issued = await client.post(path, data={"name": "svc", "allowed_endpoints": "chat", "manage": "true",
                                               "csrf_token": token})
        secret = re.search(r'<code id="new-key">(gw-[^<]+)</code>', issued.text)
        assert issued.status_code == 201 and secret, issued.text
        assert (await client.get("/api/v1/usage", headers={"X-API-Key": secret.group(1)})).status_code == 200
        new_id = re.search(rf'{path}/(key_\w+)/revoke" aria-label="Revoke the key svc"', issued.text)
        assert new_id, issued.text
        confirm = await client.get(f"{path}/{new_id.group(1)}/revoke")
        revoked = await client.post(f"{path}/{new_id.group(1)}/revoke", data={"csrf_token": token})
        refused = await client.get("/api/v1/usage", headers={"X-API-Key": secret.group(1)})
        actor = f"tenant:{tenant_id}:{manager['id']}"
        audit = (await client.get("/api/v1/admin/audit", params={"actor": actor}, headers=ADMIN_HEADERS)).json()
        keys = await _keys(client, tenant_id)
    assert page.status_code == 200 and sorted(POST_FORM.findall(page.text)) == sorted([path, "/console/logout"])
    assert "Revoke the key ops" in page.text and 'name="manage"' in page.text
    assert confirm.status_code == 200 and revoked.status_code == 303 and refused.status_code == 401
    assert [(entry["action"], entry["target_id"]) for entry in audit["data"]] == [
        ("key.revoked", new_id.group(1)), ("key.created", new_id.group(1))]
    assert audit["data"][1]["after"]["manage"] is True and audit["data"][1]["after"]["allowed_endpoints"] == ["chat"]
    assert keys == {"default": True, "ops": True, "svc": False}


async def test_console_manage_session_may_not_grant_more_than_its_own_scopes(sqlite_url: str,
                                                                             clean_redis: str) -> None:
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        tenant_id = await _tenant(client, "acme")
        manager = await _key(client, tenant_id, name="ops", manage=True, allowed_models=["gpt-4o*"],
                             allowed_endpoints=["chat", "models"], expires_at="2099-01-01T00:00:00Z")
        await _sign_in(client, str(manager["api_key"]))
        path = f"/console/tenants/{tenant_id}/keys"
        token = await _csrf(client, path)
        scoped = {"allowed_models": "gpt-4o-mini", "allowed_endpoints": "chat", "expires_at": "2098-01-01T00:00"}

        async def issue(name: str, **changes: str) -> httpx.Response:
            return await client.post(path, data={"name": name, "csrf_token": token, **scoped, **changes})

        refused = {field: await issue("x", **{field: value}) for field, value in (
            ("allowed_models", "claude-3"), ("allowed_endpoints", "jobs"), ("expires_at", "2100-01-01T00:00"))}
        widened_glob = await issue("x", allowed_models="gpt-4*")
        every_model = await issue("x", allowed_models="")
        no_expiry = await issue("x", expires_at="")
        within = await issue("narrow")
        same_glob = await issue("same", allowed_models="gpt-4o*, gpt-4o-mini")
        keys = await _keys(client, tenant_id)
    for field, answer in refused.items():
        assert answer.status_code == 400 and field in answer.text, (field, answer.text)
    for answer in (widened_glob, every_model):
        assert answer.status_code == 400 and "allowed_models" in answer.text and "not within" in answer.text
    assert no_expiry.status_code == 400 and "expires_at" in no_expiry.text
    assert within.status_code == 201 and same_glob.status_code == 201
    assert keys == {"default": True, "ops": True, "narrow": True, "same": True}


async def test_console_manage_session_is_refused_other_tenants_and_the_operators_forms(
    sqlite_url: str, clean_redis: str
) -> None:
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        tenant_id, other_id = await _tenant(client, "acme"), await _tenant(client, "other")
        manager = await _key(client, tenant_id, name="ops", manage=True)
        other_key = await _key(client, other_id, name="theirs")
        await _sign_in(client, str(manager["api_key"]))
        token = await _csrf(client, f"/console/tenants/{tenant_id}/keys")
        form = {"csrf_token": token}
        not_found = [
            await client.post(f"/console/tenants/{other_id}/keys", data={**form, "name": "mine-now"}),
            await client.post(f"/console/tenants/{other_id}/keys/{other_key['id']}/revoke", data=form),
            await client.post(f"/console/tenants/{tenant_id}/keys/{other_key['id']}/revoke", data=form),
            await client.get(f"/console/tenants/{other_id}/keys/{other_key['id']}/revoke"),
        ]
        forbidden = [
            await client.post(f"/console/tenants/{tenant_id}", data={**form, "rate_limit": "1000000"}),
            await client.post(f"/console/tenants/{tenant_id}/disable", data=form),
            await client.post(f"/console/tenants/{tenant_id}/enable", data=form),
            await client.post("/console/tenants", data={**form, "name": "new"}),
        ]
        tenant_page = await client.get(f"/console/tenants/{tenant_id}")
        tenant = (await client.get(f"/api/v1/admin/tenants/{tenant_id}", headers=ADMIN_HEADERS)).json()
        other_keys = await _keys(client, other_id)
        # The scope is read on every change: an operator taking it away refuses the same session's next write.
        await client.patch(f"/api/v1/admin/tenants/{tenant_id}/keys/{manager['id']}", json={"manage": False},
                           headers=ADMIN_HEADERS)
        after = await client.post(f"/console/tenants/{tenant_id}/keys", data={**form, "name": "late"})
    assert [answer.status_code for answer in not_found] == [404] * 4
    assert [answer.status_code for answer in forbidden] == [403] * 4
    assert POST_FORM.findall(tenant_page.text) == ["/console/logout"]
    assert tenant["rate_limit"] is None and not tenant["disabled"]
    assert other_keys == {"default": True, "theirs": True}
    assert after.status_code == 403 and "manage scope" in after.text


async def test_console_tenant_session_without_manage_is_refused_every_key_write(sqlite_url: str,
                                                                                clean_redis: str) -> None:
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        tenant_id = await _tenant(client, "acme")
        plain = await _key(client, tenant_id, name="ci")
        await _sign_in(client, str(plain["api_key"]))
        path = f"/console/tenants/{tenant_id}/keys"
        page = await client.get(path)
        token = await _csrf(client, path)
        refused = [
            await client.post(path, data={"name": "x", "csrf_token": token}),
            await client.get(f"{path}/{plain['id']}/revoke"),
            await client.post(f"{path}/{plain['id']}/revoke", data={"csrf_token": token}),
        ]
        keys = await _keys(client, tenant_id)
    assert page.status_code == 200 and POST_FORM.findall(page.text) == ["/console/logout"]
    assert "Revoke…" not in page.text and 'name="manage"' not in page.text
    assert [answer.status_code for answer in refused] == [403] * 3
    assert keys == {"default": True, "ci": True}


async def test_a_key_revoked_from_the_console_silences_its_budget_alerts(
    sqlite_url: str, clean_redis: str, raw: redis.asyncio.Redis
) -> None:
    """As the admin API's revoke does: the key's alert stays listed, its mirror (what workers watch) is gone."""
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN, secret_key=SECRET,
                          webhook_secret="whsec-test", webhooks_allow_private=True) as client:
        tenant_id = await _tenant(client, "acme")
        budgeted = await _key(client, tenant_id, name="ci", budget_usd=2.0)
        alerts = f"/api/v1/admin/tenants/{tenant_id}/budget-alerts"
        alert = await client.post(alerts, json={"url": "http://127.0.0.1:9/k", "key_id": budgeted["id"]},
                                  headers=ADMIN_HEADERS)
        assert alert.status_code == 201, alert.text
        assert await raw.exists(budget_alerts_key(str(budgeted["id"])))
        assert (await _sign_in(client, ADMIN)).status_code == 303
        path = f"/console/tenants/{tenant_id}/keys"
        revoked = await client.post(f"{path}/{budgeted['id']}/revoke", data={"csrf_token": await _csrf(client, path)})
        listed = (await client.get(alerts, headers=ADMIN_HEADERS)).json()["data"]
    assert revoked.status_code == 303, revoked.text
    assert not await raw.exists(budget_alerts_key(str(budgeted["id"])))
    assert [entry["id"] for entry in listed] == [alert.json()["id"]]
