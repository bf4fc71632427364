"""Fixtures of the embeddings and legacy completions end-to-end tests (tests/e2e/test_endpoints_*.py): an API
and a worker of their own, with routes whose targets serve `embeddings` / `completions` (routes file
`endpoints`), next to the session gateway (same fake provider, Redis, PostgreSQL and tenants).

Routes (every target is the session's fake provider):
- `ep-embed`: text-embedding-3-small, embeddings only; `ep-embed-fallback`: an embeddings target failing with
  503, a chat-only Anthropic target (skipped), then text-embedding-3-large;
- `ep-chat-only`: one OpenAI chat target (refuses embeddings and completions);
- `ep-instruct`: gpt-3.5-turbo-instruct, chat and completions; `ep-instruct-fallback`: a completions target
  failing with 503, then babbage-002."""

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
  ep-embed:
    - {{provider: openai, model: text-embedding-3-small, base_url: "{f}/v1", endpoints: [embeddings]}}
  ep-embed-fallback:
    - {{provider: openai, model: emb-first-fail-503, base_url: "{f}/v1", endpoints: [embeddings]}}
    - {{provider: anthropic, model: ep-claude, base_url: "{f}"}}
    - {{provider: openai, model: text-embedding-3-large, base_url: "{f}/v1", endpoints: [embeddings]}}
  ep-chat-only:
    - {{provider: openai, model: ep-chat, base_url: "{f}/v1"}}
  ep-instruct:
    - {{provider: openai, model: gpt-3.5-turbo-instruct, base_url: "{f}/v1", endpoints: [chat, completions]}}
  ep-instruct-fallback:
    - {{provider: openai, model: instruct-first-fail-503, base_url: "{f}/v1", endpoints: [completions]}}
    - {{provider: openai, model: babbage-002, base_url: "{f}/v1", endpoints: [completions]}}
"""


@dataclass(frozen=True)
class EndpointsGateway:
    base_url: str
    fake_url: str

    @property
    def openai_url(self) -> str:
        return f"{self.base_url}/v1"

    def upstream_requests(self, model: str) -> list[dict[str, Any]]:
        """What the fake provider received for upstream `model`, oldest first."""
        response = httpx.get(f"{self.fake_url}/_requests", params={"model": model}, timeout=10)
        entries: list[dict[str, Any]] = response.json()["requests"]
        return entries


@pytest.fixture(scope="session")
def endpoints_gateway(gateway: Gateway) -> Iterator[EndpointsGateway]:
    routes = gateway.log_dir / "routes-endpoints.yaml"
    routes.write_text(ROUTES.format(f=gateway.fake_url))
    env = {**gateway.env, "ROUTES_FILE": str(routes), "QUEUE_NAME": f"gw:endpoints:{uuid.uuid4().hex[:8]}"}
    port = free_port()
    api = Process("api-endpoints", ["serve", "--port", str(port)], env, gateway.log_dir)
    worker = Process("worker-endpoints", ["worker"], env, gateway.log_dir)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", api)
        yield EndpointsGateway(f"http://127.0.0.1:{port}", gateway.fake_url)
    finally:
        worker.stop()
        api.stop()
