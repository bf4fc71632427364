"""A client's Chat Completions body read into the internal model: every field the API defines is validated
(a 400 naming it) and modelled, and every other top-level field is kept verbatim in `extra`, forwarded to an
OpenAI target through the SDK's `extra_body`. Nothing is ignored."""

from collections.abc import Mapping
from typing import Literal

from shared.content import OutputFormat, Reasoning, Tool, ToolChoice
from shared.models import ChatRequest, WireFormat
from shared.wire._common import (
    INT64,
    build_chat_request,
    invalid,
    nullable_bool,
    one_of,
    optional_bool,
    optional_int,
    optional_number,
    optional_str,
    require_list,
    require_object,
    require_str,
    string_list,
)
from shared.wire.openai_common import MAX_STOP, parse_function_tool, parse_json_schema_format, parse_metadata
from shared.wire.openai_parts import parse_messages

__all__ = ["MODELLED_FIELDS", "parse_request"]

JSON = Mapping[str, object]

MODELLED_FIELDS = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "stream",
    "stream_options", "user", "tools", "functions", "tool_choice", "function_call", "parallel_tool_calls",
    "response_format", "reasoning_effort", "seed", "frequency_penalty", "presence_penalty", "logit_bias",
    "logprobs", "top_logprobs", "n", "metadata", "service_tier", "store", "prompt_cache_key", "safety_identifier",
})
"""The top-level fields read into the model; any other one goes to `extra` as it came."""

ToolChoiceMode = Literal["auto", "none", "required"]  # a string `tool_choice`; `ToolChoice.mode` has "tool" too
TOOL_CHOICE_MODES: tuple[ToolChoiceMode, ...] = ("auto", "none", "required")
FUNCTION_CALL_MODES: tuple[ToolChoiceMode, ...] = ("auto", "none")


def parse_request(body: Mapping[str, object], headers: Mapping[str, str] | None = None) -> ChatRequest:
    """Validate a client's Chat Completions body. `headers` are accepted for parity with the Anthropic module:
    no OpenAI header changes what the request means."""
    data = require_object(body, "request body")
    model = require_str(data, "model")
    messages = parse_messages(require_list(data, "messages"))
    max_tokens = optional_int(data, "max_tokens")
    max_completion_tokens = optional_int(data, "max_completion_tokens")
    options = _object(data, "stream_options")
    tools = _tools(data)
    extra = {key: value for key, value in data.items() if key not in MODELLED_FIELDS}
    if set(options) - {"include_usage"}:
        extra["stream_options"] = {key: value for key, value in options.items() if key != "include_usage"}
    tool_choice, raw_choice = _tool_choice(data)
    if raw_choice is not None:
        extra["tool_choice"] = raw_choice
    return build_chat_request(
        model=model,
        messages=messages,
        max_tokens=max_completion_tokens if max_completion_tokens is not None else max_tokens,
        temperature=optional_number(data, "temperature", 0, 2),
        top_p=optional_number(data, "top_p", 0, 1),
        stop=string_list(data.get("stop"), "stop", max_items=MAX_STOP),
        stream=optional_bool(data, "stream"),
        include_usage=optional_bool(options, "include_usage", "stream_options.include_usage"),
        user=optional_str(data, "user"),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=nullable_bool(data, "parallel_tool_calls"),
        output_format=_output_format(data.get("response_format")),
        reasoning=_reasoning(data),
        seed=optional_int(data, "seed", minimum=INT64[0], maximum=INT64[1]),
        frequency_penalty=optional_number(data, "frequency_penalty", -2, 2),
        presence_penalty=optional_number(data, "presence_penalty", -2, 2),
        logit_bias=_logit_bias(data.get("logit_bias")),
        logprobs=nullable_bool(data, "logprobs"),
        top_logprobs=optional_int(data, "top_logprobs", minimum=0, maximum=20),
        n=optional_int(data, "n", minimum=1, maximum=128),
        metadata=parse_metadata(data.get("metadata")),
        service_tier=optional_str(data, "service_tier"),
        store=nullable_bool(data, "store"),
        prompt_cache_key=optional_str(data, "prompt_cache_key"),
        safety_identifier=optional_str(data, "safety_identifier"),
        source=WireFormat.OPENAI,
        extra=extra,
    )


