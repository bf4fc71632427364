"""Never a silent drop, in the router, with the real adapters against the real fake upstream: a target that
cannot honour a parameter is skipped (the next one serves), unless dropping it is allowed, in which case it
serves and the answer names what it left out; when no target can, the request is refused naming the
parameter."""

from collections.abc import AsyncIterator

import pytest

from shared.errors import AllTargetsFailed, UnsupportedParameter
from shared.metrics import TARGETS_SKIPPED
from shared.models import ChatRequest, Message
from shared.routing_table import Target
from tests.factories import make_fake_redis
from tests.worker.providers.conftest import requests_for
from worker.breaker import CircuitBreaker
from worker.providers.anthropic import AnthropicProvider
from worker.providers.openai import OpenAIProvider
from worker.routing import RetryPolicy, Router

POLICY = RetryPolicy(attempts_per_target=1, base_delay_s=0.0, max_delay_s=0.0)
SEEDED = ChatRequest(model="smart", messages=[Message(role="user", content="hello there")], seed=7)


@pytest.fixture
async def router() -> AsyncIterator[Router]:
    openai = OpenAIProvider(api_key="sk-test", base_url=None, timeout_s=10, api_key_lookup=lambda _: None)
    anthropic = AnthropicProvider(api_key="sk-ant-test", base_url=None, timeout_s=10, api_key_lookup=lambda _: None)
    breaker = CircuitBreaker(make_fake_redis(), failure_threshold=100, open_s=30)
    yield Router({"openai": openai, "anthropic": anthropic}, breaker, POLICY)
    await openai.aclose()
    await anthropic.aclose()


def _route(fake_url: str, tag: str) -> list[Target]:
    """[an Anthropic target, an OpenAI target], with models named per test so the fake's counts are ours."""
    return [Target(provider="anthropic", model=f"claude-{tag}", base_url=fake_url),
            Target(provider="openai", model=f"gpt-{tag}", base_url=f"{fake_url}/v1")]


def _skipped(param: str) -> float:
    return TARGETS_SKIPPED.labels("anthropic", param)._value.get()  # type: ignore[attr-defined, no-any-return]


async def test_seed_skips_the_anthropic_target_and_openai_serves(router: Router, fake_url: str) -> None:
    before = _skipped("seed")
    completion, served = await router.complete(SEEDED, _route(fake_url, "skip"))
    assert completion.provider == "openai" and served.fallback_used is True
    assert completion.dropped_params == [] and served.dropped_params == ()
    assert await requests_for(fake_url, "claude-skip") == 0  # never called: no attempt, no breaker failure
    assert await requests_for(fake_url, "gpt-skip") == 1
    assert _skipped("seed") == before + 1


async def test_seed_allowed_to_drop_lets_the_anthropic_target_serve(router: Router, fake_url: str) -> None:
    completion, served = await router.complete(SEEDED, _route(fake_url, "drop"), allow_drop=frozenset({"seed"}))
    assert completion.provider == "anthropic" and served.fallback_used is False
    assert completion.dropped_params == ["seed"] and served.dropped_params == ("seed",)
    assert await requests_for(fake_url, "claude-drop") == 1
    assert await requests_for(fake_url, "gpt-drop") == 0


async def test_star_allows_dropping_anything(router: Router, fake_url: str) -> None:
    request = SEEDED.model_copy(update={"logit_bias": {"50256": -100.0}})
    completion, _ = await router.complete(request, _route(fake_url, "star"), allow_drop=frozenset({"*"}))
    assert completion.provider == "anthropic" and completion.dropped_params == ["logit_bias", "seed"]


async def test_stream_skips_then_names_the_drops_of_the_serving_target(router: Router, fake_url: str) -> None:
    request = SEEDED.model_copy(update={"stream": True})
    skipped = [served async for served, _ in router.stream(request, _route(fake_url, "s1"))]
    assert {served.target.provider for served in skipped} == {"openai"}
    dropped = [served async for served, _ in router.stream(request, _route(fake_url, "s2"),
                                                            allow_drop=frozenset({"seed"}))]
    assert {(served.target.provider, served.dropped_params) for served in dropped} == {("anthropic", ("seed",))}


async def test_no_target_can_honour_it_refuses_naming_the_parameter(router: Router, fake_url: str) -> None:
    # top_k only Anthropic honours, seed only OpenAI: each target is skipped for its own reason.
    request = SEEDED.model_copy(update={"top_k": 5})
    with pytest.raises(UnsupportedParameter) as caught:
        await router.complete(request, _route(fake_url, "none"))
    assert caught.value.param == "seed" and caught.value.status == 400
    assert caught.value.code == "unsupported_parameter" and "Anthropic" in caught.value.reason
    assert await requests_for(fake_url, "claude-none") == 0 and await requests_for(fake_url, "gpt-none") == 0
    with pytest.raises(UnsupportedParameter):
        async for _ in router.stream(request.model_copy(update={"stream": True}), _route(fake_url, "none")):
            pass


async def test_route_drop_names_match_either_apis_vocabulary(router: Router, fake_url: str) -> None:
    # An Anthropic client's five stop sequences: an OpenAI target takes four. `stop` (the OpenAI name) in a
    # routes file allows dropping the Anthropic client's `stop_sequences`.
    request = ChatRequest(model="smart", messages=[Message(role="user", content="hi")], source="anthropic",
                          stop=["a", "b", "c", "d", "e"], top_k=3)
    openai_only = [Target(provider="openai", model="gpt-vocab", base_url=f"{fake_url}/v1")]
    with pytest.raises(UnsupportedParameter) as caught:
        await router.complete(request, openai_only, allow_drop=frozenset({"top_k"}))
    assert caught.value.param == "stop_sequences"
    completion, _ = await router.complete(request, openai_only, allow_drop=frozenset({"top_k", "stop"}))
    assert completion.dropped_params == ["stop_sequences", "top_k"]


async def test_skip_metric_labels_unmodelled_fields_as_other(router: Router, fake_url: str) -> None:
    request = ChatRequest(model="smart", messages=[Message(role="user", content="hi")],
                          extra={"client_chosen_name_123": True})
    before = _skipped("other")
    with pytest.raises(UnsupportedParameter) as caught:
        await router.complete(request, _route(fake_url, "label")[:1])
    assert caught.value.param == "client_chosen_name_123"  # named to the client, never a label
    assert _skipped("other") == before + 1
    labels = {sample.labels.get("param") for metric in TARGETS_SKIPPED.collect() for sample in metric.samples}
    assert "client_chosen_name_123" not in labels


async def test_skipped_targets_are_named_when_the_others_fail(router: Router, fake_url: str) -> None:
    route = [Target(provider="anthropic", model="claude-named", base_url=fake_url),
             Target(provider="openai", model="gpt-named-fail-503", base_url=f"{fake_url}/v1")]
    with pytest.raises(AllTargetsFailed) as caught:
        await router.complete(SEEDED, route)
    assert "1 target(s) skipped: cannot honour 'seed'" in caught.value.message
    assert caught.value.status == 502
