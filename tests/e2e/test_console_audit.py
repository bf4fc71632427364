# ruff: noqa: F811 - the fixtures imported from tests/e2e/console_gateway.py are parameters here
"""Changes made in the admin console (a real browser session against a gateway on real Redis and PostgreSQL)
are in the audit log like the admin API's, with the actor `console`: a tenant created, its limits changed,
disabled and enabled."""

import uuid

import httpx
from playwright.async_api import BrowserContext

from tests.e2e.console_gateway import (  # noqa: F401 (fixtures)
    ConsoleGateway,
    browser,
    console_gateway,
    context,
    sign_in,
)


async def test_console_changes_are_audited_as_console(context: BrowserContext,
                                                      console_gateway: ConsoleGateway) -> None:
    page = await context.new_page()
    await sign_in(page, console_gateway.admin_key)
    await page.goto("/console/tenants")
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    name = f"audited-{uuid.uuid4().hex[:8]}"
    created = await page.request.post("/console/tenants", form={"name": name, "csrf_token": token})
    assert created.status == 201
    admin = {"X-API-Key": console_gateway.admin_key}
    async with httpx.AsyncClient(base_url=console_gateway.base_url, timeout=10) as http:
        tenant = next(t for t in (await http.get("/api/v1/admin/tenants", headers=admin)).json()["data"]
                      if t["name"] == name)
        for path, form in ((f"/console/tenants/{tenant['id']}", {"rate_limit": "77"}),
                           (f"/console/tenants/{tenant['id']}/disable", {}),
                           (f"/console/tenants/{tenant['id']}/enable", {})):
            response = await page.request.post(path, form={**form, "csrf_token": token}, max_redirects=0)
            assert response.status == 303, (path, await response.text())
        audit = (await http.get("/api/v1/admin/audit", params={"target_id": tenant["id"]}, headers=admin)).json()
    entries = list(reversed(audit["data"]))
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("tenant.created", "console"), ("tenant.updated", "console"), ("tenant.disabled", "console"),
        ("tenant.enabled", "console")]
    assert entries[1]["before"]["rate_limit"] is None and entries[1]["after"]["rate_limit"] == 77
