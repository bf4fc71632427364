"""Fixtures of the real-client end-to-end tests (tests/e2e/test_real_clients_*.py): an API and a worker of
their own, with routes to both providers and fallbacks across them, next to the session gateway (same fake
provider, Redis, PostgreSQL and tenants), so these tests add routes without touching the shared ROUTES.

Routes (every target is the session's fake provider):
- `rc-openai` / `rc-anthropic`: one OpenAI / Anthropic target;
- `rc-openai-then-anthropic`: an OpenAI target failing with 503, then an Anthropic one;
- `rc-anthropic-then-openai`: an Anthropic target failing with 503, then an OpenAI one."""

import os
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Gateway
from tests.support.routed_gateway import RoutedGateway, run_routed_gateway

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


# The tests name the gateway after their group; it is the shared helper's.
ClientsGateway = RoutedGateway


@pytest.fixture(scope="session")
def clients_gateway(gateway: Gateway) -> Iterator[RoutedGateway]:
    with run_routed_gateway("real-clients", ROUTES, gateway, upstream=UPSTREAM) as routed:
        yield routed


def in_ci() -> bool:
    return os.environ.get("CI") == "true"
