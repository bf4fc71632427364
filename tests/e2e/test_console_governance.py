# ruff: noqa: F811 - the fixtures imported from tests/e2e/console_gateway.py are parameters here
"""The console's governance pages in a real browser (Debian's chromium through Playwright) against a gateway on
real Redis and PostgreSQL: an admin issues a scoped key, its completion appears in the request log and on the
usage chart, revoking it refuses the next request; a viewer finds no write control and every console write
refused; a tenant session sees no other tenant's keys or requests; a `<script>` key name is text. Each new page
is screenshotted (tests/e2e/console_gateway.py)."""

import asyncio
import re
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import httpx
from fastapi.routing import APIRoute
from playwright.async_api import BrowserContext, Page, expect
from starlette.routing import BaseRoute

from api.main import create_app
from shared.config import Settings
from shared.db.engine import create_engine, create_session_factory
from shared.tenants import new_api_key
from tests.e2e.conftest import Gateway
from tests.e2e.console_gateway import (  # noqa: F401 (fixtures)
    ConsoleGateway,
    browser,
    console_gateway,
    context,
    sign_in,
    watch_errors,
)
from tests.e2e.test_console import XSS_NAME, _api_tenant, _create_tenant_in_form, _csrf_token

CHAT = [{"role": "user", "content": "hi"}]
ATTRIBUTION = {"x-gateway-user": "console-user", "x-gateway-tags": "team=search"}
NOT_WRITES = {"/console/login", "/console/logout"}  # signing in and out change no gateway state


async def _chat(base_url: str, key: str, model: str = "console-fast", **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        return await http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}", **headers},
                               json={"model": model, "messages": CHAT, "max_tokens": 20})


async def _issue_key_in_form(page: Page, tenant_id: str, name: str) -> str:
    await page.goto(f"/console/tenants/{tenant_id}/keys")
    await page.get_by_label("Key name").fill(name)
    await page.get_by_label("Allowed models").fill("console-*")
    await page.get_by_label("chat", exact=True).check()
    await page.get_by_label("Requests per minute").fill("1,000")
    await page.get_by_label("Budget (USD)").fill("5")
    expiry = datetime.now(UTC) + timedelta(days=30)
    await page.get_by_label("Expires (UTC)").fill(expiry.strftime("%Y-%m-%dT%H:%M"))
    await page.get_by_role("button", name="Issue key").click()
    secret = (await page.locator("#new-key").text_content() or "").strip()
    assert secret.startswith("gw-"), await page.content()
    return secret


def _post_paths(routes: Sequence[BaseRoute]) -> Iterator[str]:
    """Every POST route's path, descending into included routers (FastAPI 0.165 keeps them nested)."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from _post_paths(nested.routes)
        elif isinstance(route, APIRoute) and "POST" in route.methods:
            yield route.path


async def _wait_for_row(page: Page, url: str, text: str) -> None:
    """Usage reaches PostgreSQL through the usage stream, a moment after the answer: reload until it is there."""
    for _ in range(50):
        await page.goto(url)
        if await page.locator("#requests tbody tr", has_text=text).count():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"no request log row with {text!r} at {url}")


async def _wait_for_last_use(page: Page, tenant_id: str, name: str) -> None:
    """The key's `last_used_at` is written in the background after its first request: the keys page shows it."""
    last_used = page.locator("#keys tbody tr", has_text=name).locator("td").nth(3)
    for _ in range(50):
        await page.goto(f"/console/tenants/{tenant_id}/keys")
        if await last_used.locator("time").count():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the keys page never showed a last use of {name}: {await last_used.text_content()}")


async def _open_in_request_log(page: Page, console_gateway: ConsoleGateway, tenant_id: str, name: str) -> None:
    """Filter the request log by the tenant and the key, find the key's one request and open it."""
    await page.goto(f"/console/requests?tenant_id={tenant_id}")
    await page.locator("select[name=key]").select_option(label=name)
    await page.get_by_role("button", name="Show").click()
    await _wait_for_row(page, page.url, "console-fast")
    await expect(page.locator("#requests tbody tr")).to_have_count(1)
    await expect(page.locator("#requests tbody tr")).to_contain_text(name)
    await console_gateway.screenshot(page, "requests")
    await page.locator("#requests tbody tr a").first.click()
    await expect(page.locator("#request-status")).to_have_text("succeeded")
    await expect(page.locator("#request-facts")).to_contain_text(name)
    await console_gateway.screenshot(page, "request")


