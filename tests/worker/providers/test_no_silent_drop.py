"""No silent drop left (issue 13, Must show): every field of each API's official request type, and an
unmodelled one, sent to a target of each provider through the real router and adapters, against the real
fake upstream, which records what it received. For each (field, target) the field either reaches the
upstream (the recorded body carries its value, as sent or translated), or the request is refused (400 at
parsing, `unsupported_parameter` from routing, or the upstream's own 4xx); and when dropping is allowed
(`*`), a field that did not reach the upstream is named in `dropped_params`.

Runs once the wire modules follow the issue-13 contract and the fake provider records requests."""

import importlib.util
import inspect
from collections.abc import AsyncIterator, Callable, Mapping

import httpx
import pytest

from shared.errors import InvalidRequest, UnsupportedParameter, UpstreamRejected
from shared.models import ChatRequest, WireFormat
from shared.routing_table import Target
from shared.wire import anthropic as anthropic_wire
from shared.wire import openai as openai_wire
from shared.wire._common import client_name
from shared.wire.capabilities import PROVIDER_FORMATS
from tests.factories import make_fake_redis
from tests.shared.test_cache_key_upstream import ANTHROPIC_SAMPLES, MARK, OPENAI_SAMPLES
from worker.breaker import CircuitBreaker
from worker.providers.anthropic import AnthropicProvider
from worker.providers.openai import OpenAIProvider
from worker.routing import RetryPolicy, Router

WIRES = {WireFormat.OPENAI: openai_wire, WireFormat.ANTHROPIC: anthropic_wire}
BASES: dict[WireFormat, dict[str, object]] = {
    WireFormat.OPENAI: {"messages": [{"role": "user", "content": "hi"}]},
    WireFormat.ANTHROPIC: {"max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
}
# Fields outside the cache key still must not vanish.
NOT_KEYED: dict[WireFormat, dict[str, object]] = {
    WireFormat.OPENAI: {"user": MARK, "metadata": {"run": MARK}},
    WireFormat.ANTHROPIC: {"metadata": {"user_id": MARK}},
}
Check = Callable[[object], bool]


def _ready() -> bool:
    wires = all("drop" in inspect.signature(wire.render_request).parameters for wire in WIRES.values())
    return wires and importlib.util.find_spec("shared.fake_provider_recording") is not None


pytestmark = pytest.mark.skipif(not _ready(), reason="needs the issue-13 wire modules and the recording fake")


def _leaves(value: object) -> list[object]:
    if isinstance(value, Mapping):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list | tuple):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def _has(body: object, leaf: object) -> bool:
    if isinstance(body, Mapping):
        return any(_has(item, leaf) for item in body.values())
    if isinstance(body, list):
        return any(_has(item, leaf) for item in body)
    if isinstance(leaf, str) and isinstance(body, str):
        return leaf in body
    if isinstance(leaf, bool) or isinstance(body, bool):
        return body is leaf
    return isinstance(body, int | float) and isinstance(leaf, int | float) and body == leaf


def _key(body: object, key: str, expected: object) -> bool:
    if isinstance(body, Mapping):
        return (body.get(key) == expected) or any(_key(item, key, expected) for item in body.values())
    if isinstance(body, list):
        return any(_key(item, key, expected) for item in body)
    return False


# How a field shows in the other format's body when its value is translated, not copied.
TRANSLATED: dict[tuple[WireFormat, str], Check] = {
    (WireFormat.OPENAI, "reasoning_effort"): lambda body: _key(body, "type", "enabled"),
    (WireFormat.OPENAI, "tool_choice"): lambda body: _key(body, "type", "any"),
    # Without tools there are no parallel calls to allow or forbid: nothing to carry.
    (WireFormat.OPENAI, "parallel_tool_calls"): lambda body: _key(body, "disable_parallel_tool_use", True)
    or (isinstance(body, Mapping) and "tools" not in body),
    # A JSON schema's `name` is OpenAI's label for it; the schema itself is what constrains the answer.
    (WireFormat.OPENAI, "response_format"): lambda body: _key(body, "type", "json_schema"),
    (WireFormat.OPENAI, "service_tier"): lambda body: _key(body, "service_tier", "standard_only"),
    (WireFormat.ANTHROPIC, "thinking"): lambda body: _key(body, "reasoning_effort", "low"),
    (WireFormat.ANTHROPIC, "tool_choice"): lambda body: _key(body, "tool_choice", "required"),
    (WireFormat.ANTHROPIC, "service_tier"): lambda body: _key(body, "service_tier", "default"),
}
BOOLEANS = {"parallel_tool_calls": "parallel_tool_calls", "logprobs": "logprobs", "store": "store"}


