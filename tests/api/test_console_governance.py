"""The console's governance rules in process (tests/e2e/test_console_governance.py drives them in a browser):
named admin keys sign in with their role, a viewer's session renders no write form and every write is refused,
a deleted admin key ends its sessions, changes are audited under the key's id, bad key forms are 400 pages,
the audit log is for operators only, usage breaks down by key, user and tag, and the request log's filters."""

import re
from datetime import UTC, datetime, timedelta

import httpx

from shared.admin_keys import create_admin_key
from shared.db.engine import create_engine, create_session_factory
from shared.db.usage import insert_usage
from tests.api.conftest import REDIS_URL, app_client, make_tenant_key
from tests.api.test_console import ADMIN, SECRET, _sign_in
from tests.shared.db_support import usage_row

ADMIN_HEADERS = {"X-API-Key": ADMIN}
POST_FORM = re.compile(r'<form[^>]*method="post"[^>]*action="([^"]+)"')


async def _admin_key(client: httpx.AsyncClient, role: str) -> tuple[str, str]:
    created = await client.post("/api/v1/admin/keys", json={"name": f"console-{role}", "role": role},
                                headers=ADMIN_HEADERS)
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["api_key"]


async def _csrf(client: httpx.AsyncClient, path: str = "/console/tenants") -> str:
    page = await client.get(path)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    return token.group(1)


async def _tenant_id(client: httpx.AsyncClient, key: str) -> str:
    return str((await client.get("/api/v1/usage", headers={"X-API-Key": key})).json()["tenant_id"])


async def test_console_named_admin_key_changes_are_audited_as_its_id(sqlite_url: str, clean_redis: str) -> None:
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        key_id, plain = await _admin_key(client, "admin")
        assert (await _sign_in(client, plain)).status_code == 303
        token = await _csrf(client)
        created = await client.post("/console/tenants", data={"name": "by-named-admin", "csrf_token": token})
        assert created.status_code == 201, created.text
        tenant_id = re.search(r"ten_[0-9a-f]+", created.text)
        assert tenant_id
        issued = await client.post(f"/console/tenants/{tenant_id.group(0)}/keys",
                                   data={"name": "svc", "allowed_models": "console-*, gpt-4o",
                                         "allowed_endpoints": "chat", "rate_limit": "1,000", "csrf_token": token})
        assert issued.status_code == 201, issued.text
        audit = (await client.get("/api/v1/admin/audit", params={"actor": key_id}, headers=ADMIN_HEADERS)).json()
    assert [entry["action"] for entry in audit["data"]] == ["key.created", "tenant.created"]
    key = audit["data"][0]["after"]
    assert key["allowed_models"] == ["console-*", "gpt-4o"] and key["allowed_endpoints"] == ["chat"]
    assert key["rate_limit"] == 1000 and key["expires_at"] is None


async def test_console_viewer_session_shows_no_write_form_and_is_refused_every_write(
    sqlite_url: str, clean_redis: str
) -> None:
    tenant_key = await make_tenant_key(sqlite_url)
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        tenant_id = await _tenant_id(client, tenant_key)
        _, plain = await _admin_key(client, "viewer")
        assert (await _sign_in(client, plain)).status_code == 303
        for path in ("/console/", "/console/tenants", f"/console/tenants/{tenant_id}",
                     f"/console/tenants/{tenant_id}/keys", "/console/requests", "/console/audit",
                     "/console/webhooks"):
            page = await client.get(path)
            assert page.status_code == 200, path
            assert POST_FORM.findall(page.text) == ["/console/logout"], path
        token = await _csrf(client)
        refused = await client.post(f"/console/tenants/{tenant_id}/keys", data={"name": "x", "csrf_token": token})
        confirm = await client.get(f"/console/tenants/{tenant_id}/keys/key_x/revoke")
        keys = (await client.get(f"/api/v1/admin/tenants/{tenant_id}/keys", headers=ADMIN_HEADERS)).json()
    assert refused.status_code == 403 and "may read but not change" in refused.text
    assert confirm.status_code == 403
    assert [key["name"] for key in keys["data"]] == ["default"]


