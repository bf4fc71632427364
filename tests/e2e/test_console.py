# ruff: noqa: F811 - the fixtures imported from tests/e2e/console_gateway.py are parameters here
"""The admin console in a real browser (Debian's chromium through Playwright) against a gateway on real Redis
and PostgreSQL: sign in, create a tenant, run a completion with its key and find it on the usage page and its
chart, watch a running job's tokens arrive and cancel it from its page, a tenant's session confined to its
tenant; and the security properties: escaping, CSRF and origin checks, the CSP, cookie flags, sign-out.
Every page is screenshotted (tests/e2e/console_gateway.py)."""

import asyncio
import os
import re
import uuid

import httpx
import openai
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from sqlmodel import select

from shared.db.engine import create_engine, create_session_factory
from shared.db.tables import Tenant
from shared.tenants import create_tenant
from tests.e2e.conftest import Gateway
from tests.e2e.console_gateway import (  # noqa: F401 (fixtures)
    ConsoleGateway,
    browser,
    console_gateway,
    context,
    sign_in,
    watch_errors,
)
from tests.e2e.test_embedded import SERVICE_VARIABLES
from tests.support.processes import Process, free_port, wait_http

XSS_NAME = "<script>alert(1)</script>"


async def _create_tenant_in_form(page: Page, name: str) -> tuple[str, str]:
    await page.goto("/console/tenants")
    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_label("Requests per minute").fill("1,000")
    await page.get_by_role("button", name="Create tenant").click()
    key = (await page.locator("#new-key").text_content() or "").strip()
    tenant_id = re.search(r"ten_[0-9a-f]+", await page.locator("main").inner_text())
    assert key.startswith("gw-") and tenant_id, await page.content()
    return tenant_id.group(0), key


async def _api_tenant(console_gateway: ConsoleGateway, name: str) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=10) as http:
        response = await http.post("/api/v1/admin/tenants", json={"name": name},
                                   headers={"X-API-Key": console_gateway.admin_key})
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["api_key"]


async def test_console_admin_creates_tenant_and_sees_its_completion_in_usage(
    context: BrowserContext, console_gateway: ConsoleGateway
) -> None:
    page = await context.new_page()
    errors = watch_errors(page)
    await sign_in(page, console_gateway.admin_key)
    tenant_id, key = await _create_tenant_in_form(page, f"console-{uuid.uuid4().hex[:8]}")
    await expect(page.locator("#tenant-state")).to_have_text("active")
    await console_gateway.screenshot(page, "tenant-created")
    sdk = openai.AsyncOpenAI(base_url=f"{console_gateway.base_url}/v1", api_key=key, max_retries=0)
    try:
        answer = await sdk.chat.completions.create(model="console-fast", messages=[{"role": "user", "content": "hi"}])
    finally:
        await sdk.close()
    assert answer.choices[0].message.content
    # Usage lands in PostgreSQL through the usage stream: wait for the report to count it.
    for _ in range(50):
        await page.goto(f"/console/usage?tenant_id={tenant_id}&days=7")
        if (await page.locator("#usage-requests").text_content()) == "1":
            break
        await asyncio.sleep(0.2)
    await expect(page.locator("#usage-requests")).to_have_text("1")
    await expect(page.locator("#usage-by-model")).to_contain_text("console-fast")
    today_bar = page.locator("figure", has_text="Requests").locator("rect.bar").last
    assert await today_bar.get_attribute("data-value") == "1"
    assert float(await today_bar.get_attribute("height") or 0) > 0
    await console_gateway.screenshot(page, "usage")
    csv = await page.request.get(f"/console/usage.csv?tenant_id={tenant_id}&days=7")
    assert csv.ok and "model,console-fast,1," in await csv.text()
    for name, path in [("overview", "/console/"), ("tenants", "/console/tenants"), ("routes", "/console/routes"),
                       ("jobs", f"/console/jobs?tenant_id={tenant_id}")]:
        response = await page.goto(path)
        assert response is not None and response.status == 200, path
        await console_gateway.screenshot(page, name)
    await expect(page.locator("#jobs")).to_contain_text("succeeded")
    await page.goto(f"/console/tenants/{tenant_id}")
    await page.get_by_label("Budget (USD)").fill("25")
    await page.get_by_label("Scheduling weight").fill("3")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await expect(page.locator(".facts")).to_contain_text("$25.00 monthly")
    await expect(page.get_by_label("Scheduling weight")).to_have_value("3")
    await page.get_by_role("button", name="Disable tenant").click()
    await expect(page.locator("#tenant-state")).to_have_text("disabled")
    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=10) as http:
        refused = await http.get("/api/v1/usage", headers={"X-API-Key": key})
        assert refused.status_code == 403  # at once: the console dropped the tenant's cached snapshot
        await page.get_by_role("button", name="Enable tenant").click()
        await expect(page.locator("#tenant-state")).to_have_text("active")
        assert (await http.get("/api/v1/usage", headers={"X-API-Key": key})).status_code == 200
    assert errors == []


