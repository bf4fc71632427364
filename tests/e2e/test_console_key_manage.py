# ruff: noqa: F811 - the fixtures imported from tests/e2e/console_gateway.py are parameters here
"""A tenant key with the `manage` scope (issue 16) in a real browser (Debian's chromium through Playwright),
against a gateway on real Redis and PostgreSQL: signed in with it, the tenant issues a key for itself within its
own scopes, the key answers a completion, the tenant revokes it and the next request is refused; the audit log
names the tenant and its key. Screenshots as the other console tests (tests/e2e/console_gateway.py)."""

import uuid

import httpx
from playwright.async_api import BrowserContext, expect

from tests.e2e.console_gateway import (  # noqa: F401 (fixtures)
    ConsoleGateway,
    browser,
    console_gateway,
    context,
    sign_in,
    watch_errors,
)
from tests.e2e.test_console import _api_tenant
from tests.e2e.test_console_governance import _chat


async def _managing_key(console_gateway: ConsoleGateway, tenant_id: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=10) as http:
        issued = await http.post(f"/api/v1/admin/tenants/{tenant_id}/keys",
                                 headers={"X-API-Key": console_gateway.admin_key},
                                 json={"name": "ops", "manage": True, "allowed_models": ["console-*"]})
    assert issued.status_code == 201 and issued.json()["manage"] is True, issued.text
    data: dict[str, str] = issued.json()
    return data


async def test_console_manage_tenant_session_issues_a_key_uses_it_and_revokes_it(
    context: BrowserContext, console_gateway: ConsoleGateway
) -> None:
    tenant_id, _ = await _api_tenant(console_gateway, f"manage-{uuid.uuid4().hex[:8]}")
    manager = await _managing_key(console_gateway, tenant_id)
    page = await context.new_page()
    errors = watch_errors(page)
    await sign_in(page, manager["api_key"])
    await expect(page.locator(".who")).to_contain_text(tenant_id)

    name = f"svc-{uuid.uuid4().hex[:6]}"
    await page.goto(f"/console/tenants/{tenant_id}/keys")
    await page.get_by_label("Key name").fill(name)
    await page.get_by_label("Allowed models").fill("claude-*")  # outside the signing key's own models
    await page.get_by_role("button", name="Issue key").click()
    await expect(page.get_by_role("alert")).to_contain_text("allowed_models: claude-* not within")
    errors.clear()  # the browser reports the refused form's 400 answer as a console error
    await page.goto(f"/console/tenants/{tenant_id}/keys")
    await page.get_by_label("Key name").fill(name)
    await page.get_by_label("Allowed models").fill("console-fast")
    await page.get_by_label("chat", exact=True).check()
    await page.get_by_role("button", name="Issue key").click()
    secret = (await page.locator("#new-key").text_content() or "").strip()
    assert secret.startswith("gw-"), await page.content()
    row = page.locator("#keys tbody tr", has_text=name)
    await expect(row).to_contain_text("Models: console-fast")
    await console_gateway.screenshot(page, "tenant-manage-keys")

    answered = await _chat(console_gateway.base_url, secret)
    assert answered.status_code == 200, answered.text

    await page.goto(f"/console/tenants/{tenant_id}/keys")
    await page.get_by_role("link", name=f"Revoke the key {name}").click()
    await page.get_by_role("button", name="Revoke key").click()
    await expect(page.get_by_role("status")).to_contain_text("Key revoked")
    await expect(page.locator("#keys tbody tr", has_text=name)).to_contain_text("revoked")
    refused = await _chat(console_gateway.base_url, secret)
    assert refused.status_code == 401, refused.text
    assert (await _chat(console_gateway.base_url, manager["api_key"])).status_code == 200  # its own key works

    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=10) as http:
        audit = (await http.get("/api/v1/admin/audit", params={"actor": f"tenant:{tenant_id}:{manager['id']}"},
                                headers={"X-API-Key": console_gateway.admin_key})).json()["data"]
    assert [entry["action"] for entry in audit] == ["key.revoked", "key.created"]
    assert errors == []