def _object(data: JSON, key: str) -> JSON:
    value = data.get(key)
    return {} if value is None else require_object(value, key)


def _tools(data: JSON) -> list[Tool]:
    """`tools` (function tools, and any other type such as `custom` kept verbatim in `raw`) and the legacy
    `functions`, which are function tools without the wrapper."""
    tools: list[Tool] = []
    for key in ("tools", "functions"):
        items = data.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            raise invalid(key, "must be an array")
        for index, item in enumerate(items):
            field = f"{key}[{index}]"
            tool = require_object(item, field)
            if key == "functions":
                tools.append(parse_function_tool(tool, field))
                continue
            kind = require_str(tool, "type", f"{field}.type")
            if kind == "function":
                function = f"{field}.function"
                tools.append(parse_function_tool(require_object(tool.get("function"), function), function))
            else:
                spec = require_object(tool.get(kind), f"{field}.{kind}")
                tools.append(Tool(kind=kind, name=require_str(spec, "name", f"{field}.{kind}.name"), raw=dict(tool)))
    return tools


def _tool_choice(data: JSON) -> tuple[ToolChoice | None, object]:
    """(the modelled choice, a shape the model has no place for, kept verbatim: `allowed_tools`)."""
    key = "tool_choice" if data.get("tool_choice") is not None else "function_call"
    value = data.get(key)
    if value is None:
        return None, None
    if isinstance(value, str):
        modes = TOOL_CHOICE_MODES if key == "tool_choice" else FUNCTION_CALL_MODES
        mode = one_of(value, modes)
        if mode is None:
            raise invalid(key, f"must be one of {', '.join(map(repr, modes))} or an object naming a tool")
        return ToolChoice(mode=mode), None
    choice = require_object(value, key)
    if key == "function_call":
        return ToolChoice(mode="tool", name=require_str(choice, "name", "function_call.name")), None
    kind = require_str(choice, "type", "tool_choice.type")
    if kind == "allowed_tools":
        require_object(choice.get("allowed_tools"), "tool_choice.allowed_tools")
        return None, dict(choice)
    if kind not in ("function", "custom"):
        raise invalid("tool_choice.type", f"must be 'function', 'custom' or 'allowed_tools' (got {kind!r})")
    named = require_object(choice.get(kind), f"tool_choice.{kind}")
    return ToolChoice(mode="tool", name=require_str(named, "name", f"tool_choice.{kind}.name")), None


def _output_format(value: object) -> OutputFormat | None:
    """`text` is the absence of a format; `json_object`; `json_schema` with its name, schema, strict."""
    if value is None:
        return None
    response_format = require_object(value, "response_format")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return OutputFormat(type="json_object")
    if kind != "json_schema":
        raise invalid("response_format.type", f"must be 'text', 'json_object' or 'json_schema' (got {kind!r})")
    field = "response_format.json_schema"
    return parse_json_schema_format(require_object(response_format.get("json_schema"), field), field)


def _reasoning(data: JSON) -> Reasoning | None:
    effort = optional_str(data, "reasoning_effort")
    return None if effort is None else Reasoning(effort=effort)


def _logit_bias(value: object) -> dict[str, float] | None:
    """Token ids (as strings, JSON keys) to a bias from -100 to 100."""
    if value is None:
        return None
    bias = require_object(value, "logit_bias")
    result: dict[str, float] = {}
    for token, weight in bias.items():
        if not str(token).isdigit() or not str(token).isascii():
            raise invalid("logit_bias", f"keys must be token ids (got {token!r})")
        if weight is None:
            raise invalid(f"logit_bias.{token}", "must be a number between -100 and 100")
        result[str(token)] = optional_number(bias, token, -100, 100, f"logit_bias.{token}") or 0.0
    return result