async def test_console_session_ends_when_its_admin_key_is_deleted(sqlite_url: str, clean_redis: str) -> None:
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        key_id, plain = await _admin_key(client, "admin")
        await _sign_in(client, plain)
        assert (await client.get("/console/audit")).status_code == 200
        deleted = await client.delete(f"/api/v1/admin/keys/{key_id}", headers=ADMIN_HEADERS)
        assert deleted.status_code == 200
        after = await client.get("/console/audit")
        again = await _sign_in(client, plain)
    assert after.status_code == 303 and after.headers["location"].startswith("/console/login")
    assert again.status_code == 401 and "unknown or has been deleted" in again.text


async def test_console_named_admin_key_is_refused_while_the_admin_api_is_disabled(
    sqlite_url: str, clean_redis: str
) -> None:
    engine = create_engine(sqlite_url)
    try:
        async with create_session_factory(engine)() as db:
            _, plain = await create_admin_key(db, "orphan", "admin")
            await db.commit()
    finally:
        await engine.dispose()
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, secret_key=SECRET) as client:
        refused = await _sign_in(client, plain)
    assert refused.status_code == 401 and "gw_console=" not in refused.headers.get("set-cookie", "")


async def test_console_key_form_with_bad_scopes_is_a_400_page(sqlite_url: str, clean_redis: str) -> None:
    tenant_key = await make_tenant_key(sqlite_url)
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        tenant_id = await _tenant_id(client, tenant_key)
        await _sign_in(client, ADMIN)
        token = await _csrf(client)
        path = f"/console/tenants/{tenant_id}/keys"
        answers = [await client.post(path, data={"csrf_token": token, **form}) for form in (
            {"name": "<script>"}, {"name": "ok", "rate_limit": "many"}, {"name": "ok", "expires_at": "soon"},
            {"name": "ok", "allowed_endpoints": "telepathy"}, {"name": "ok", "budget_usd": "-1"})]
        taken = await client.post(path, data={"csrf_token": token, "name": "default"})
    assert [answer.status_code for answer in answers] == [400] * 5
    assert "Invalid API key" in answers[1].text and "is not a time" in answers[2].text
    assert "unknown endpoint" in answers[3].text
    assert taken.status_code == 409 and "already has an active key named" in taken.text


async def test_console_audit_and_other_tenants_requests_are_hidden_from_a_tenant_session(
    sqlite_url: str, clean_redis: str
) -> None:
    tenant_key = await make_tenant_key(sqlite_url)
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        other = (await client.post("/api/v1/admin/tenants", json={"name": "other"}, headers=ADMIN_HEADERS)).json()
        await _sign_in(client, tenant_key)
        audit = await client.get("/console/audit")
        other_log = await client.get("/console/requests", params={"tenant_id": other["id"]})
        other_keys = await client.get(f"/console/tenants/{other['id']}/keys")
        own_keys = await client.get(f"/console/tenants/{await _tenant_id(client, tenant_key)}/keys")
    assert audit.status_code == 403 and other_log.status_code == 404 and other_keys.status_code == 404
    assert own_keys.status_code == 200 and POST_FORM.findall(own_keys.text) == ["/console/logout"]


async def test_console_tenant_form_sets_and_clears_its_allow_list_and_content_days(
    sqlite_url: str, clean_redis: str
) -> None:
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        assert (await _sign_in(client, ADMIN)).status_code == 303
        token = await _csrf(client)
        created = await client.post("/console/tenants", data={"name": "scoped", "csrf_token": token})
        tenant_id = re.search(r"ten_[0-9a-f]+", created.text)
        assert created.status_code == 201 and tenant_id
        path = f"/console/tenants/{tenant_id.group(0)}"
        saved = await client.post(path, data={"allowed_models": "gpt-4o*\nclaude-*", "log_content_days": "7",
                                              "budget_period": "monthly", "csrf_token": token})
        assert saved.status_code in (200, 303), saved.text
        tenant = (await client.get(f"/api/v1/admin/tenants/{tenant_id.group(0)}", headers=ADMIN_HEADERS)).json()
        assert tenant["allowed_models"] == ["gpt-4o*", "claude-*"] and tenant["log_content_days"] == 7
        page = (await client.get(path)).text
        assert "gpt-4o*, claude-*" in page
        bad = await client.post(path, data={"log_content_days": "9999", "csrf_token": token})
        assert bad.status_code == 400 and "log_content_days" in bad.text
        cleared = await client.post(path, data={"allowed_models": "", "budget_period": "monthly",
                                                "csrf_token": token})
        assert cleared.status_code in (200, 303), cleared.text
        tenant = (await client.get(f"/api/v1/admin/tenants/{tenant_id.group(0)}", headers=ADMIN_HEADERS)).json()
    assert tenant["allowed_models"] is None and tenant["log_content_days"] is None