async def test_console_job_page_streams_tokens_and_cancels_the_running_job(
    context: BrowserContext, console_gateway: ConsoleGateway
) -> None:
    _, key = await _api_tenant(console_gateway, f"console-jobs-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=10) as http:
        submitted = await http.post("/api/v1/jobs", headers={"X-API-Key": key},
                                    json={"model": "console-slow", "messages": [{"role": "user", "content": "go"}]})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        page = await context.new_page()
        errors = watch_errors(page)
        await sign_in(page, console_gateway.admin_key)
        await page.goto(f"/console/jobs/{job_id}")
        tokens = page.locator("#job-tokens")
        await expect(tokens).to_contain_text("tok3", timeout=10_000)  # arriving live from the SSE events
        await console_gateway.screenshot(page, "job-streaming")
        seen = await tokens.text_content() or ""
        await page.get_by_role("button", name="Cancel job").click()
        await expect(page.locator("#job-status")).to_have_text("cancelled", timeout=10_000)
        job = (await http.get(f"/api/v1/jobs/{job_id}", headers={"X-API-Key": key})).json()
    assert job["status"] == "cancelled"
    assert len(seen) > 0 and "tok499" not in (await tokens.text_content() or "")
    await console_gateway.screenshot(page, "job-cancelled")
    assert errors == []


async def test_console_tenant_session_sees_only_its_own_tenant(
    context: BrowserContext, console_gateway: ConsoleGateway
) -> None:
    own_id, own_key = await _api_tenant(console_gateway, f"console-own-{uuid.uuid4().hex[:8]}")
    other_id, other_key = await _api_tenant(console_gateway, f"console-other-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=10) as http:
        other_job = (await http.post("/api/v1/jobs", headers={"X-API-Key": other_key},
                                     json={"model": "console-fast", "messages": [{"role": "user", "content": "x"}]}))
    page = await context.new_page()
    await sign_in(page, own_key)
    await page.goto("/console/tenants")
    rows = page.locator("#tenants tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text(own_id)
    assert other_id not in await page.content()
    await expect(page.get_by_role("button", name="Create tenant")).to_have_count(0)
    await expect(page.get_by_role("link", name="Routes")).to_have_count(0)
    await console_gateway.screenshot(page, "tenant-session")
    for path in (f"/console/tenants/{other_id}", f"/console/jobs/{other_job.json()['id']}",
                 f"/console/usage?tenant_id={other_id}", f"/console/jobs/{other_job.json()['id']}/events"):
        response = await page.goto(path)
        assert response is not None and response.status == 404, path
    for path in ("/console/routes", "/console/webhooks"):
        response = await page.goto(path)
        assert response is not None and response.status == 403, path
    token = await _csrf_token(page, "/console/")
    refused = await page.request.post(f"/console/tenants/{own_id}/disable", form={"csrf_token": token})
    assert refused.status == 403  # a tenant may not change its own limits or state


async def test_console_renders_a_script_tenant_name_as_text(
    context: BrowserContext, console_gateway: ConsoleGateway, gateway: Gateway
) -> None:
    # The admin API and the CLI refuse such a name; a record from before that rule, or written by another tool,
    # does not go through them: written straight to the database here, and the console must still escape it.
    engine = create_engine(gateway.env["DATABASE_URL"])
    try:
        async with create_session_factory(engine)() as db:
            if not (await db.exec(select(Tenant).where(Tenant.name == XSS_NAME))).first():
                await create_tenant(db, XSS_NAME)
    finally:
        await engine.dispose()
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), asyncio.ensure_future(dialog.dismiss())))
    await sign_in(page, console_gateway.admin_key)
    await page.goto("/console/tenants")
    await expect(page.get_by_role("link", name=XSS_NAME)).to_be_visible()
    await page.get_by_role("link", name=XSS_NAME).click()
    await expect(page.locator("h1 .name")).to_have_text(XSS_NAME)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in await page.content()
    assert dialogs == []


