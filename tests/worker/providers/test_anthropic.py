"""AnthropicProvider against a real HTTP fake upstream (shared.fake_provider under uvicorn)."""

from collections.abc import AsyncIterator

import pytest

from shared.errors import (
    ProviderNotConfigured,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from shared.models import ChatRequest, Delta, FinishReason, Message, Usage
from shared.routing_table import Target
from tests.worker.providers.conftest import TOKENS, closed_port, collect, requests_for
from worker.providers.anthropic import AnthropicProvider

REQUEST = ChatRequest(
    model="public-model",
    system="Be brief.",
    messages=[Message(role="user", content="hello there")],
    temperature=0.7,
)
REPLY = "Fake reply to: hello there tok1 tok2 tok3"
PROMPT_TOKENS = 4  # "Be brief." + "hello there", counted in words by the fake


@pytest.fixture
async def provider() -> AsyncIterator[AnthropicProvider]:
    adapter = AnthropicProvider(api_key="sk-ant-test", base_url=None, timeout_s=10, api_key_lookup=lambda _: None)
    yield adapter
    await adapter.aclose()


def target(fake_url: str, model: str = "fake-claude", **changes: object) -> Target:
    return Target.model_validate({"provider": "anthropic", "model": model, "base_url": fake_url, **changes})


# --- success ----------------------------------------------------------------------------------------


async def test_complete_returns_text_usage_and_finish_reason(provider: AnthropicProvider, fake_url: str) -> None:
    completion = await provider.complete(REQUEST, target(fake_url))
    assert completion.content == REPLY
    assert completion.provider == "anthropic"
    assert completion.model == "fake-claude"
    assert completion.id.startswith("msg_")
    assert completion.finish_reason == FinishReason.STOP
    assert completion.usage == Usage(prompt_tokens=PROMPT_TOKENS, completion_tokens=TOKENS)


async def test_complete_reports_length_when_max_tokens_cuts(provider: AnthropicProvider, fake_url: str) -> None:
    completion = await provider.complete(REQUEST.model_copy(update={"max_tokens": 3}), target(fake_url))
    assert (completion.content, completion.finish_reason) == ("Fake reply to:", FinishReason.LENGTH)
    assert completion.usage.completion_tokens == 3


async def test_stream_yields_text_then_one_merged_final_delta(provider: AnthropicProvider, fake_url: str) -> None:
    deltas = await collect(provider.stream(REQUEST, target(fake_url)))
    *texts, final = deltas
    assert len(texts) == TOKENS
    assert "".join(d.text for d in texts) == REPLY
    assert all(d.finish_reason is None and d.usage is None for d in texts)
    assert final == Delta(
        finish_reason=FinishReason.STOP, usage=Usage(prompt_tokens=PROMPT_TOKENS, completion_tokens=TOKENS)
    )


async def test_stream_reports_length(provider: AnthropicProvider, fake_url: str) -> None:
    deltas = await collect(provider.stream(REQUEST.model_copy(update={"max_tokens": 2}), target(fake_url)))
    assert deltas[-1] == Delta(
        finish_reason=FinishReason.LENGTH, usage=Usage(prompt_tokens=PROMPT_TOKENS, completion_tokens=2)
    )


async def test_stream_closed_early_by_the_consumer_leaves_the_client_usable(
    provider: AnthropicProvider, fake_url: str
) -> None:
    stream = provider.stream(REQUEST, target(fake_url))
    first = await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert first.text == "Fake"
    assert (await provider.complete(REQUEST, target(fake_url))).content == REPLY


# --- failures ---------------------------------------------------------------------------------------


async def test_complete_500_is_unavailable_and_not_retried_by_the_sdk(
    provider: AnthropicProvider, fake_url: str
) -> None:
    model = "claude-once-fail-500"
    with pytest.raises(UpstreamUnavailable) as caught:
        await provider.complete(REQUEST, target(fake_url, model))
    assert caught.value.status == 502
    assert caught.value.retryable
    assert "500" in caught.value.message and "Injected failure" in caught.value.message
    assert await requests_for(fake_url, model) == 1


async def test_stream_529_overloaded_is_unavailable_before_any_delta(
    provider: AnthropicProvider, fake_url: str
) -> None:
    deltas: list[Delta] = []
    with pytest.raises(UpstreamUnavailable, match="529"):
        async for delta in provider.stream(REQUEST, target(fake_url, "fail-529")):
            deltas.append(delta)
    assert deltas == []


async def test_complete_429_is_rate_limited_with_retry_after(provider: AnthropicProvider, fake_url: str) -> None:
    with pytest.raises(UpstreamRateLimited) as default:
        await provider.complete(REQUEST, target(fake_url, "fail-429"))
    with pytest.raises(UpstreamRateLimited) as explicit:
        await provider.complete(REQUEST, target(fake_url, "fail-429-retry-after-0.5"))
    assert default.value.retry_after_s == 1.0
    assert explicit.value.retry_after_s == 0.5


async def test_stream_429_is_rate_limited(provider: AnthropicProvider, fake_url: str) -> None:
    with pytest.raises(UpstreamRateLimited) as caught:
        await collect(provider.stream(REQUEST, target(fake_url, "fail-429-retry-after-3")))
    assert caught.value.retry_after_s == 3.0


async def test_complete_400_is_rejected_with_provider_status_and_message(
    provider: AnthropicProvider, fake_url: str
) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        await provider.complete(REQUEST, target(fake_url, "fail-400"))
    assert caught.value.status == 400
    assert not caught.value.retryable
    assert caught.value.message == "Injected failure: HTTP 400 for model 'fail-400'."


async def test_complete_403_is_rejected_as_gateway_credential_failure(
    provider: AnthropicProvider, fake_url: str
) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        await provider.complete(REQUEST, target(fake_url, "fail-403"))
    assert caught.value.status == 502 and caught.value.code == "upstream_auth_failed"


async def test_complete_slow_upstream_times_out(provider: AnthropicProvider, fake_url: str) -> None:
    with pytest.raises(UpstreamTimeout):
        await provider.complete(REQUEST, target(fake_url, "slow-2000", timeout_s=0.2))


async def test_stream_slow_upstream_times_out(provider: AnthropicProvider, fake_url: str) -> None:
    with pytest.raises(UpstreamTimeout):
        await collect(provider.stream(REQUEST, target(fake_url, "slow-2000", timeout_s=0.2)))


async def test_complete_connection_refused_is_unavailable(provider: AnthropicProvider) -> None:
    dead = Target(provider="anthropic", model="fake-claude", base_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(UpstreamUnavailable, match="anthropic connection failed"):
        await provider.complete(REQUEST, dead)


async def test_stream_connection_refused_is_unavailable(provider: AnthropicProvider) -> None:
    dead = Target(provider="anthropic", model="fake-claude", base_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(UpstreamUnavailable):
        await collect(provider.stream(REQUEST, dead))


async def test_stream_cut_midway_raises_after_the_delivered_deltas(provider: AnthropicProvider, fake_url: str) -> None:
    deltas: list[Delta] = []
    with pytest.raises(UpstreamUnavailable):
        async for delta in provider.stream(REQUEST, target(fake_url, "cut-after-3")):
            deltas.append(delta)
    assert [d.text for d in deltas] == ["Fake", " reply", " to:"]


async def test_missing_key_without_base_url_skips_to_next_target() -> None:
    adapter = AnthropicProvider(api_key=None, base_url=None, timeout_s=5, api_key_lookup=lambda _: None)
    try:
        with pytest.raises(ProviderNotConfigured) as default:
            await adapter.complete(REQUEST, Target(provider="anthropic", model="claude-haiku-4-5"))
        with pytest.raises(ProviderNotConfigured) as named:
            team = Target(provider="anthropic", model="claude-haiku-4-5", api_key_env="TEAM_KEY")
            await collect(adapter.stream(REQUEST, team))
    finally:
        await adapter.aclose()
    assert (default.value.status, default.value.code) == (502, "provider_key_missing")
    assert default.value.retryable and not default.value.retry_same_target
    assert "ANTHROPIC_API_KEY" in default.value.message
    assert "TEAM_KEY" in named.value.message


async def test_missing_key_with_base_url_uses_placeholder(fake_url: str) -> None:
    adapter = AnthropicProvider(api_key=None, base_url=fake_url, timeout_s=5, api_key_lookup=lambda _: None)
    try:
        completion = await adapter.complete(REQUEST, Target(provider="anthropic", model="fake-claude"))
    finally:
        await adapter.aclose()
    assert completion.content == REPLY
