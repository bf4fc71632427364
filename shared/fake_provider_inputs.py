"""What a request asks the fake provider for, read from either wire format into one neutral view: the tools
offered and the tool choice, tool results in the last turn, a JSON Schema the answer must follow, thinking or
reasoning, attachments (images, documents, audio), stop sequences, the refusal trigger and the tool
directive. Used only by the fake provider's modules.

Documented triggers, for tests: the word `REFUSE` in the last user turn makes the model refuse;
`[tool:NAME]` or `[tool:NAME {"arg": "value"}]` there picks the tool it calls (arguments given are used,
the others generated from the schema)."""

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.fake_provider_script import content_text

__all__ = ["REFUSAL_TRIGGER", "Inputs", "ToolSpec", "anthropic_inputs", "openai_inputs"]

REFUSAL_TRIGGER = "REFUSE"
_TOOL_DIRECTIVE = re.compile(r"\[tool:([A-Za-z0-9_.:-]+)(\s+\{.*?\})?\]", re.DOTALL)
_SYSTEM_ROLES = ("system", "developer")
_DATA_URL = re.compile(r"^data:([^;,]+)(?:;[^,]*)?,(.*)$", re.DOTALL)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class Inputs:
    """The neutral view of one request: everything the reply depends on besides the model name."""

    user_text: str = ""
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str = "auto"  # auto | none | required | named
    forced_tool: str | None = None
    tool_results: tuple[str, ...] = ()
    output_schema: Mapping[str, Any] | None = None
    json_object: bool = False
    thinking: bool = False
    reasoning_effort: str | None = None
    attachments: tuple[str, ...] = ()
    stop_sequences: tuple[str, ...] = ()
    directive_args: Mapping[str, Any] = field(default_factory=dict)
    directive_tool: str | None = None

    @property
    def refuses(self) -> bool:
        return REFUSAL_TRIGGER in self.user_text

    def tool_to_call(self) -> ToolSpec | None:
        """The tool the model calls now, or None for a text answer (no tools, choice none, or a tool turn)."""
        if not self.tools or self.tool_choice == "none" or self.tool_results:
            return None
        by_name = {tool.name: tool for tool in self.tools}
        wanted = self.forced_tool if self.tool_choice == "named" else self.directive_tool
        return by_name.get(wanted or "", self.tools[0])


def _directive(text: str) -> tuple[str | None, Mapping[str, Any]]:
    found = _TOOL_DIRECTIVE.search(text)
    if found is None:
        return None, {}
    try:
        args = json.loads(found.group(2)) if found.group(2) else {}
    except ValueError:
        args = {}
    return found.group(1), args if isinstance(args, dict) else {}


def _decoded_size(data: object) -> str:
    if not isinstance(data, str):
        return "no data"
    try:
        return f"{len(base64.b64decode(data, validate=True))} bytes"
    except (binascii.Error, ValueError):
        return "invalid base64"


def _data_url(url: object, fallback_type: str) -> str:
    if not isinstance(url, str):
        return f"{fallback_type} no url"
    found = _DATA_URL.match(url)
    if found is None:
        return f"{fallback_type} url {url}"
    return f"{found.group(1)} {_decoded_size(found.group(2))}"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _last_turn(messages: list[Any]) -> Mapping[str, Any]:
    """The last message that is not a system turn (Claude Code puts a system message after the user's)."""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") not in _SYSTEM_ROLES:
            return message
    return {}


def _last_user(messages: list[Any]) -> Mapping[str, Any]:
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return message
    return {}


