"""Fixture of the token-counting and model-lookup end-to-end tests (tests/e2e/test_count_tokens.py): an API
and a worker of their own with the routes below, next to the session gateway (same fake provider, Redis,
PostgreSQL and tenants).

Routes (every target is the session's fake provider):
- `ct-claude`: one Anthropic target; `ct-claude-fallback`: an Anthropic target failing with 503, then another;
- `ct-claude-then-gpt`: an Anthropic target failing with 503, then an OpenAI one (never a count's fallback);
- `ct-gpt`: one OpenAI target, gpt-4o (counted by the API with tiktoken);
- `org/ct-model:v1`: a name with `/` and `:`."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Gateway
from tests.support.processes import Process, free_port, wait_http

ROUTES = """
models:
  ct-claude:
    - {{provider: anthropic, model: ct-claude-upstream, base_url: "{f}"}}
  ct-claude-fallback:
    - {{provider: anthropic, model: ct-first-fail-503, base_url: "{f}"}}
    - {{provider: anthropic, model: ct-second, base_url: "{f}"}}
  ct-claude-then-gpt:
    - {{provider: anthropic, model: ct-only-fail-503, base_url: "{f}"}}
    - {{provider: openai, model: gpt-4o, base_url: "{f}/v1"}}
  ct-gpt:
    - {{provider: openai, model: gpt-4o, base_url: "{f}/v1"}}
  "org/ct-model:v1":
    - {{provider: openai, model: gpt-4o, base_url: "{f}/v1"}}
"""


@dataclass(frozen=True)
class CountGateway:
    base_url: str
    fake_url: str

    def upstream_requests(self, model: str) -> list[dict[str, Any]]:
        """What the fake provider received for upstream `model`, oldest first."""
        response = httpx.get(f"{self.fake_url}/_requests", params={"model": model}, timeout=10)
        entries: list[dict[str, Any]] = response.json()["requests"]
        return entries


@pytest.fixture(scope="session")
def count_gateway(gateway: Gateway) -> Iterator[CountGateway]:
    routes = gateway.log_dir / "routes-count.yaml"
    routes.write_text(ROUTES.format(f=gateway.fake_url))
    env = {**gateway.env, "ROUTES_FILE": str(routes), "QUEUE_NAME": f"gw:count:{uuid.uuid4().hex[:8]}"}
    port = free_port()
    api = Process("api-count", ["serve", "--port", str(port)], env, gateway.log_dir)
    worker = Process("worker-count", ["worker"], env, gateway.log_dir)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", api)
        yield CountGateway(f"http://127.0.0.1:{port}", gateway.fake_url)
    finally:
        worker.stop()
        api.stop()
