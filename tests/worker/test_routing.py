"""The fallback matrix: which upstream failures retry, which fall back, which are returned as is, and that a
stream never falls back once it has produced output."""

import pytest

from shared.errors import (
    AllTargetsFailed,
    ProviderNotConfigured,
    StreamInterrupted,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tests.factories import ScriptedProvider, make_chat_request, make_fake_redis, target
from worker.breaker import CircuitBreaker
from worker.routing import RetryPolicy, Router

POLICY = RetryPolicy(attempts_per_target=2, base_delay_s=0.0, max_delay_s=1.0)
TARGETS = [target("openai", "primary"), target("anthropic", "secondary")]


def _router(openai: ScriptedProvider, anthropic: ScriptedProvider, threshold: int = 100) -> Router:
    breaker = CircuitBreaker(make_fake_redis(), failure_threshold=threshold, open_s=30)
    return Router({"openai": openai, "anthropic": anthropic}, breaker, POLICY)


@pytest.mark.parametrize(
    "error",
    [UpstreamUnavailable("500"), UpstreamRateLimited("429", retry_after_s=0.01), UpstreamTimeout("slow")],
    ids=["5xx", "429", "timeout"],
)
async def test_fallback_moves_on_when_primary_fails_retryably(error: Exception) -> None:
    openai = ScriptedProvider("openai", {"primary": [error, error]})
    anthropic = ScriptedProvider("anthropic", {"secondary": ["from secondary"]})
    completion, served = await _router(openai, anthropic).complete(make_chat_request(), TARGETS)
    assert completion.content == "from secondary" and completion.provider == "anthropic"
    assert served.fallback_used is True
    assert openai.calls == ["primary", "primary"]


async def test_fallback_retries_same_target_before_moving_on() -> None:
    openai = ScriptedProvider("openai", {"primary": [UpstreamUnavailable("blip"), "second try"]})
    anthropic = ScriptedProvider("anthropic", {"secondary": []})
    completion, served = await _router(openai, anthropic).complete(make_chat_request(), TARGETS)
    assert completion.content == "second try" and served.fallback_used is False
    assert anthropic.calls == []


async def test_fallback_stops_when_upstream_400() -> None:
    openai = ScriptedProvider("openai", {"primary": [UpstreamRejected("bad request", status=400)]})
    anthropic = ScriptedProvider("anthropic", {"secondary": ["never"]})
    with pytest.raises(UpstreamRejected) as caught:
        await _router(openai, anthropic).complete(make_chat_request(), TARGETS)
    assert caught.value.status == 400
    assert openai.calls == ["primary"] and anthropic.calls == []


async def test_fallback_exhausted_raises_all_targets_failed() -> None:
    openai = ScriptedProvider("openai", {"primary": [UpstreamUnavailable("a")] * 2})
    anthropic = ScriptedProvider("anthropic", {"secondary": [UpstreamUnavailable("b")] * 2})
    with pytest.raises(AllTargetsFailed):
        await _router(openai, anthropic).complete(make_chat_request(), TARGETS)


async def test_fallback_keeps_429_status_when_every_target_rate_limits() -> None:
    limited = UpstreamRateLimited("slow down", retry_after_s=0.0)
    openai = ScriptedProvider("openai", {"primary": [limited] * 2})
    anthropic = ScriptedProvider("anthropic", {"secondary": [limited] * 2})
    with pytest.raises(AllTargetsFailed) as caught:
        await _router(openai, anthropic).complete(make_chat_request(), TARGETS)
    assert caught.value.status == 429


async def test_retry_after_beyond_cap_moves_on_without_waiting() -> None:
    openai = ScriptedProvider("openai", {"primary": [UpstreamRateLimited("later", retry_after_s=60)]})
    anthropic = ScriptedProvider("anthropic", {"secondary": ["now"]})
    completion, _ = await _router(openai, anthropic).complete(make_chat_request(), TARGETS)
    assert completion.content == "now" and openai.calls == ["primary"]


async def test_stream_falls_back_before_first_token() -> None:
    openai = ScriptedProvider("openai", {"primary": [UpstreamUnavailable("down")] * 2})
    anthropic = ScriptedProvider("anthropic", {"secondary": ["one two three"]})
    router = _router(openai, anthropic)
    pieces = [(served.target.provider, delta.text) async for served, delta in router.stream(
        make_chat_request(stream=True), TARGETS)]
    assert "".join(text for _, text in pieces) == "one two three "
    assert {provider for provider, _ in pieces} == {"anthropic"}


async def test_stream_fails_explicitly_after_first_token() -> None:
    openai = ScriptedProvider("openai", {"primary": ["a b c d e"]}, cut_after=2,
                              cut_error=UpstreamUnavailable("connection reset"))
    anthropic = ScriptedProvider("anthropic", {"secondary": ["never"]})
    received: list[str] = []
    with pytest.raises(StreamInterrupted):
        async for _, delta in _router(openai, anthropic).stream(make_chat_request(stream=True), TARGETS):
            received.append(delta.text)
    assert received == ["a ", "b "]
    assert anthropic.calls == []


async def test_breaker_opens_and_skips_failing_target() -> None:
    openai = ScriptedProvider("openai", {"primary": [UpstreamUnavailable("x")] * 2})
    anthropic = ScriptedProvider("anthropic", {"secondary": ["first", "second"]})
    router = _router(openai, anthropic, threshold=2)
    await router.complete(make_chat_request(), TARGETS)
    completion, served = await router.complete(make_chat_request(), TARGETS)
    assert completion.content == "second" and served.fallback_used is True
    assert openai.calls == ["primary", "primary"]  # the open breaker kept the second request away


def test_retry_policy_backoff_grows_with_jitter_and_cap() -> None:
    policy = RetryPolicy(attempts_per_target=5, base_delay_s=1.0, max_delay_s=3.0)
    error = UpstreamUnavailable("x")
    delays = [policy.delay_s(attempt, error) for attempt in range(5)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 1.5 <= delays[2] <= 3.0
    assert 1.5 <= delays[3] <= 3.0  # capped at max_delay_s before jitter
    assert delays[4] is None  # the last attempt moves on instead of sleeping


def test_retry_policy_honours_retry_after_within_cap() -> None:
    policy = RetryPolicy(attempts_per_target=3, base_delay_s=1.0, max_delay_s=5.0)
    assert policy.delay_s(0, UpstreamRateLimited("x", retry_after_s=2.5)) == 2.5
    assert policy.delay_s(0, UpstreamRateLimited("x", retry_after_s=9.0)) is None


async def test_fallback_skips_unconfigured_provider_without_retry_or_breaker() -> None:
    openai = ScriptedProvider("openai", {"primary": [ProviderNotConfigured("set OPENAI_API_KEY")]})
    anthropic = ScriptedProvider("anthropic", {"secondary": ["served"]})
    router = _router(openai, anthropic, threshold=1)
    completion, served = await router.complete(make_chat_request(), TARGETS)
    assert completion.content == "served" and served.fallback_used
    assert openai.calls == ["primary"]
    assert await router._breaker.state(TARGETS[0].target_id) == "closed"
