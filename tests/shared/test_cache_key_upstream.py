"""Everything that is part of the cache key reaches the upstream, or the request is refused (issue 13).

The response cache's key is a digest of the client's whole body minus `NOT_IN_KEY` (shared/cache.py), so
two requests that differ in any other field never share an answer. That is only sound if every such field
changes what the upstream is asked: a field in the key that never reached the upstream (as `seed` once did)
makes identical upstream calls look different, and worse, hides that it was dropped. So, field by field,
for every field of each API's official request type (the SDKs' create parameters) and the unmodelled-field
path: body -> `parse_request` -> `render_request` for a target of the same format must carry the field
(under its name, or the one alias the format has), unless it is in `NOT_IN_KEY`, or the gateway refuses
it (400 at parsing, or `unsupported_params` for that target: then it is never silently served).

Written against the issue-13 wire contract (`render_request(..., drop=...)`, `parse_request(body,
headers)`): skipped while the wire modules predate it."""

import inspect
import json
from collections.abc import Callable, Mapping

import pytest
from anthropic.types.message_create_params import MessageCreateParamsBase
from openai.types.chat.completion_create_params import CompletionCreateParamsBase

from shared.cache import NOT_IN_KEY
from shared.errors import InvalidRequest
from shared.models import WireFormat
from shared.wire import anthropic as anthropic_wire
from shared.wire import openai as openai_wire
from shared.wire.capabilities import unsupported_params

MARK = "cache-key-marker-7f3a"
Check = Callable[[Mapping[str, object]], bool]
Sample = tuple[object, Check | None]  # (the field's value, a custom check of the rendered kwargs, else None)


def _ready() -> bool:
    return all("drop" in inspect.signature(wire.render_request).parameters for wire in (openai_wire, anthropic_wire))


pytestmark = pytest.mark.skipif(not _ready(), reason="the wire modules predate the issue-13 contract")


def _values(data: object, key: str) -> list[object]:
    """Every value stored under `key` anywhere in the kwargs (top level, `extra_body`, nested)."""
    found: list[object] = []
    if isinstance(data, Mapping):
        for name, value in data.items():
            if name == key:
                found.append(value)
            found.extend(_values(value, key))
    elif isinstance(data, list | tuple):
        for item in data:
            found.extend(_values(item, key))
    return found


def _carries(key: str, value: object, *aliases: str) -> Check:
    wanted = [value, [value]] if not isinstance(value, list) else [value]
    return lambda kw: any(found in wanted for name in (key, *aliases) for found in _values(kw, name))


def _marked(kw: Mapping[str, object]) -> bool:
    return MARK in json.dumps(kw, default=str)