async def test_console_refuses_cross_site_and_tokenless_posts(
    context: BrowserContext, console_gateway: ConsoleGateway
) -> None:
    page = await context.new_page()
    await sign_in(page, console_gateway.admin_key)
    token = await _csrf_token(page, "/console/tenants")
    name = f"csrf-{uuid.uuid4().hex[:8]}"
    cookies = {c["name"]: c["value"] for c in await context.cookies()}
    base = console_gateway.base_url
    async with httpx.AsyncClient(base_url=base, cookies=cookies, timeout=10) as http:
        attempts = [
            ({"name": name}, {}),  # no token
            ({"name": name, "csrf_token": "forged"}, {}),  # a wrong one
            ({"name": name, "csrf_token": token}, {"origin": "https://evil.example"}),  # another site's form
            ({"name": name, "csrf_token": token}, {"sec-fetch-site": "cross-site"}),
        ]
        for form, headers in attempts:
            response = await http.post("/console/tenants", data=form, headers=headers)
            assert response.status_code == 403, (form, headers, response.text)
        login = await http.post("/console/login", data={"key": console_gateway.admin_key, "csrf_token": "x"},
                                headers={"origin": "https://evil.example"})
        assert login.status_code == 403
        listed = await http.get("/api/v1/admin/tenants", headers={"X-API-Key": console_gateway.admin_key})
    assert name not in listed.text  # nothing was created
    accepted = await page.request.post("/console/tenants", form={"name": name, "csrf_token": token})
    assert accepted.status == 201  # the same post from the console's own page


async def test_console_headers_forbid_inline_scripts_framing_and_other_origins(
    context: BrowserContext, console_gateway: ConsoleGateway
) -> None:
    page = await context.new_page()
    await sign_in(page, console_gateway.admin_key)
    for path in ("/console/", "/console/login", "/console/static/console.js", "/console/no-such-page"):
        response = await page.request.get(path)
        policy = response.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'", path
        assert directives["frame-ancestors"] == "'none'" and response.headers["x-frame-options"] == "DENY"
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert not re.search(r"https?:|\*", policy), policy
    blocked = await page.evaluate("""() => { const s = document.createElement('script');
        s.textContent = 'window.__inline = 1'; document.body.appendChild(s); return window.__inline === 1; }""")
    assert blocked is False  # the browser enforces it: an inline script does not run
    session = next(c for c in await context.cookies() if c["name"] == "gw_console")
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/console"


