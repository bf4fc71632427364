# ruff: noqa: F811 - the fixtures imported from tests/e2e/console_gateway.py are parameters here
"""More of the console in a real browser (Debian's chromium through Playwright) against a gateway on real Redis
and PostgreSQL: the routes page's targets in order, an opened circuit breaker, a fallback and a failed request;
the overview's charts and top lists, and a tenant session's overview holding only its own usage; times in the
browser's time zone; a label on every form control; the CSRF token required by every console POST."""

import asyncio
import re
import uuid
from datetime import datetime, timedelta, timezone

import httpx
from playwright.async_api import Browser, BrowserContext, Page, expect

from api.main import create_app
from shared.config import Settings
from tests.e2e.console_gateway import (  # noqa: F401 (fixtures)
    BREAKER_THRESHOLD,
    ConsoleGateway,
    browser,
    console_gateway,
    context,
    sign_in,
    watch_errors,
)
from tests.e2e.test_console import _api_tenant, _csrf_token
from tests.e2e.test_console_governance import CHAT, _chat, _post_paths

OVERVIEW_CHARTS = ["Requests", "Errors", "Cost", "Mean latency (ms)", "Cache hit rate (%)"]
KOLKATA = timezone(timedelta(hours=5, minutes=30))
UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
    .filter(el => el.labels?.length === 0 || el.tagName === 'BUTTON')
    .filter(el => !(el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
                    || (el.tagName === 'BUTTON' && el.textContent.trim())))
    .map(el => el.outerHTML)"""


async def _tenant_usage_count(console_gateway: ConsoleGateway, tenant_id: str) -> int:
    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=10) as http:
        report = await http.get(f"/api/v1/admin/tenants/{tenant_id}/usage",
                                headers={"X-API-Key": console_gateway.admin_key})
    return int(report.json()["totals"]["requests"])


async def _wait_for_usage(console_gateway: ConsoleGateway, tenant_id: str, count: int) -> None:
    """Usage reaches PostgreSQL through the usage stream, a moment after the answer."""
    for _ in range(100):
        if await _tenant_usage_count(console_gateway, tenant_id) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{tenant_id} never had {count} usage records")


async def test_console_routes_page_shows_targets_in_order_an_open_breaker_fallbacks_and_errors(
    context: BrowserContext, console_gateway: ConsoleGateway
) -> None:
    tenant_id, key = await _api_tenant(console_gateway, f"routes-{uuid.uuid4().hex[:8]}")
    for _ in range(BREAKER_THRESHOLD + 1):
        served = await _chat(console_gateway.base_url, key, "console-fallback")
        assert served.status_code == 200, served.text  # by the second target
    failed = await _chat(console_gateway.base_url, key, "console-down")
    assert failed.status_code >= 500, failed.text
    await _wait_for_usage(console_gateway, tenant_id, BREAKER_THRESHOLD + 2)
    page = await context.new_page()
    errors = watch_errors(page)
    await sign_in(page, console_gateway.admin_key)
    await page.goto("/console/routes")
    targets = page.locator("#routes tr", has_text="console-fallback").locator("ol.targets > li")
    await expect(targets).to_have_count(2)
    await expect(targets.nth(0)).to_contain_text("openai: console-primary-fail-500")
    await expect(targets.nth(0).locator(".breaker")).to_have_text("breaker open")
    await expect(targets.nth(0).locator("time")).to_have_count(1)  # open until
    await expect(targets.nth(1)).to_contain_text("anthropic: console-secondary")
    await expect(targets.nth(1).locator(".breaker")).to_have_text("breaker closed")
    problems = page.locator("#problems tbody tr", has_text=tenant_id)
    # A request that found the first target failing fell back; once its breaker is open, the route starts at
    # the second target, which is no fallback: at least the first request is listed.
    fallbacks = problems.filter(has_text="console-fallback")
    await expect(fallbacks.first).to_contain_text("anthropic console-secondary")
    await expect(fallbacks.first).to_contain_text("succeeded, by fallback")
    await expect(problems.filter(has_text="console-down")).to_contain_text("failed")
    await console_gateway.screenshot(page, "routes")
    assert errors == []


async def test_console_overview_charts_top_lists_and_a_tenant_sees_only_its_own(
    browser: Browser, context: BrowserContext, console_gateway: ConsoleGateway
) -> None:
    name = f"top-{uuid.uuid4().hex[:8]}"
    busy_id, busy_key = await _api_tenant(console_gateway, name)
    idle_id, idle_key = await _api_tenant(console_gateway, f"idle-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=30) as http:
        costly = await http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {busy_key}"},
                                 json={"model": "console-costly", "messages": CHAT, "max_tokens": 2000})
    assert costly.status_code == 200, costly.text
    await _wait_for_usage(console_gateway, busy_id, 1)
    page = await context.new_page()
    await sign_in(page, console_gateway.admin_key)
    await page.goto("/console/")
    assert await page.locator("figure.chart figcaption").evaluate_all(
        "nodes => nodes.map(n => n.firstChild.textContent.trim())") == OVERVIEW_CHARTS
    this_hour = page.locator("figure", has_text="Requests").locator("rect.bar").last
    assert int((await this_hour.get_attribute("data-value") or "0").replace(",", "")) >= 1
    await expect(page.get_by_role("link", name=name)).to_have_attribute("href", f"/console/tenants/{busy_id}")
    await expect(page.locator("section", has_text="Top models").locator("tbody tr").first).not_to_contain_text(
        "No usage yet.")
    for key, own_requests, own_models in ((busy_key, "1", "console-costly"), (idle_key, "0", "No usage yet.")):
        tenant_context = await browser.new_context(base_url=console_gateway.base_url)
        try:
            tenant_page = await tenant_context.new_page()
            await sign_in(tenant_page, key)
            await expect(tenant_page.get_by_role("heading", name="Top tenants")).to_have_count(0)
            await expect(tenant_page.locator("#total-requests")).to_have_text(own_requests)  # not the gateway's
            models = tenant_page.locator("section", has_text="Top models").locator("tbody tr")
            await expect(models).to_have_count(1)
            await expect(models).to_contain_text(own_models)
            if key == idle_key:
                assert name not in await tenant_page.content() and busy_id not in await tenant_page.content()
                assert idle_id in await tenant_page.content()
        finally:
            await tenant_context.close()


async def test_console_shows_times_in_the_browsers_time_zone(
    browser: Browser, console_gateway: ConsoleGateway
) -> None:
    zoned = await browser.new_context(base_url=console_gateway.base_url, timezone_id="Asia/Kolkata",
                                      locale="en-US")
    try:
        page = await zoned.new_page()
        await sign_in(page, console_gateway.admin_key)
        await page.goto("/console/audit")
        moment = page.locator("#audit time").first
        stamp = await moment.get_attribute("datetime") or ""
        local = datetime.fromisoformat(stamp).astimezone(KOLKATA)
        expected = (f"{local.month}/{local.day}/{local.year}, {local.hour % 12 or 12}:{local.minute:02}:"
                    f"{local.second:02} {'AM' if local.hour < 12 else 'PM'}")
        await expect(moment).to_have_attribute("title", stamp)  # the script rewrote it
        shown = (await moment.text_content() or "").replace("\u202f", " ")
        assert stamp.endswith("+00:00") and shown == expected, (stamp, shown)
    finally:
        await zoned.close()


async def test_console_every_form_control_has_a_label(context: BrowserContext,
                                                      console_gateway: ConsoleGateway) -> None:
    tenant_id, key = await _api_tenant(console_gateway, f"labels-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=10) as http:
        job = (await http.post("/api/v1/jobs", headers={"X-API-Key": key},
                               json={"model": "console-slow", "messages": CHAT})).json()
        page = await context.new_page()
        await page.goto("/console/login")
        await console_gateway.screenshot(page, "login")
        assert await page.evaluate(UNLABELLED) == []
        await sign_in(page, console_gateway.admin_key)
        for path in ("/console/", "/console/tenants", f"/console/tenants/{tenant_id}",
                     f"/console/tenants/{tenant_id}/keys", f"/console/usage?tenant_id={tenant_id}",
                     f"/console/requests?tenant_id={tenant_id}", f"/console/jobs?tenant_id={tenant_id}",
                     f"/console/jobs/{job['id']}", "/console/routes", "/console/webhooks", "/console/audit"):
            response = await page.goto(path)
            assert response is not None and response.status == 200, path
            assert await page.evaluate(UNLABELLED) == [], path
        await http.post(f"/api/v1/jobs/{job['id']}/cancel", headers={"X-API-Key": key})


async def _post(page: Page, path: str, form: dict[str, str]) -> tuple[int, str]:
    response = await page.request.post(path, form=form, max_redirects=0)
    return response.status, await response.text()


async def test_console_every_post_needs_the_sessions_csrf_token(
    context: BrowserContext, console_gateway: ConsoleGateway
) -> None:
    """Every POST route of the console app (listed from the app itself), posted by a signed-in admin from the
    same origin but without the token, or with a wrong one, is refused before it changes anything."""
    tenant_id, key = await _api_tenant(console_gateway, f"csrf-all-{uuid.uuid4().hex[:8]}")
    admin = {"X-API-Key": console_gateway.admin_key}
    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=10) as http:
        key_id = (await http.get(f"/api/v1/admin/tenants/{tenant_id}/keys", headers=admin)).json()["data"][0]["id"]
        job = (await http.post("/api/v1/jobs", headers={"X-API-Key": key},
                               json={"model": "console-slow", "messages": CHAT})).json()
        page = await context.new_page()
        await sign_in(page, console_gateway.admin_key)
        ids = {"tenant_id": tenant_id, "key_id": key_id, "job_id": job["id"]}
        posts = sorted(path for path in _post_paths(create_app(Settings(_env_file=None)).routes)
                       if path.startswith("/console"))
        assert {"/console/login", "/console/logout", "/console/tenants/{tenant_id}/disable"} <= set(posts), posts
        for path in posts:
            url = re.sub(r"\{(\w+)\}", lambda match: ids[match.group(1)], path)
            form = {"name": "x", "key": console_gateway.admin_key, "ids": "1-0", "rate_limit": "1"}
            missing, _ = await _post(page, url, form)
            wrong, text = await _post(page, url, {**form, "csrf_token": "forged"})
            assert missing in (400, 403) and wrong == 403 and "CSRF token" in text, (url, missing, wrong, text)
        assert (await page.goto("/console/tenants")) is not None
        await expect(page.locator(".who")).to_have_text("admin")  # the refused sign-out left the session open
        tenant = (await http.get(f"/api/v1/admin/tenants/{tenant_id}", headers=admin)).json()
        keys = (await http.get(f"/api/v1/admin/tenants/{tenant_id}/keys", headers=admin)).json()["data"]
        status = (await http.get(f"/api/v1/jobs/{job['id']}", headers={"X-API-Key": key})).json()["status"]
        await http.post(f"/api/v1/jobs/{job['id']}/cancel", headers={"X-API-Key": key})
    assert not tenant["disabled"] and tenant["rate_limit"] is None and [k["id"] for k in keys] == [key_id]
    assert status != "cancelled"
    token = await _csrf_token(page, "/console/")
    assert (await _post(page, f"/console/tenants/{tenant_id}/disable", {"csrf_token": token}))[0] == 303
