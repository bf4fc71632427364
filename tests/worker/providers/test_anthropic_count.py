"""AnthropicProvider.count_tokens against a real HTTP fake upstream: Anthropic's count through the SDK's
`messages.count_tokens`, the body as the count endpoint takes it, and failures mapped as for a completion."""

from collections.abc import AsyncIterator

import httpx
import pytest

from shared.errors import UpstreamRateLimited, UpstreamRejected, UpstreamUnavailable
from shared.fake_provider_count import COUNT_BASE, TOKENS_PER_MESSAGE
from shared.routing_table import Target
from shared.wire.anthropic_count import parse_count_request
from worker.providers.anthropic import AnthropicProvider

REQUEST = parse_count_request({"model": "public-model", "system": "Be brief.",
                               "messages": [{"role": "user", "content": "hello there"}]})


@pytest.fixture
async def provider() -> AsyncIterator[AnthropicProvider]:
    adapter = AnthropicProvider(api_key="sk-ant-test", base_url=None, timeout_s=10, api_key_lookup=lambda _: None)
    yield adapter
    await adapter.aclose()


def target(fake_url: str, model: str) -> Target:
    return Target(provider="anthropic", model=model, base_url=fake_url)


async def test_count_tokens_returns_anthropics_count(provider: AnthropicProvider, fake_url: str) -> None:
    tokens = await provider.count_tokens(REQUEST, target(fake_url, "count-plain"), drop=frozenset())
    assert tokens == COUNT_BASE + TOKENS_PER_MESSAGE + 2 + 2
    async with httpx.AsyncClient() as client:
        sent = (await client.get(f"{fake_url}/_requests", params={"model": "count-plain"})).json()["requests"][-1]
    assert sent["path"] == "/v1/messages/count_tokens"
    assert sent["body"] == {"model": "count-plain", "system": "Be brief.",
                            "messages": [{"role": "user", "content": "hello there"}]}


@pytest.mark.parametrize(("model", "error"), [
    ("count-fail-429", UpstreamRateLimited), ("count-fail-503", UpstreamUnavailable),
    ("count-fail-400", UpstreamRejected),
])
async def test_count_tokens_failures_are_mapped(provider: AnthropicProvider, fake_url: str, model: str,
                                                error: type[Exception]) -> None:
    with pytest.raises(error):
        await provider.count_tokens(REQUEST, target(fake_url, model), drop=frozenset())