def _parts(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content")
    return [part for part in content if isinstance(part, Mapping)] if isinstance(content, list) else []


def _common(body: Mapping[str, Any], user_text: str) -> dict[str, Any]:
    tool, args = _directive(user_text)
    stop = body.get("stop_sequences", body.get("stop"))
    stops = (stop,) if isinstance(stop, str) else tuple(s for s in _list(stop) if isinstance(s, str) and s)
    return {"user_text": user_text, "directive_tool": tool, "directive_args": args, "stop_sequences": stops}


# --- OpenAI Chat Completions ---------------------------------------------------------------------------


def openai_inputs(body: Mapping[str, Any]) -> Inputs:
    messages = body["messages"]
    user_text = content_text(_last_user(messages).get("content"))
    choice, forced = _openai_choice(body.get("tool_choice"))
    schema, json_object = _openai_format(body.get("response_format"))
    effort = body.get("reasoning_effort")
    return Inputs(
        **_common(body, user_text),
        tools=tuple(_openai_tools(body.get("tools"))),
        tool_choice=choice,
        forced_tool=forced,
        tool_results=_openai_tool_results(messages),
        output_schema=schema,
        json_object=json_object,
        reasoning_effort=effort if isinstance(effort, str) else None,
        attachments=tuple(_openai_attachments(_last_user(messages))),
    )


def _openai_tools(tools: object) -> list[ToolSpec]:
    found = []
    for tool in tools if isinstance(tools, list) else []:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            parameters = function.get("parameters")
            found.append(ToolSpec(function["name"], parameters if isinstance(parameters, Mapping) else {}))
    return found


def _openai_choice(choice: object) -> tuple[str, str | None]:
    if choice in ("none", "required", "auto"):
        return str(choice), None
    function = choice.get("function") if isinstance(choice, Mapping) else None
    if isinstance(function, Mapping) and isinstance(function.get("name"), str):
        return "named", function["name"]
    return "auto", None


def _openai_format(response_format: object) -> tuple[Mapping[str, Any] | None, bool]:
    if not isinstance(response_format, Mapping):
        return None, False
    if response_format.get("type") == "json_object":
        return None, True
    spec = response_format.get("json_schema")
    if response_format.get("type") == "json_schema" and isinstance(spec, Mapping):
        schema = spec.get("schema")
        return (schema if isinstance(schema, Mapping) else {}), False
    return None, False


def _openai_tool_results(messages: list[Any]) -> tuple[str, ...]:
    results: list[str] = []
    for message in reversed(messages):
        if not isinstance(message, Mapping) or message.get("role") in _SYSTEM_ROLES:
            continue
        if message.get("role") != "tool":
            break
        results.insert(0, content_text(message.get("content")))
    return tuple(results)


def _openai_attachments(message: Mapping[str, Any]) -> list[str]:
    found = []
    for part in _parts(message):
        kind = part.get("type")
        body = _mapping(part.get(kind)) if isinstance(kind, str) else {}
        if kind == "image_url":
            found.append(_data_url(body.get("url"), "image"))
        elif kind == "file":
            found.append(_data_url(body.get("file_data"), "file") if "file_data" in body else "file id")
        elif kind == "input_audio":
            found.append(f"audio/{body.get('format')} {_decoded_size(body.get('data'))}")
    return found


# --- Anthropic Messages --------------------------------------------------------------------------------


def anthropic_inputs(body: Mapping[str, Any]) -> Inputs:
    messages = body["messages"]
    last_user = _last_user(messages)
    user_text = " ".join(content_text(p.get("text")) for p in _parts(last_user) if p.get("type") == "text")
    if isinstance(last_user.get("content"), str):
        user_text = last_user["content"]
    choice, forced = _anthropic_choice(body.get("tool_choice"))
    thinking = body.get("thinking")
    return Inputs(
        **_common(body, user_text),
        tools=tuple(_anthropic_tools(body.get("tools"))),
        tool_choice=choice,
        forced_tool=forced,
        tool_results=_anthropic_tool_results(_last_turn(messages)),
        output_schema=_anthropic_schema(body),
        thinking=isinstance(thinking, Mapping) and thinking.get("type") in ("enabled", "adaptive"),
        attachments=tuple(_anthropic_attachments(last_user)),
    )


def _anthropic_tools(tools: object) -> list[ToolSpec]:
    found = []
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, Mapping) and isinstance(tool.get("name"), str) and "input_schema" in tool:
            schema = tool.get("input_schema")
            found.append(ToolSpec(tool["name"], schema if isinstance(schema, Mapping) else {}))
    return found


def _anthropic_choice(choice: object) -> tuple[str, str | None]:
    kind = choice.get("type") if isinstance(choice, Mapping) else None
    if kind == "tool" and isinstance(choice, Mapping) and isinstance(choice.get("name"), str):
        return "named", choice["name"]
    return {"any": "required", "none": "none"}.get(str(kind), "auto"), None


def _anthropic_schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Structured outputs: `output_format` (the beta's shape) or `output_config.format` (the GA shape)."""
    config = body.get("output_config")
    for spec in (body.get("output_format"), config.get("format") if isinstance(config, Mapping) else None):
        if isinstance(spec, Mapping) and spec.get("type") == "json_schema":
            schema = spec.get("schema")
            return schema if isinstance(schema, Mapping) else {}
    return None


def _anthropic_tool_results(turn: Mapping[str, Any]) -> tuple[str, ...]:
    if turn.get("role") != "user":
        return ()
    return tuple(content_text(part.get("content")) for part in _parts(turn) if part.get("type") == "tool_result")


def _anthropic_attachments(message: Mapping[str, Any]) -> list[str]:
    found = []
    for part in _parts(message):
        source = _mapping(part.get("source"))
        if part.get("type") not in ("image", "document"):
            continue
        fallback = "image" if part.get("type") == "image" else "document"
        kind = source.get("type")
        if kind == "base64":
            found.append(f"{source.get('media_type')} {_decoded_size(source.get('data'))}")
        elif kind == "text":
            found.append(f"{source.get('media_type')} {len(str(source.get('data', '')).encode())} bytes")
        elif kind == "url":
            found.append(f"{fallback} url {source.get('url')}")
        else:
            found.append(f"{fallback} {kind}")
    return found
