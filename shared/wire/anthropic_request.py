"""A client's Messages request -> `ChatRequest` (`parse_request`).

Every field the Messages API defines is validated (400 naming it) and modelled where the model has a place;
the rest of the body is kept verbatim in `extra`, so an Anthropic target receives the request as sent. Parts
of objects the model only half covers are split: `thinking.display`, `output_config` keys other than
`effort`/`format`, and `metadata` keys other than `user_id` stay in `extra` under their own top-level key
and are merged back when the request is rendered for Anthropic (`shared.wire.anthropic_outbound`)."""

from collections.abc import Mapping
from typing import Any, Literal

from shared.content import ContentPart, OutputFormat, Reasoning, TextPart, Tool, ToolChoice
from shared.models import ChatRequest, Message, WireFormat
from shared.wire._common import (
    MAX_COUNT,
    build_chat_request,
    invalid,
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
from shared.wire.anthropic_blocks import parse_block, parse_cache_control, parse_text_blocks

__all__ = ["MODELLED_FIELDS", "parse_betas", "parse_request"]

JSON = Mapping[str, object]

ROLES: tuple[Literal["user", "assistant", "system"], ...] = ("user", "assistant", "system")
THINKING_MODES: tuple[Literal["enabled", "adaptive", "disabled"], ...] = ("enabled", "adaptive", "disabled")
TOOL_CHOICES: dict[str, Literal["auto", "none", "required", "tool"]] = {
    "auto": "auto", "any": "required", "tool": "tool", "none": "none"}
CUSTOM_TOOL_KEYS = frozenset({"name", "description", "input_schema", "cache_control", "strict"})

MODELLED_FIELDS = frozenset({
    "model", "messages", "system", "max_tokens", "temperature", "top_p", "top_k", "stop_sequences", "stream",
    "metadata", "tools", "tool_choice", "thinking", "output_config", "output_format", "service_tier",
})
"""Top-level fields read into the model; every other one goes to `extra` verbatim."""


def parse_betas(headers: Mapping[str, str] | None) -> list[str]:
    """`anthropic-beta` values, comma-separated (a repeated header arrives joined by commas), in order."""
    if not headers:
        return []
    raw = [value for key, value in headers.items() if key.lower() == "anthropic-beta"]
    betas: list[str] = []
    for value in raw:
        for item in value.split(","):
            beta = item.strip()
            if beta and beta not in betas:
                betas.append(beta)
    return betas


def parse_request(body: JSON, headers: Mapping[str, str] | None = None) -> ChatRequest:
    """Validate a client's Messages body; anything wrong raises InvalidRequest naming the field."""
    data = require_object(body, "request body")
    extra: dict[str, Any] = {key: value for key, value in data.items() if key not in MODELLED_FIELDS}
    max_tokens = optional_int(data, "max_tokens")
    if max_tokens is None:
        raise invalid("max_tokens", f"is required and must be an integer from 1 to {MAX_COUNT}")
    stop_sequences = data.get("stop_sequences")
    if isinstance(stop_sequences, str):
        raise invalid("stop_sequences", "must be an array of strings")
    stream = optional_bool(data, "stream")
    tool_choice, parallel = _tool_choice(data.get("tool_choice"))
    system = data.get("system")
    return build_chat_request(
        model=require_str(data, "model"),
        messages=_messages(require_list(data, "messages")),
        system=parse_text_blocks(system, "system") if system is not None else [],
        max_tokens=max_tokens,
        temperature=optional_number(data, "temperature", 0, 1),
        top_p=optional_number(data, "top_p", 0, 1),
        top_k=optional_int(data, "top_k", minimum=0),
        stop=string_list(stop_sequences, "stop_sequences"),
        stream=stream,
        include_usage=stream,  # Anthropic streams always report usage
        user=_user(data.get("metadata"), extra),
        tools=_tools(data.get("tools")),
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        reasoning=_reasoning(data, extra),
        output_format=_output_format(data),
        service_tier=optional_str(data, "service_tier"),
        source=WireFormat.ANTHROPIC,
        extra=extra,
        betas=parse_betas(headers),
    )


def _messages(items: list[object]) -> list[Message]:
    messages: list[Message] = []
    for index, item in enumerate(items):
        field = f"messages[{index}]"
        message = require_object(item, field)
        role = one_of(message.get("role"), ROLES)
        if role is None:
            raise invalid(f"{field}.role", f"must be 'user', 'assistant' or 'system' (got {message.get('role')!r})")
        content = message.get("content")
        if role == "system":
            messages.append(Message(role="system", content=list(parse_text_blocks(content, f"{field}.content"))))
            continue
        if isinstance(content, str):
            messages.append(Message(role=role, content=[TextPart(text=content)]))
            continue
        if not isinstance(content, list) or not content:
            raise invalid(f"{field}.content", "must be a string or a non-empty array of content blocks")
        parts: list[ContentPart] = [parse_block(block, f"{field}.content[{position}]")
                                    for position, block in enumerate(content)]
        messages.append(Message(role=role, content=parts))
    return messages


def _user(value: object, extra: dict[str, Any]) -> str | None:
    """`metadata.user_id` is the request's `user`; a metadata object with other keys is also kept whole in
    `extra` (Anthropic defines only `user_id`, so they are not the OpenAI-style `metadata` map)."""
    if value is None:
        return None
    metadata = require_object(value, "metadata")
    if set(metadata) - {"user_id"}:
        extra["metadata"] = dict(metadata)
    return optional_str(metadata, "user_id", "metadata.user_id")


def _tools(value: object) -> list[Tool]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("tools", "must be an array of tools")
    return [_tool(require_object(item, f"tools[{index}]"), f"tools[{index}]") for index, item in enumerate(value)]


def _tool(tool: JSON, field: str) -> Tool:
    """A custom tool is a function tool (its unmodelled keys, e.g. `defer_loading`, kept with it in `raw`);
    any other `type` is one of Anthropic's own tools, kept verbatim in `raw` with `kind` = its type."""
    name = require_str(tool, "name", f"{field}.name")
    kind = tool.get("type")
    control = parse_cache_control(tool, field)
    if kind is not None and kind != "custom":
        if not isinstance(kind, str):
            raise invalid(f"{field}.type", "must be a string")
        return Tool(kind=kind, name=name, cache_control=control, raw=dict(tool))
    schema = require_object(tool.get("input_schema"), f"{field}.input_schema")
    strict = tool.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise invalid(f"{field}.strict", "must be a boolean")
    raw = dict(tool) if set(tool) - CUSTOM_TOOL_KEYS else None
    return Tool(name=name, description=optional_str(tool, "description", f"{field}.description"),
                parameters=dict(schema), strict=strict, cache_control=control, raw=raw)


def _tool_choice(value: object) -> tuple[ToolChoice | None, bool | None]:
    if value is None:
        return None, None
    choice = require_object(value, "tool_choice")
    kind = choice.get("type")
    if kind not in TOOL_CHOICES:
        raise invalid("tool_choice.type", f"must be one of {sorted(TOOL_CHOICES)}")
    name = require_str(choice, "name", "tool_choice.name") if kind == "tool" else None
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise invalid("tool_choice.disable_parallel_tool_use", "must be a boolean")
    mode = TOOL_CHOICES[str(kind)]
    return ToolChoice(mode=mode, name=name), None if disable is None else not disable


def _reasoning(data: JSON, extra: dict[str, Any]) -> Reasoning | None:
    """`thinking` and `output_config.effort`. A thinking object the model cannot hold whole (a `display`
    setting, a type it does not know) is kept in `extra`, with what the model can hold modelled too."""
    effort = _effort(data.get("output_config"), extra)
    value = data.get("thinking")
    if value is None:
        return Reasoning(effort=effort) if effort else None
    thinking = require_object(value, "thinking")
    mode = thinking.get("type")
    if not isinstance(mode, str):
        raise invalid("thinking.type", "is required and must be a string")
    budget = None
    if mode == "enabled":
        budget = optional_int(thinking, "budget_tokens", minimum=1024, field="thinking.budget_tokens")
        if budget is None:
            raise invalid("thinking.budget_tokens", "is required with type 'enabled' (at least 1024)")
    display = thinking.get("display")
    if display is not None and display not in ("summarized", "omitted"):
        raise invalid("thinking.display", "must be 'summarized' or 'omitted'")
    known = one_of(mode, THINKING_MODES)
    if known is None or set(thinking) - {"type", "budget_tokens"}:
        extra["thinking"] = dict(thinking)
    if known is None:
        return Reasoning(effort=effort) if effort else None
    return Reasoning(mode=known, budget_tokens=budget, effort=effort)


def _effort(value: object, extra: dict[str, Any]) -> str | None:
    if value is None:
        return None
    config = require_object(value, "output_config")
    rest = {key: item for key, item in config.items() if key not in ("effort", "format")}
    if rest:
        extra["output_config"] = rest
    effort = optional_str(config, "effort", "output_config.effort")
    if effort == "":
        raise invalid("output_config.effort", "must be a non-empty string")
    return effort


def _output_format(data: JSON) -> OutputFormat | None:
    """Structured outputs: `output_config.format` (GA) or the beta's top-level `output_format`."""
    config = data.get("output_config")
    value, field = (config.get("format"), "output_config.format") if isinstance(config, Mapping) else (None, "")
    if value is None and data.get("output_format") is not None:
        value, field = data.get("output_format"), "output_format"
    if value is None:
        return None
    spec = require_object(value, field)
    if spec.get("type") != "json_schema":
        raise invalid(f"{field}.type", "must be 'json_schema'")
    schema = require_object(spec.get("schema"), f"{field}.schema")
    if set(spec) - {"type", "schema"}:
        raise invalid(field, "may only have 'type' and 'schema'")
    return OutputFormat(type="json_schema", json_schema=dict(schema))
