"""OpenAIProvider against a real HTTP fake upstream (shared.fake_provider under uvicorn), plus the
SDK-independent helpers of worker.providers."""

from collections.abc import AsyncIterator

import pytest

from shared.config import Settings
from shared.errors import (
    ProviderNotConfigured,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from shared.models import ChatRequest, Delta, FinishReason, Message, Usage
from shared.routing_table import Target
from tests.worker.providers.conftest import TOKENS, closed_port, collect, requests_for
from worker.providers import aclose_providers, build_providers
from worker.providers._common import (
    MISSING_KEY_PLACEHOLDER,
    ClientPool,
    StreamTotals,
    retry_after_s,
    status_error,
)
from worker.providers.anthropic import AnthropicProvider
from worker.providers.openai import OpenAIProvider

REQUEST = ChatRequest(
    model="public-model",
    system="Be brief.",
    messages=[Message(role="user", content="hello there")],
)
REPLY = "Fake reply to: hello there tok1 tok2 tok3"
PROMPT_TOKENS = 4  # "Be brief." + "hello there", counted in words by the fake


@pytest.fixture
async def provider() -> AsyncIterator[OpenAIProvider]:
    adapter = OpenAIProvider(api_key="sk-test", base_url=None, timeout_s=10, api_key_lookup=lambda _: None)
    yield adapter
    await adapter.aclose()


def target(fake_url: str, model: str = "fake-gpt", **changes: object) -> Target:
    return Target.model_validate({"provider": "openai", "model": model, "base_url": f"{fake_url}/v1", **changes})


# --- success ----------------------------------------------------------------------------------------


async def test_complete_returns_text_usage_and_finish_reason(provider: OpenAIProvider, fake_url: str) -> None:
    completion = await provider.complete(REQUEST, target(fake_url))
    assert completion.content == REPLY
    assert completion.provider == "openai"
    assert completion.model == "fake-gpt"
    assert completion.id.startswith("chatcmpl-")
    assert completion.finish_reason == FinishReason.STOP
    assert completion.usage == Usage(prompt_tokens=PROMPT_TOKENS, completion_tokens=TOKENS)


async def test_complete_reports_length_when_max_tokens_cuts(provider: OpenAIProvider, fake_url: str) -> None:
    request = REQUEST.model_copy(update={"max_tokens": 3})
    completion = await provider.complete(request, target(fake_url))
    assert (completion.content, completion.finish_reason) == ("Fake reply to:", FinishReason.LENGTH)
    assert completion.usage.completion_tokens == 3


async def test_complete_ignores_the_stream_flag_of_the_request(provider: OpenAIProvider, fake_url: str) -> None:
    completion = await provider.complete(REQUEST.model_copy(update={"stream": True}), target(fake_url))
    assert completion.content == REPLY


async def test_stream_yields_text_then_one_final_delta(provider: OpenAIProvider, fake_url: str) -> None:
    deltas = await collect(provider.stream(REQUEST, target(fake_url)))
    *texts, final = deltas
    assert len(texts) == TOKENS
    assert "".join(d.text for d in texts) == REPLY
    assert all(d.finish_reason is None and d.usage is None for d in texts)
    assert final == Delta(
        finish_reason=FinishReason.STOP, usage=Usage(prompt_tokens=PROMPT_TOKENS, completion_tokens=TOKENS)
    )


async def test_stream_reports_length(provider: OpenAIProvider, fake_url: str) -> None:
    deltas = await collect(provider.stream(REQUEST.model_copy(update={"max_tokens": 2}), target(fake_url)))
    assert deltas[-1].finish_reason == FinishReason.LENGTH
    assert deltas[-1].usage == Usage(prompt_tokens=PROMPT_TOKENS, completion_tokens=2)


async def test_stream_closed_early_by_the_consumer_leaves_the_client_usable(
    provider: OpenAIProvider, fake_url: str
) -> None:
    stream = provider.stream(REQUEST, target(fake_url))
    first = await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert first.text == "Fake"
    assert (await provider.complete(REQUEST, target(fake_url))).content == REPLY


# --- failures ---------------------------------------------------------------------------------------


async def test_complete_500_is_unavailable_and_not_retried_by_the_sdk(provider: OpenAIProvider, fake_url: str) -> None:
    model = "once-fail-500"
    with pytest.raises(UpstreamUnavailable) as caught:
        await provider.complete(REQUEST, target(fake_url, model))
    assert caught.value.status == 502
    assert caught.value.retryable
    assert "500" in caught.value.message and "Injected failure" in caught.value.message
    assert await requests_for(fake_url, model) == 1


async def test_stream_503_is_unavailable_before_any_delta(provider: OpenAIProvider, fake_url: str) -> None:
    deltas: list[Delta] = []
    with pytest.raises(UpstreamUnavailable):
        async for delta in provider.stream(REQUEST, target(fake_url, "fail-503")):
            deltas.append(delta)
    assert deltas == []


async def test_complete_429_is_rate_limited_with_retry_after(provider: OpenAIProvider, fake_url: str) -> None:
    with pytest.raises(UpstreamRateLimited) as default:
        await provider.complete(REQUEST, target(fake_url, "fail-429"))
    with pytest.raises(UpstreamRateLimited) as explicit:
        await provider.complete(REQUEST, target(fake_url, "fail-429-retry-after-2.5"))
    assert default.value.retry_after_s == 1.0
    assert explicit.value.retry_after_s == 2.5
    assert default.value.retryable


async def test_stream_429_is_rate_limited(provider: OpenAIProvider, fake_url: str) -> None:
    with pytest.raises(UpstreamRateLimited) as caught:
        await collect(provider.stream(REQUEST, target(fake_url, "fail-429-retry-after-3")))
    assert caught.value.retry_after_s == 3.0


async def test_complete_400_is_rejected_with_provider_status_and_message(
    provider: OpenAIProvider, fake_url: str
) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        await provider.complete(REQUEST, target(fake_url, "fail-400"))
    assert caught.value.status == 400
    assert not caught.value.retryable
    assert caught.value.message == "Injected failure: HTTP 400 for model 'fail-400'."


async def test_complete_408_is_a_timeout(provider: OpenAIProvider, fake_url: str) -> None:
    with pytest.raises(UpstreamTimeout):
        await provider.complete(REQUEST, target(fake_url, "fail-408"))


async def test_complete_slow_upstream_times_out(provider: OpenAIProvider, fake_url: str) -> None:
    with pytest.raises(UpstreamTimeout):
        await provider.complete(REQUEST, target(fake_url, "slow-2000", timeout_s=0.2))


async def test_stream_slow_upstream_times_out(provider: OpenAIProvider, fake_url: str) -> None:
    with pytest.raises(UpstreamTimeout):
        await collect(provider.stream(REQUEST, target(fake_url, "slow-2000", timeout_s=0.2)))


async def test_complete_connection_refused_is_unavailable(provider: OpenAIProvider) -> None:
    dead = Target(provider="openai", model="fake-gpt", base_url=f"http://127.0.0.1:{closed_port()}/v1")
    with pytest.raises(UpstreamUnavailable, match="openai connection failed"):
        await provider.complete(REQUEST, dead)


async def test_stream_connection_refused_is_unavailable(provider: OpenAIProvider) -> None:
    dead = Target(provider="openai", model="fake-gpt", base_url=f"http://127.0.0.1:{closed_port()}/v1")
    with pytest.raises(UpstreamUnavailable):
        await collect(provider.stream(REQUEST, dead))


async def test_stream_cut_midway_raises_after_the_delivered_deltas(provider: OpenAIProvider, fake_url: str) -> None:
    deltas: list[Delta] = []
    with pytest.raises(UpstreamUnavailable):
        async for delta in provider.stream(REQUEST, target(fake_url, "cut-after-3")):
            deltas.append(delta)
    assert [d.text for d in deltas] == ["Fake", " reply", " to:"]


async def test_missing_key_without_base_url_skips_to_next_target() -> None:
    adapter = OpenAIProvider(api_key=None, base_url=None, timeout_s=5, api_key_lookup=lambda _: None)
    try:
        with pytest.raises(ProviderNotConfigured) as default:
            await adapter.complete(REQUEST, Target(provider="openai", model="gpt-4o"))
        with pytest.raises(ProviderNotConfigured) as named:
            await collect(adapter.stream(REQUEST, Target(provider="openai", model="gpt-4o", api_key_env="TEAM_KEY")))
    finally:
        await adapter.aclose()
    assert (default.value.status, default.value.code) == (502, "provider_key_missing")
    assert default.value.retryable and not default.value.retry_same_target
    assert "OPENAI_API_KEY" in default.value.message
    assert "TEAM_KEY" in named.value.message


async def test_missing_key_with_base_url_uses_placeholder(fake_url: str) -> None:
    adapter = OpenAIProvider(api_key=None, base_url=f"{fake_url}/v1", timeout_s=5, api_key_lookup=lambda _: None)
    try:
        completion = await adapter.complete(REQUEST, Target(provider="openai", model="fake-gpt"))
    finally:
        await adapter.aclose()
    assert completion.content == REPLY


async def test_target_api_key_env_is_resolved_through_the_lookup(fake_url: str) -> None:
    looked_up: list[str] = []

    def lookup(name: str) -> str | None:
        looked_up.append(name)
        return "sk-team"

    adapter = OpenAIProvider(api_key=None, base_url=None, timeout_s=5, api_key_lookup=lookup)
    try:
        completion = await adapter.complete(REQUEST, target(fake_url, api_key_env="TEAM_KEY"))
    finally:
        await adapter.aclose()
    assert looked_up == ["TEAM_KEY"]
    assert completion.content == REPLY


# --- package helpers (worker.providers) ---------------------------------------------------------------


class FakeClient:
    def __init__(self, base_url: str | None, api_key: str, timeout_s: float) -> None:
        self.args = (base_url, api_key, timeout_s)
        self.closed = False

    async def close(self) -> None:
        self.closed = True


def pool(**overrides: object) -> ClientPool[FakeClient]:
    options: dict[str, object] = {
        "provider": "openai",
        "key_env": "OPENAI_API_KEY",
        "api_key": "sk-default",
        "base_url": None,
        "timeout_s": 30.0,
        "api_key_lookup": {"TEAM_KEY": "sk-team"}.get,
    }
    options.update(overrides)
    return ClientPool(FakeClient, **options)  # type: ignore[arg-type]


async def test_client_pool_keeps_one_client_per_endpoint_key_and_timeout() -> None:
    clients = pool()
    plain = clients.client_for(Target(provider="openai", model="a"))
    assert clients.client_for(Target(provider="openai", model="b")) is plain
    assert plain.args == (None, "sk-default", 30.0)
    other = [
        clients.client_for(Target(provider="openai", model="a", timeout_s=2)),
        clients.client_for(Target(provider="openai", model="a", base_url="http://x/v1")),
        clients.client_for(Target(provider="openai", model="a", api_key_env="TEAM_KEY")),
    ]
    assert [c.args for c in other] == [
        (None, "sk-default", 2),
        ("http://x/v1", "sk-default", 30.0),
        (None, "sk-team", 30.0),
    ]
    await clients.aclose()
    assert all(c.closed for c in [plain, *other])


async def test_client_pool_placeholder_key_only_with_a_base_url() -> None:
    clients = pool(api_key=None, base_url="http://local/v1")
    assert clients.client_for(Target(provider="openai", model="a")).args[1] == MISSING_KEY_PLACEHOLDER
    with pytest.raises(ProviderNotConfigured, match="OPENAI_API_KEY"):
        pool(api_key=None).client_for(Target(provider="openai", model="a"))
    await clients.aclose()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after-ms": "soon", "retry-after": "4"}, 4.0),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_s_parses_headers(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_s(headers) == expected


@pytest.mark.parametrize(
    ("status", "kind", "mapped_status"),
    [
        (429, UpstreamRateLimited, 429),
        (408, UpstreamTimeout, 504),
        (400, UpstreamRejected, 400),
        (401, UpstreamRejected, 502),  # the gateway's provider key was refused: not the client's fault
        (403, UpstreamRejected, 502),
        (404, UpstreamRejected, 404),
        (422, UpstreamRejected, 422),
        (500, UpstreamUnavailable, 502),
        (503, UpstreamUnavailable, 502),
        (529, UpstreamUnavailable, 502),
        (200, UpstreamUnavailable, 502),
    ],
)
def test_status_error_maps_provider_status(status: int, kind: type[UpstreamError], mapped_status: int) -> None:
    error = status_error("openai", status, "provider says no", {"retry-after": "1"})
    assert type(error) is kind
    assert error.status == mapped_status
    assert "provider says no" in error.message


def test_stream_totals_keep_cached_prompt_tokens() -> None:
    totals = StreamTotals("openai")
    totals.add(Delta(finish_reason=FinishReason.STOP, usage=Usage(prompt_tokens=10, cached_prompt_tokens=6)))
    final = totals.final()
    assert final.usage is not None and final.usage.cached_prompt_tokens == 6


def test_stream_totals_merge_into_one_final_delta() -> None:
    totals = StreamTotals("anthropic")
    totals.add(Delta(usage=Usage(prompt_tokens=5)))
    totals.add(Delta(text="x"))
    totals.add(Delta(finish_reason=FinishReason.LENGTH, usage=Usage(completion_tokens=7)))
    assert totals.final() == Delta(finish_reason=FinishReason.LENGTH, usage=Usage(prompt_tokens=5, completion_tokens=7))
    with pytest.raises(UpstreamUnavailable, match="ended before it finished"):
        StreamTotals("openai").final()


async def test_build_providers_registers_both_adapters() -> None:
    settings = Settings(openai_api_key="sk-o", anthropic_base_url="http://local", upstream_timeout_s=7)
    providers = build_providers(settings, lambda _: None)
    try:
        assert set(providers) == {"openai", "anthropic"}
        assert isinstance(providers["openai"], OpenAIProvider)
        assert isinstance(providers["anthropic"], AnthropicProvider)
        assert all(name == provider.name for name, provider in providers.items())
    finally:
        await aclose_providers(providers)