async def _usage_by_key_user_and_tag(page: Page, console_gateway: ConsoleGateway, tenant_id: str,
                                     name: str) -> None:
    """The usage page's chart counts the key's request; its breakdowns by key, user and a tag (chosen in the
    form) and the CSV export each hold it, attributed."""
    await page.goto(f"/console/usage?tenant_id={tenant_id}&days=7")
    today_bar = page.locator("figure", has_text="Requests").locator("rect.bar").last
    assert await today_bar.get_attribute("data-value") == "1"
    await page.get_by_label("Break down by tag").fill("team")
    await page.get_by_role("button", name="Show").click()
    for table, label in (("key", re.compile(rf"^{name} \(key_\w+\)$")), ("user", "console-user"), ("tag", "search")):
        rows = page.locator(f"#usage-by-{table} tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.locator("td").nth(0)).to_have_text(label)
        await expect(rows.locator("td").nth(1)).to_have_text("1")  # requests
    await expect(page.get_by_role("heading", name="By tag team")).to_be_visible()
    await console_gateway.screenshot(page, "usage-breakdowns")
    exported = await page.request.get(await page.get_by_role("link", name="Export CSV").get_attribute("href") or "")
    rows = (await exported.text()).splitlines()
    assert exported.ok and any(row.startswith(f"key,{name} (key_") and ",1," in row for row in rows), rows
    assert any(row.startswith("user,console-user,1,") for row in rows), rows
    assert any(row.startswith("tag:team,search,1,") for row in rows), rows


async def _revoke_in_console(page: Page, console_gateway: ConsoleGateway, tenant_id: str, name: str) -> str:
    """Revoke the key through its confirmation page; returns its id."""
    await page.goto(f"/console/tenants/{tenant_id}/keys")
    revoke = page.get_by_role("link", name=f"Revoke the key {name}")
    key_id = re.search(r"/keys/([^/]+)/revoke$", await revoke.get_attribute("href") or "")
    assert key_id, await page.content()
    await revoke.click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    await console_gateway.screenshot(page, "key-revoke")
    await page.get_by_role("button", name="Revoke key").click()
    await expect(page.get_by_role("status")).to_contain_text("Key revoked")
    await expect(page.locator("#keys tbody tr", has_text=name)).to_contain_text("revoked")
    return key_id.group(1)


async def test_console_admin_issues_a_scoped_key_sees_its_request_and_revokes_it(
    context: BrowserContext, console_gateway: ConsoleGateway
) -> None:
    page = await context.new_page()
    errors = watch_errors(page)
    await sign_in(page, console_gateway.admin_key)
    tenant_id, _ = await _create_tenant_in_form(page, f"gov-{uuid.uuid4().hex[:8]}")
    name = f"svc-{uuid.uuid4().hex[:6]}"
    secret = await _issue_key_in_form(page, tenant_id, name)
    row = page.locator("#keys tbody tr", has_text=name)
    await expect(row).to_contain_text("Models: console-*")
    await expect(row).to_contain_text("Endpoints: chat")
    await expect(row).to_contain_text("1,000 requests/min")
    await expect(row).to_contain_text("Budget $5.00 monthly")
    await expect(row.locator("td").nth(4).locator("time")).to_have_attribute("datetime", re.compile(r"\+00:00$"))
    await console_gateway.screenshot(page, "key-created")
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.get_by_role("button", name="Copy").click()
    await expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    await page.goto(f"/console/tenants/{tenant_id}/keys")  # shown once: the page read again no longer has it
    await expect(page.locator("#new-key")).to_have_count(0)
    assert secret not in await page.content()
    await page.set_viewport_size({"width": 390, "height": 844})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390  # readable at a phone's width
    await page.set_viewport_size({"width": 1280, "height": 900})
    answered = await _chat(console_gateway.base_url, secret, **ATTRIBUTION)
    assert answered.status_code == 200, answered.text
    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=10) as http:
        outside = await http.post("/v1/messages", headers={"x-api-key": secret},
                                  json={"model": "console-fast", "max_tokens": 5, "messages": CHAT})
    assert outside.status_code == 403 and "endpoint" in outside.text  # the scopes the form set apply

    await _open_in_request_log(page, console_gateway, tenant_id, name)
    await _wait_for_last_use(page, tenant_id, name)

    await _usage_by_key_user_and_tag(page, console_gateway, tenant_id, name)

    key_id = await _revoke_in_console(page, console_gateway, tenant_id, name)
    refused = await _chat(console_gateway.base_url, secret)
    assert refused.status_code == 401, refused.text

    await page.goto(f"/console/audit?target_id={key_id}")
    rows = page.locator("#audit tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text("console key.revoked api_key")
    await expect(rows.nth(1)).to_contain_text("console key.created api_key")
    await console_gateway.screenshot(page, "audit")
    assert errors == []


async def test_console_viewer_finds_no_write_control_and_every_write_refused(
    context: BrowserContext, console_gateway: ConsoleGateway
) -> None:
    admin = {"X-API-Key": console_gateway.admin_key}
    tenant_id, tenant_key = await _api_tenant(console_gateway, f"viewed-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=10) as http:
        viewer = (await http.post("/api/v1/admin/keys", headers=admin,
                                  json={"name": f"viewer-{uuid.uuid4().hex[:6]}", "role": "viewer"})).json()
        key_id = (await http.get(f"/api/v1/admin/tenants/{tenant_id}/keys", headers=admin)).json()["data"][0]["id"]
        job = (await http.post("/api/v1/jobs", headers={"X-API-Key": tenant_key},
                               json={"model": "console-slow", "messages": CHAT})).json()
    page = await context.new_page()
    await sign_in(page, viewer["api_key"])
    await expect(page.locator(".who")).to_have_text("viewer")
    for path in ("/console/", "/console/tenants", f"/console/tenants/{tenant_id}",
                 f"/console/tenants/{tenant_id}/keys", f"/console/requests?tenant_id={tenant_id}",
                 "/console/usage", f"/console/jobs?tenant_id={tenant_id}", f"/console/jobs/{job['id']}",
                 "/console/routes", "/console/webhooks", "/console/audit"):
        response = await page.goto(path)
        assert response is not None and response.status == 200, path
        actions = [await form.get_attribute("action") for form in await page.locator("form[method=post i]").all()]
        assert actions == ["/console/logout"], (path, actions)
    await page.goto(f"/console/tenants/{tenant_id}/keys")
    await console_gateway.screenshot(page, "viewer-keys")

    ids = {"tenant_id": tenant_id, "key_id": key_id, "job_id": job["id"]}
    writes = sorted(path for path in _post_paths(create_app(Settings(_env_file=None)).routes)
                    if path.startswith("/console") and path not in NOT_WRITES)
    assert {"/console/tenants/{tenant_id}/keys", "/console/jobs/{job_id}/cancel"} <= set(writes), writes
    token = await _csrf_token(page, "/console/")
    for path in writes:
        url = re.sub(r"\{(\w+)\}", lambda match: ids[match.group(1)], path)
        refused = await page.request.post(url, form={"csrf_token": token, "name": "x", "ids": "1-0"})
        assert refused.status == 403, (url, refused.status, await refused.text())
        assert "may read but not change" in await refused.text(), url  # refused for the role, not the token
    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=10) as http:
        keys = (await http.get(f"/api/v1/admin/tenants/{tenant_id}/keys", headers=admin)).json()["data"]
        tenant = (await http.get(f"/api/v1/admin/tenants/{tenant_id}", headers=admin)).json()
        await http.post(f"/api/v1/jobs/{job['id']}/cancel", headers={"X-API-Key": tenant_key})
    assert [key["id"] for key in keys] == [key_id] and not tenant["disabled"]


async def test_console_tenant_session_sees_no_other_tenant_on_keys_and_request_log(
    context: BrowserContext, console_gateway: ConsoleGateway
) -> None:
    own_id, own_key = await _api_tenant(console_gateway, f"log-own-{uuid.uuid4().hex[:8]}")
    other_id, other_key = await _api_tenant(console_gateway, f"log-other-{uuid.uuid4().hex[:8]}")
    for key in (own_key, other_key):
        assert (await _chat(console_gateway.base_url, key)).status_code == 200
    page = await context.new_page()
    await sign_in(page, own_key)
    await _wait_for_row(page, "/console/requests", "console-fast")
    await expect(page.locator("#requests tbody tr")).to_have_count(1)
    await expect(page.locator("select[name=tenant_id]")).to_have_count(0)
    own_request = await page.locator("#requests tbody tr a").first.text_content() or ""
    assert other_id not in await page.content()
    await console_gateway.screenshot(page, "tenant-requests")
    await page.goto(f"/console/tenants/{own_id}/keys")
    await expect(page.locator("#keys tbody tr")).to_have_count(1)
    await expect(page.get_by_role("button", name="Issue key")).to_have_count(0)
    await expect(page.get_by_role("link", name=re.compile("^Revoke"))).to_have_count(0)
    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=10) as http:
        other_log = (await http.get("/api/v1/requests", headers={"X-API-Key": other_key})).json()["data"]
    for path in (f"/console/tenants/{other_id}/keys", f"/console/requests?tenant_id={other_id}",
                 f"/console/requests/{other_id}/{other_log[0]['id']}",
                 f"/console/requests/{own_id}/{other_log[0]['id']}"):
        response = await page.goto(path)
        assert response is not None and response.status == 404, path
    response = await page.goto("/console/audit")
    assert response is not None and response.status == 403
    response = await page.goto(f"/console/requests/{own_id}/{own_request.strip()}")
    assert response is not None and response.status == 200


async def test_console_renders_a_script_key_name_as_text(
    context: BrowserContext, console_gateway: ConsoleGateway, gateway: Gateway
) -> None:
    # The console's form and the admin API refuse such a name; a key written by another tool does not go
    # through them, so it is written straight to the database here and the console must still escape it.
    tenant_id, _ = await _api_tenant(console_gateway, f"xss-keys-{uuid.uuid4().hex[:8]}")
    engine = create_engine(gateway.env["DATABASE_URL"])
    try:
        async with create_session_factory(engine)() as db:
            row, _ = new_api_key(tenant_id, XSS_NAME)
            db.add(row)
            await db.commit()
            key_id = row.id
    finally:
        await engine.dispose()
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), asyncio.ensure_future(dialog.dismiss())))
    await sign_in(page, console_gateway.admin_key)
    await page.goto(f"/console/tenants/{tenant_id}/keys")
    await expect(page.locator("#keys td.name", has_text=XSS_NAME)).to_have_text(XSS_NAME)
    await page.goto(f"/console/tenants/{tenant_id}/keys/{key_id}/revoke")
    await expect(page.locator("h1 .name")).to_have_text(XSS_NAME)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in await page.content()
    assert dialogs == []