FUNCTION_TOOL = {"type": "function", "function": {"name": MARK, "parameters": {"type": "object"}}}
OPENAI_SAMPLES: dict[str, Sample] = {
    "messages": ([{"role": "user", "content": MARK}], _marked),
    "max_tokens": (321, _carries("max_tokens", 321, "max_completion_tokens")),
    "max_completion_tokens": (321, _carries("max_completion_tokens", 321, "max_tokens")),
    "temperature": (0.7, None),
    "top_p": (0.9, None),
    "stop": ("END", None),
    "n": (2, None),
    "tools": ([FUNCTION_TOOL], _marked),
    "tool_choice": ("required", None),
    "parallel_tool_calls": (False, None),
    "response_format": ({"type": "json_schema", "json_schema": {"name": MARK, "schema": {"type": "object"}}}, _marked),
    "reasoning_effort": ("high", None),
    "seed": (48611, None),
    "frequency_penalty": (0.25, None),
    "presence_penalty": (0.5, None),
    "logit_bias": ({"50256": -100}, None),
    "logprobs": (True, None),
    "top_logprobs": (3, None),
    "service_tier": ("flex", None),
    "store": (True, None),
    "prompt_cache_key": (MARK, None),
    "prompt_cache_retention": ("24h", None),
    "prompt_cache_options": ({"mode": "explicit", "ttl": "30m"}, None),
    "safety_identifier": (MARK, None),
    "prediction": ({"type": "content", "content": MARK}, _marked),
    "modalities": (["text"], None),
    "audio": ({"voice": "alloy", "format": "wav"}, None),
    "verbosity": ("low", None),
    "web_search_options": ({"search_context_size": "low"}, None),
    "moderation": ({"mode": "block"}, None),
    "functions": ([{"name": MARK, "parameters": {"type": "object"}}], _marked),
    "function_call": ({"name": MARK}, _marked),
    "x_gateway_future_field": ({"nested": MARK}, _marked),  # a field no SDK knows yet: verbatim
}
ANTHROPIC_SAMPLES: dict[str, Sample] = {
    "messages": ([{"role": "user", "content": MARK}], _marked),
    "max_tokens": (321, None),
    "system": (MARK, _marked),
    "temperature": (0.3, None),
    "top_p": (0.8, None),
    "top_k": (40, None),
    "stop_sequences": (["END1"], None),
    "tools": ([{"name": MARK, "input_schema": {"type": "object"}}], _marked),
    "tool_choice": ({"type": "any"}, _carries("type", "any")),
    "thinking": ({"type": "enabled", "budget_tokens": 2048}, _carries("budget_tokens", 2048)),
    "output_config": ({"effort": "high"}, _carries("effort", "high")),
    "service_tier": ("standard_only", None),
    "cache_control": ({"type": "ephemeral"}, None),
    "container": (MARK, _marked),
    "context_management": ({"edits": [{"type": "clear_tool_uses_20250919"}]}, _carries("type",
                                                                                        "clear_tool_uses_20250919")),
    "mcp_servers": ([{"type": "url", "url": "https://example.com/mcp", "name": MARK}], _marked),
    "diagnostics": ({"level": MARK}, _marked),
    "inference_geo": ("us", None),
    "speed": ("fast", None),
    "user_profile_id": (MARK, None),
    "workspace_id": (MARK, None),
    "x_gateway_future_field": ({"nested": MARK}, _marked),
}
# Fields routing decides rather than forwards: the public model name becomes the target's model.
ROUTED = frozenset({"model"})
APIS = {
    WireFormat.OPENAI: (openai_wire, OPENAI_SAMPLES,
                        {"model": "public", "messages": [{"role": "user", "content": "hi"}]}),
    WireFormat.ANTHROPIC: (anthropic_wire, ANTHROPIC_SAMPLES,
                           {"model": "public", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}),
}


@pytest.mark.parametrize(("fmt", "params"), [(WireFormat.OPENAI, CompletionCreateParamsBase),
                                             (WireFormat.ANTHROPIC, MessageCreateParamsBase)])
def test_every_sdk_field_has_a_sample(fmt: WireFormat, params: type) -> None:
    _, samples, _ = APIS[fmt]
    documented = set(params.__annotations__) - NOT_IN_KEY - ROUTED
    assert documented - set(samples) == set()


@pytest.mark.parametrize(("fmt", "field"), [(fmt, field) for fmt, (_, samples, _) in APIS.items() for field in samples])
def test_field_in_the_cache_key_reaches_the_same_format_upstream_or_is_refused(fmt: WireFormat, field: str) -> None:
    wire, samples, base = APIS[fmt]
    value, check = samples[field]
    assert field not in NOT_IN_KEY
    try:
        request = wire.parse_request({**base, field: value}, {})
    except InvalidRequest:
        return  # refused: never served, so never cached
    if field in unsupported_params(request, fmt, "target-model"):
        return  # no target of this format is called with it (routing skips, the API refuses)
    kwargs = wire.render_request(request, "target-model")
    carried = (check or _carries(field, value))(kwargs)
    assert carried, f"{fmt.value} '{field}' is part of the cache key but did not reach the upstream: {kwargs}"