async def test_console_usage_breaks_down_by_key_user_and_tag_and_exports_them(
    sqlite_url: str, clean_redis: str
) -> None:
    tenant_key = await make_tenant_key(sqlite_url)
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        tenant_id = await _tenant_id(client, tenant_key)
        keys = (await client.get(f"/api/v1/admin/tenants/{tenant_id}/keys", headers=ADMIN_HEADERS)).json()["data"]
        engine = create_engine(sqlite_url)
        try:
            await insert_usage(engine, [
                usage_row("u1", tenant_id=tenant_id, key_id=keys[0]["id"], end_user="=cmd()", tags={"team": "ads"}),
                usage_row("u2", tenant_id=tenant_id, key_id=keys[0]["id"], end_user=None, tags={})])
        finally:
            await engine.dispose()
        await _sign_in(client, ADMIN)
        page = await client.get("/console/usage", params={"tenant_id": tenant_id, "days": 7, "tag": "team"})
        exported = await client.get("/console/usage.csv", params={"tenant_id": tenant_id, "days": 7, "tag": "team"})
        bad = await client.get("/console/usage", params={"tenant_id": tenant_id, "tag": "no spaces"})
    assert page.status_code == 200 and "By tag team" in page.text
    assert f"<td>default ({keys[0]['id']})</td><td class=\"num\">2</td>" in page.text
    assert "<td>=cmd()</td>" in page.text and "<td>(none)</td>" in page.text
    lines = exported.text.splitlines()
    assert any(line.startswith(f"key,default ({keys[0]['id']}),2,") for line in lines), lines
    assert any(line.startswith("user,'=cmd(),1,") for line in lines), lines  # no formula in a spreadsheet
    assert any(line.startswith("tag:team,ads,1,") for line in lines) and any(
        line.startswith("tag:team,(none),1,") for line in lines), lines
    assert bad.status_code == 400 and "tag key" in bad.text


async def test_console_request_log_filters_by_key_model_status_and_time(sqlite_url: str, clean_redis: str) -> None:
    tenant_key = await make_tenant_key(sqlite_url)
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        tenant_id = await _tenant_id(client, tenant_key)
        key_id = (await client.get(f"/api/v1/admin/tenants/{tenant_id}/keys",
                                   headers=ADMIN_HEADERS)).json()["data"][0]["id"]
        engine = create_engine(sqlite_url)
        try:
            await insert_usage(engine, [
                usage_row("req_old", tenant_id=tenant_id, key_id=key_id, created_at=hour_ago - timedelta(hours=1)),
                usage_row("req_failed", tenant_id=tenant_id, key_id=key_id, status="failed", created_at=hour_ago),
                usage_row("req_other_model", tenant_id=tenant_id, key_id=key_id, public_model="claude-x"),
                usage_row("req_no_key", tenant_id=tenant_id, key_id=None)])
        finally:
            await engine.dispose()
        await _sign_in(client, ADMIN)

        async def shown(**filters: str) -> list[str]:
            page = await client.get("/console/requests", params={"tenant_id": tenant_id, **filters})
            assert page.status_code == 200, page.text
            return re.findall(r"<code>(req_\w+)</code>", page.text)

        assert await shown() == ["req_no_key", "req_other_model", "req_failed", "req_old"]
        assert await shown(key=key_id) == ["req_other_model", "req_failed", "req_old"]
        assert await shown(model="claude-x") == ["req_other_model"]
        assert await shown(status="failed") == ["req_failed"]
        since = (hour_ago - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
        until = (hour_ago + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
        assert await shown(since=since, until=until) == ["req_failed"]
        bad = await client.get("/console/requests", params={"tenant_id": tenant_id, "since": "yesterday"})
    assert bad.status_code == 400 and "is not a time" in bad.text
