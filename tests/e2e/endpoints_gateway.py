"""Fixtures of the embeddings and legacy completions end-to-end tests (tests/e2e/test_endpoints_*.py): an API
and a worker of their own, with routes whose targets serve `embeddings` / `completions` (routes file
`endpoints`), next to the session gateway (same fake provider, Redis, PostgreSQL and tenants).

Routes (every target is the session's fake provider):
- `ep-embed`: text-embedding-3-small, embeddings only; `ep-embed-fallback`: an embeddings target failing with
  503, a chat-only Anthropic target (skipped), then text-embedding-3-large;
- `ep-chat-only`: one OpenAI chat target (refuses embeddings and completions);
- `ep-instruct`: gpt-3.5-turbo-instruct, chat and completions; `ep-instruct-fallback`: a completions target
  failing with 503, then babbage-002."""

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Gateway
from tests.support.routed_gateway import RoutedGateway, run_routed_gateway

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


# The tests name the gateway after their group; it is the shared helper's.
EndpointsGateway = RoutedGateway


@pytest.fixture(scope="session")
def endpoints_gateway(gateway: Gateway) -> Iterator[RoutedGateway]:
    with run_routed_gateway("endpoints", ROUTES, gateway) as routed:
        yield routed
