"""Fixtures of the real-client end-to-end tests (tests/e2e/test_real_clients_*.py): an API and a worker of
their own, with routes to both providers and fallbacks across them, next to the session gateway (same fake
provider, Redis, PostgreSQL and tenants), so these tests add routes without touching the shared ROUTES.

Routes (every target is the session's fake provider):
- `rc-openai` / `rc-anthropic`: one OpenAI / Anthropic target;
- `rc-openai-then-anthropic`: an OpenAI target failing with 503, then an Anthropic one;
- `rc-anthropic-then-openai`: an Anthropic target failing with 503, then an OpenAI one."""

import os
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
  rc-openai:
    - {{provider: openai, model: rc-gpt, base_url: "{f}/v1"}}
  rc-anthropic:
    - {{provider: anthropic, model: rc-claude, base_url: "{f}"}}
  rc-openai-then-anthropic:
    - {{provider: openai, model: rc-first-fail-503, base_url: "{f}/v1"}}
    - {{provider: anthropic, model: rc-second-claude, base_url: "{f}"}}
  rc-anthropic-then-openai:
    - {{provider: anthropic, model: rc-first-fail-503, base_url: "{f}"}}
    - {{provider: openai, model: rc-second-gpt, base_url: "{f}/v1"}}
"""
# Routed name -> the upstream model of its (serving) target, to find the request in the fake's record.
UPSTREAM = {"rc-openai": "rc-gpt", "rc-anthropic": "rc-claude", "rc-openai-then-anthropic": "rc-second-claude",
            "rc-anthropic-then-openai": "rc-second-gpt"}
BOTH = ("rc-openai", "rc-anthropic")


@dataclass(frozen=True)
class ClientsGateway:
    base_url: str
    fake_url: str

    @property
    def openai_url(self) -> str:
        return f"{self.base_url}/v1"

    def upstream_requests(self, routed: str) -> list[dict[str, Any]]:
        """What the fake provider received for `routed`'s serving target, oldest first."""
        response = httpx.get(f"{self.fake_url}/_requests", params={"model": UPSTREAM[routed]}, timeout=10)
        entries: list[dict[str, Any]] = response.json()["requests"]
        return entries


@pytest.fixture(scope="session")
def clients_gateway(gateway: Gateway) -> Iterator[ClientsGateway]:
    routes = gateway.log_dir / "routes-real-clients.yaml"
    routes.write_text(ROUTES.format(f=gateway.fake_url))
    env = {**gateway.env, "ROUTES_FILE": str(routes), "QUEUE_NAME": f"gw:clients:{uuid.uuid4().hex[:8]}"}
    port = free_port()
    api = Process("api-real-clients", ["serve", "--port", str(port)], env, gateway.log_dir)
    worker = Process("worker-real-clients", ["worker"], env, gateway.log_dir)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", api)
        yield ClientsGateway(f"http://127.0.0.1:{port}", gateway.fake_url)
    finally:
        worker.stop()
        api.stop()


def in_ci() -> bool:
    return os.environ.get("CI") == "true"
