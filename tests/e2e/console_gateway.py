"""Fixtures of the console's browser tests (tests/e2e/test_console.py): an API and a worker of their own, with a
SECRET_KEY and the routes below, next to the session gateway (same fake provider, Redis, PostgreSQL and
tenants); one headless Debian chromium for the whole module, driven by Playwright by path (no download).

Routes: `console-fast` answers at once; `console-slow` streams 500 tokens 20 ms apart (about 10 s), long enough
to watch tokens arrive on a job's page and cancel it there; `console-fallback`'s first target always fails (500),
so its second answers and, after BREAKER_THRESHOLD failures, the first's breaker opens (model names of their
own: the breaker state in Redis is shared with the session gateway's targets); `console-down` always fails;
`console-costly` answers 2,000 tokens (at the default prices, about $0.06: a top spender on the overview).
Webhooks are on (WEBHOOK_SECRET): a callback to the
fake provider's GET-only `/_stats` is refused with 405, so its delivery is dead-lettered at once."""

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.e2e.conftest import ADMIN_KEY, Gateway
from tests.support.processes import Process, free_port, wait_http

CHROMIUM = "/usr/bin/chromium"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
UPDATE_DOCS_ENV = "CONSOLE_SCREENSHOTS_TO_DOCS"
"""Set to 1 to refresh docs/console/ from this run; otherwise a test run leaves the tracked images alone."""
ROUTES = """
models:
  console-fast:
    - {{provider: openai, model: console-fast-upstream, base_url: "{f}/v1"}}
  console-slow:
    - {{provider: openai, model: console-slow-tokens-500, base_url: "{f}/v1"}}
  console-fallback:
    - {{provider: openai, model: console-primary-fail-500, base_url: "{f}/v1"}}
    - {{provider: anthropic, model: console-secondary, base_url: "{f}"}}
  console-down:
    - {{provider: openai, model: console-down-fail-503, base_url: "{f}/v1"}}
  console-costly:
    - {{provider: openai, model: console-costly-tokens-2000, base_url: "{f}/v1"}}
"""
BREAKER_THRESHOLD = 2


@dataclass(frozen=True)
class ConsoleGateway:
    base_url: str
    admin_key: str
    screenshots: Path
    fake_url: str

    async def screenshot(self, page: Page, name: str) -> None:
        """Saved under the test run's tmp dir; copied to docs/console/ (the README's) when UPDATE_DOCS_ENV is 1."""
        path = self.screenshots / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        if os.environ.get(UPDATE_DOCS_ENV) != "1":
            return
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / path.name)


@pytest.fixture(scope="module")
def console_gateway(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleGateway]:
    routes = gateway.log_dir / "routes-console.yaml"
    routes.write_text(ROUTES.format(f=gateway.fake_url))
    env = {**gateway.env, "ROUTES_FILE": str(routes), "QUEUE_NAME": f"gw:console:{uuid.uuid4().hex[:8]}",
           "SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex, "WEBHOOK_SECRET": uuid.uuid4().hex,
           "BREAKER_FAILURE_THRESHOLD": str(BREAKER_THRESHOLD)}
    port = free_port()
    api = Process("api-console", ["serve", "--port", str(port)], env, gateway.log_dir)
    worker = Process("worker-console", ["worker"], env, gateway.log_dir)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", api)
        yield ConsoleGateway(f"http://127.0.0.1:{port}", ADMIN_KEY, tmp_path_factory.mktemp("console-screenshots"),
                             gateway.fake_url)
    finally:
        worker.stop()
        api.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test.sh installs it)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def context(browser: Browser, console_gateway: ConsoleGateway) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (no cookies) per test."""
    created = await browser.new_context(base_url=console_gateway.base_url, viewport={"width": 1280, "height": 900})
    try:
        yield created
    finally:
        await created.close()


async def sign_in(page: Page, key: str) -> None:
    await page.goto("/console/login")
    await page.get_by_label("Admin key or tenant API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/")


def watch_errors(page: Page) -> list[str]:
    """Script errors and console errors (a CSP violation is one) the page reports, for a test to assert none."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    return errors
