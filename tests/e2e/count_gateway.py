"""Fixture of the token-counting and model-lookup end-to-end tests (tests/e2e/test_count_tokens.py): an API
and a worker of their own with the routes below, next to the session gateway (same fake provider, Redis,
PostgreSQL and tenants).

Routes (every target is the session's fake provider):
- `ct-claude`: one Anthropic target; `ct-claude-fallback`: an Anthropic target failing with 503, then another;
- `ct-claude-then-gpt`: an Anthropic target failing with 503, then an OpenAI one (never a count's fallback);
- `ct-gpt`: one OpenAI target, gpt-4o (counted by the API with tiktoken);
- `org/ct-model:v1`: a name with `/` and `:`."""

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Gateway
from tests.support.routed_gateway import RoutedGateway, run_routed_gateway

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


# The tests name the gateway after their group; it is the shared helper's.
CountGateway = RoutedGateway


@pytest.fixture(scope="session")
def count_gateway(gateway: Gateway) -> Iterator[RoutedGateway]:
    with run_routed_gateway("count", ROUTES, gateway) as routed:
        yield routed