async def test_console_sign_out_ends_the_session_on_the_server(
    context: BrowserContext, console_gateway: ConsoleGateway
) -> None:
    page = await context.new_page()
    await sign_in(page, console_gateway.admin_key)
    cookies = {c["name"]: c["value"] for c in await context.cookies()}
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/console/login")
    async with httpx.AsyncClient(base_url=console_gateway.base_url, cookies=cookies, timeout=10) as http:
        replayed = await http.get("/console/tenants")  # the old cookie, still validly signed
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/console/login")
    await page.goto("/console/login")
    await page.get_by_label("Admin key or tenant API key").fill("gw-not-a-key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("neither the admin key nor an active tenant key")


async def test_console_is_readable_at_phone_width(context: BrowserContext, console_gateway: ConsoleGateway) -> None:
    page = await context.new_page()
    await page.set_viewport_size({"width": 390, "height": 844})
    await sign_in(page, console_gateway.admin_key)
    for path in ("/console/", "/console/tenants", "/console/usage", "/console/requests", "/console/audit"):
        await page.goto(path)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
    await page.goto("/console/")
    await page.keyboard.press("Tab")  # the first stop is the skip link, then the navigation
    await expect(page.locator(":focus")).to_have_text("Skip to content")
    await console_gateway.screenshot(page, "overview-phone")


async def _csrf_token(page: Page, path: str) -> str:
    await page.goto(path)
    return await page.locator("input[name=csrf_token]").first.get_attribute("value") or ""


async def test_console_lists_dead_webhooks_and_sends_them_again(
    context: BrowserContext, console_gateway: ConsoleGateway
) -> None:
    _, key = await _api_tenant(console_gateway, f"console-hooks-{uuid.uuid4().hex[:8]}")
    admin = {"X-API-Key": console_gateway.admin_key}
    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=10) as http:
        submitted = await http.post("/api/v1/jobs", headers={"X-API-Key": key}, json={
            "model": "console-fast", "messages": [{"role": "user", "content": "hook"}],
            "callback_url": f"{console_gateway.fake_url}/_stats"})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        for _ in range(100):
            dead = (await http.get("/api/v1/admin/webhooks/dead", headers=admin)).json()["data"]
            if any(entry["job_id"] == job_id for entry in dead):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the delivery of {job_id} was not dead-lettered")
    page = await context.new_page()
    await sign_in(page, console_gateway.admin_key)
    await page.goto("/console/webhooks")
    row = page.locator("#dead-letters tr", has_text=job_id)
    await expect(row).to_contain_text("rejected: HTTP 405")
    await console_gateway.screenshot(page, "webhooks")
    await page.get_by_label(f"Send the delivery of {job_id} again").check()
    await page.get_by_role("button", name="Send again").click()
    await expect(page.get_by_role("status")).to_have_text("Sent again: 1.")


async def test_console_works_in_the_embedded_one_command_mode(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`llm-gateway serve` with nothing configured but ADMIN_API_KEY: no SECRET_KEY, so the console signs its
    sessions with a key made for the process, and says so in the log."""
    workdir = tmp_path_factory.mktemp("console-embedded")
    port = free_port()
    cleared = {name: os.environ.pop(name) for name in (*SERVICE_VARIABLES, "SECRET_KEY") if name in os.environ}
    try:
        server = Process("console-embedded", ["serve", "--port", str(port)],
                         {"ADMIN_API_KEY": "embedded-admin", "SQLITE_PATH": str(workdir / "gateway.db")}, workdir)
    finally:
        os.environ.update(cleared)
    context = await browser.new_context(base_url=f"http://127.0.0.1:{port}")
    try:
        wait_http(f"http://127.0.0.1:{port}/health", server, timeout_s=60)
        page = await context.new_page()
        await sign_in(page, "embedded-admin")
        tenant_id, key = await _create_tenant_in_form(page, "embedded-app")
        sdk = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        try:
            await sdk.chat.completions.create(model="demo", messages=[{"role": "user", "content": "hi"}])
        finally:
            await sdk.close()
        await page.goto(f"/console/jobs?tenant_id={tenant_id}")
        await expect(page.locator("#jobs")).to_contain_text("succeeded")
        await page.goto("/console/routes")
        await expect(page.locator("#routes")).to_contain_text("demo")
    finally:
        await context.close()
        server.stop()
    assert "signed with a key made for this process" in server.log_path.read_text()