def _reached(source: WireFormat, field: str, value: object, body: object, same: bool) -> bool:
    translated = TRANSLATED.get((source, field))
    if translated is not None and not same:
        return translated(body)
    if field in BOOLEANS:
        return _key(body, BOOLEANS[field], value)
    if MARK in str(value):  # the distinctive part of a structured value (names, texts) must arrive
        return _has(body, MARK)
    return all(_has(body, leaf) for leaf in _leaves(value))


CASES = [(source, field, value, provider)
         for source, samples in ((WireFormat.OPENAI, OPENAI_SAMPLES), (WireFormat.ANTHROPIC, ANTHROPIC_SAMPLES))
         for field, value in [*((name, sample[0]) for name, sample in samples.items()),
                              *NOT_KEYED[source].items()]
         for provider in PROVIDER_FORMATS]


@pytest.fixture
async def router() -> AsyncIterator[Router]:
    openai = OpenAIProvider(api_key="sk-test", base_url=None, timeout_s=10, api_key_lookup=lambda _: None)
    anthropic = AnthropicProvider(api_key="sk-ant-test", base_url=None, timeout_s=10, api_key_lookup=lambda _: None)
    breaker = CircuitBreaker(make_fake_redis(), failure_threshold=1000, open_s=30)
    yield Router({"openai": openai, "anthropic": anthropic}, breaker, RetryPolicy(1, 0.0, 0.0))
    await openai.aclose()
    await anthropic.aclose()


async def _recorded(fake_url: str, model: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{fake_url}/_requests", params={"model": model})
    entries: list[dict[str, object]] = response.json()["requests"]
    return entries


def _target(fake_url: str, provider: WireFormat, model: str) -> Target:
    base = f"{fake_url}/v1" if provider is WireFormat.OPENAI else fake_url
    return Target(provider=provider.value, model=model, base_url=base)


async def _serve(router: Router, request: ChatRequest, target: Target, streamed: bool,
                 allow_drop: frozenset[str] = frozenset()) -> list[str]:
    """Serve `request` whole or streamed (to its end); the parameters the serving target dropped."""
    if not streamed:
        completion, _ = await router.complete(request, [target], allow_drop=allow_drop)
        return completion.dropped_params
    dropped: list[str] = []
    async for served, _ in router.stream(request.model_copy(update={"stream": True}), [target], allow_drop=allow_drop):
        dropped = list(served.dropped_params)
    return dropped


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(("source", "field", "value", "provider"), CASES,
                         ids=[f"{s.value}-{f}-to-{p.value}" for s, f, _, p in CASES])
async def test_every_field_reaches_the_upstream_or_is_refused_or_named(
        router: Router, fake_url: str, source: WireFormat, field: str, value: object, provider: WireFormat,
        streamed: bool) -> None:
    try:
        request: ChatRequest = WIRES[source].parse_request({"model": "public", **BASES[source], field: value}, {})
    except InvalidRequest:
        return  # refused at the door
    model = f"nsd-{source.value}-{field}-{provider.value}-{'s' if streamed else 'w'}"
    try:
        await _serve(router, request, _target(fake_url, provider, model), streamed)
    except (UnsupportedParameter, UpstreamRejected):
        reached = False  # refused, by the gateway or by the upstream itself: not silently served
    else:
        sent = await _recorded(fake_url, model)
        assert len(sent) == 1
        assert _reached(source, field, value, sent[0]["body"], provider is source), \
            f"'{field}' of a {source.value} client was served by {provider.value} without reaching it: {sent[0]}"
        reached = True
    if reached:
        return
    try:
        dropped = await _serve(router, request, _target(fake_url, provider, f"{model}-star"), streamed,
                               frozenset({"*"}))
    except UpstreamRejected:
        return  # the upstream itself refused what was left: loud, not silent
    names = {field, client_name(field, source)}
    sent = (await _recorded(fake_url, f"{model}-star"))[0]["body"]
    assert names & set(dropped) or _reached(source, field, value, sent, provider is source), \
        f"'{field}' was dropped for {provider.value} without being named: {dropped}"
