"""`Router.call`, the routing of non-chat provider calls (embeddings, legacy completions): targets tried in
route order, retries on the same target, fallback only on retryable errors, the circuit breaker shared with
chat, and targets that cannot serve the endpoint skipped, counted, and named when none can."""

import pytest
from prometheus_client import REGISTRY

from shared.errors import (
    AllTargetsFailed,
    UnsupportedParameter,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from shared.routing_table import Target
from tests.factories import make_fake_redis, target
from worker.breaker import CircuitBreaker
from worker.providers.base import Provider
from worker.routing import RetryPolicy, Router

POLICY = RetryPolicy(attempts_per_target=2, base_delay_s=0.0, max_delay_s=1.0)
FIRST, SECOND, THIRD = target("openai", "first"), target("openai", "second"), target("anthropic", "third")


class Script:
    """`invoke` for Router.call: each call pops the next outcome of its target's model (raise or return)."""

    def __init__(self, outcomes: dict[str, list[Exception | str]]) -> None:
        self.outcomes = outcomes
        self.calls: list[str] = []

    async def __call__(self, provider: Provider, target: Target) -> str:
        self.calls.append(target.model)
        outcome = self.outcomes[target.model].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return f"{outcome} via {provider.name}"


class Named:
    def __init__(self, name: str) -> None:
        self.name = name


def _router(threshold: int = 100) -> Router:
    breaker = CircuitBreaker(make_fake_redis(), failure_threshold=threshold, open_s=30)
    return Router({"openai": Named("openai"), "anthropic": Named("anthropic")}, breaker, POLICY)  # type: ignore[dict-item]


def _serves_all(_: Target) -> tuple[str, str] | None:
    return None


async def test_call_answers_from_the_first_target() -> None:
    script = Script({"first": ["ok"]})
    result, served = await _router().call([FIRST, SECOND], script, refuse=_serves_all)
    assert result == "ok via openai" and served.target == FIRST and served.fallback_used is False


@pytest.mark.parametrize("error", [UpstreamUnavailable("503"), UpstreamRateLimited("429", retry_after_s=0.0),
                                   UpstreamTimeout("slow")], ids=["5xx", "429", "timeout"])
async def test_call_retries_then_falls_back_in_route_order_when_retryable(error: Exception) -> None:
    script = Script({"first": [error, error], "second": [error, error], "third": ["ok"]})
    result, served = await _router().call([FIRST, SECOND, THIRD], script, refuse=_serves_all)
    assert script.calls == ["first", "first", "second", "second", "third"]
    assert result == "ok via anthropic" and served.target == THIRD and served.fallback_used is True


async def test_call_retries_the_same_target_before_moving_on() -> None:
    script = Script({"first": [UpstreamUnavailable("blip"), "ok"]})
    _, served = await _router().call([FIRST, SECOND], script, refuse=_serves_all)
    assert script.calls == ["first", "first"] and served.fallback_used is False


async def test_call_stops_at_a_client_error_without_fallback() -> None:
    script = Script({"first": [UpstreamRejected("bad input", status=400)], "second": ["never"]})
    with pytest.raises(UpstreamRejected):
        await _router().call([FIRST, SECOND], script, refuse=_serves_all)
    assert script.calls == ["first"]


async def test_call_exhausted_raises_all_targets_failed_keeping_a_common_429() -> None:
    limited = UpstreamRateLimited("slow down", retry_after_s=0.0)
    script = Script({"first": [limited, limited], "second": [limited, limited]})
    with pytest.raises(AllTargetsFailed) as caught:
        await _router().call([FIRST, SECOND], script, refuse=_serves_all)
    assert caught.value.status == 429 and "slow down" in caught.value.message


async def test_call_breaker_opens_and_keeps_later_calls_off_the_failing_target() -> None:
    router = _router(threshold=2)
    down = UpstreamUnavailable("down")
    first = Script({"first": [down, down], "second": ["ok"]})
    await router.call([FIRST, SECOND], first, refuse=_serves_all)
    second = Script({"first": ["never"], "second": ["ok again"]})
    result, served = await router.call([FIRST, SECOND], second, refuse=_serves_all)
    assert second.calls == ["second"] and result == "ok again via openai" and served.fallback_used is True


async def test_call_breaker_open_on_every_target_is_all_targets_failed() -> None:
    router = _router(threshold=1)
    for model in ("first", "second"):
        with pytest.raises(AllTargetsFailed):
            await router.call([target("openai", model)], Script({model: [UpstreamUnavailable("z")] * 2}),
                              refuse=_serves_all)
    script = Script({"first": ["never"], "second": ["never"]})
    with pytest.raises(AllTargetsFailed, match="circuit open"):
        await router.call([FIRST, SECOND], script, refuse=_serves_all)
    assert script.calls == []


async def test_call_skips_targets_that_cannot_serve_and_counts_them() -> None:
    def refuse(candidate: Target) -> tuple[str, str] | None:
        return ("model", "chat only") if candidate.model == "first" else None

    before = REGISTRY.get_sample_value("llm_gateway_targets_skipped_total",
                                       {"provider": "openai", "param": "model"}) or 0.0
    script = Script({"second": ["ok"]})
    _, served = await _router().call([FIRST, SECOND], script, refuse=refuse)
    assert script.calls == ["second"] and served.target == SECOND and served.fallback_used is True
    assert REGISTRY.get_sample_value("llm_gateway_targets_skipped_total",
                                     {"provider": "openai", "param": "model"}) == before + 1


async def test_call_names_the_reason_when_no_target_can_serve() -> None:
    script = Script({})
    with pytest.raises(UnsupportedParameter) as caught:
        await _router().call([FIRST, SECOND], script, refuse=lambda _: ("model", "does not serve embeddings"))
    assert caught.value.param == "model" and "does not serve embeddings" in caught.value.message
    assert script.calls == []


async def test_call_says_why_skipped_targets_were_not_tried_when_the_rest_failed() -> None:
    script = Script({"second": [UpstreamUnavailable("down")] * 2})
    with pytest.raises(AllTargetsFailed) as caught:
        await _router().call([FIRST, SECOND], script,
                             refuse=lambda candidate: ("model", "chat only") if candidate == FIRST else None)
    assert "1 target(s) skipped" in caught.value.message and "chat only" in caught.value.message
