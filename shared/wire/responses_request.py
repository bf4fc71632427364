"""A client's Responses body (`POST /v1/responses`) read into the internal model: a `ChatRequest` in OpenAI's
vocabulary (efforts, service tiers), plus what only the Responses API has (`previous_response_id`, `store`,
`background`) and the request parameters a `response` object echoes. Every field the API defines is
translated, honoured by the gateway itself, or refused with a 400 naming it; an unknown field is refused too
(the upstream call is Chat Completions or Messages, so there is nowhere to forward it verbatim)."""

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.content import OutputFormat, Reasoning, Tool, ToolChoice
from shared.errors import UnsupportedParameter
from shared.models import ChatRequest, WireFormat
from shared.wire._common import (
    build_chat_request,
    invalid,
    nullable_bool,
    one_of,
    optional_bool,
    optional_int,
    optional_number,
    optional_str,
    rename_param,
    require_object,
    require_str,
)
from shared.wire.openai_common import parse_function_tool, parse_json_schema_format, parse_metadata
from shared.wire.responses_items import parse_input

__all__ = [
    "ENCRYPTED_REASONING",
    "INPUT_ITEM_INCLUDES",
    "KNOWN_FIELDS",
    "RESPONSE_INCLUDES",
    "ResponsesRequest",
    "check_include",
    "parse_request",
    "parse_responses_request",
    "responses_param",
    "responses_refusal",
]

JSON = Mapping[str, object]
ENCRYPTED_REASONING = "reasoning.encrypted_content"
KNOWN_FIELDS = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "text", "reasoning", "max_output_tokens", "metadata",
    "temperature", "top_p", "parallel_tool_calls", "user", "store", "stream", "stream_options", "background",
    "previous_response_id", "include", "truncation", "service_tier", "prompt_cache_key", "safety_identifier",
})
"""Every top-level field read; any other one is refused by name."""
RESPONSE_INCLUDES = frozenset({ENCRYPTED_REASONING})
"""`include` values a response honours (create, retrieve): its reasoning items always carry their sealed
thinking. The others name built-in tools' results or logprobs, which the gateway never returns."""
INPUT_ITEM_INCLUDES = RESPONSE_INCLUDES | {"message.input_image.image_url"}
"""`include` values the input item listing honours: items are listed as the client sent them, image URLs
and reasoning items' encrypted content included."""
TOOL_CHOICE_MODES: tuple[Literal["auto", "none", "required"], ...] = ("auto", "none", "required")


class ResponsesRequest(BaseModel):
    """The parsed body. `chat` holds this request's own input only (the route prepends a stored
    `previous_response_id`'s conversation); `echo` the parameters the `response` object repeats."""

    chat: ChatRequest
    previous_response_id: str | None = None
    store: bool = True
    background: bool = False
    echo: dict[str, Any] = Field(default_factory=dict)


def parse_request(body: Mapping[str, object], headers: Mapping[str, str] | None = None) -> ChatRequest:
    """The `WireCodec` door: the request as a `ChatRequest` (no Responses header changes its meaning)."""
    return parse_responses_request(body).chat


def parse_responses_request(body: Mapping[str, object]) -> ResponsesRequest:
    data = require_object(body, "request body")
    unknown = sorted(set(data) - KNOWN_FIELDS)
    if unknown:
        raise invalid(unknown[0], "is not a Responses API parameter this gateway supports")
    _check_unsupported(data)
    instructions = optional_str(data, "instructions")
    tools = _tools(data.get("tools"))
    store = nullable_bool(data, "store")
    background = optional_bool(data, "background")
    if background and store is False:
        raise invalid("background", "requires store: a background response is read back by its id")
    chat = build_chat_request(
        model=require_str(data, "model"), messages=parse_input(data.get("input")),
        system=instructions or None, max_tokens=optional_int(data, "max_output_tokens"),
        temperature=optional_number(data, "temperature", 0, 2), top_p=optional_number(data, "top_p", 0, 1),
        stream=optional_bool(data, "stream"), include_usage=True, user=optional_str(data, "user"), tools=tools,
        tool_choice=_tool_choice(data.get("tool_choice")),
        parallel_tool_calls=nullable_bool(data, "parallel_tool_calls"),
        output_format=_output_format(data.get("text")), reasoning=_reasoning(data.get("reasoning")),
        service_tier=optional_str(data, "service_tier"), prompt_cache_key=optional_str(data, "prompt_cache_key"),
        safety_identifier=optional_str(data, "safety_identifier"), source=WireFormat.OPENAI,
    )
    echo = _echo(data, parse_metadata(data.get("metadata")))
    return ResponsesRequest(chat=chat, previous_response_id=optional_str(data, "previous_response_id"),
                            store=store is not False, background=background, echo=echo)


def check_include(values: list[str], honoured: frozenset[str]) -> None:
    """400 naming `include` for a value the gateway cannot honour; never ignored."""
    for value in values:
        if value not in honoured:
            supported = ", ".join(repr(name) for name in sorted(honoured))
            raise invalid("include", f"{value!r} is not supported: only {supported} (the gateway has no built-in "
                                     "tools and returns no logprobs on Responses)")


def responses_param(param: str) -> str:
    """A parameter of the request as the Responses client named it: a target's refusal or drop names the
    Chat Completions parameter the field became (`response_format`), the client sent `text.format`."""
    return rename_param(param, WireFormat.OPENAI, WireFormat.RESPONSES)


def responses_refusal(error: UnsupportedParameter) -> UnsupportedParameter:
    """A refusal by every target of the route, naming the field the client sent (`x-gateway-drop-params`
    takes this name as well as the Chat Completions one)."""
    return UnsupportedParameter(responses_param(error.param), error.reason)


def _check_unsupported(data: JSON) -> None:
    """The values of known fields the gateway cannot honour: refused, never ignored."""
    include = data.get("include")
    if include is not None:
        if not isinstance(include, list) or not all(isinstance(item, str) for item in include):
            raise invalid("include", "must be an array of strings")
        check_include(include, RESPONSE_INCLUDES)
    if data.get("truncation") not in (None, "disabled"):
        raise invalid("truncation", "only 'disabled' is supported: the gateway never truncates a conversation")
    options = data.get("stream_options")
    if options is not None:
        obfuscation = require_object(options, "stream_options")
        extra = sorted(set(obfuscation) - {"include_obfuscation"})
        if extra:
            raise invalid(f"stream_options.{extra[0]}", "is not supported")
        if obfuscation.get("include_obfuscation") is True:
            raise invalid("stream_options.include_obfuscation", "true is not supported: the gateway's deltas "
                          "carry no obfuscation padding; send false or omit it")


def _tools(value: object) -> list[Tool]:
    """Function tools only: `web_search`, `file_search`, `computer_use` and the other built-in tools run on
    OpenAI's Responses service, and the gateway's upstream calls are Chat Completions and Messages."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("tools", "must be an array")
    tools: list[Tool] = []
    for index, item in enumerate(value):
        field = f"tools[{index}]"
        tool = require_object(item, field)
        kind = tool.get("type")
        if kind != "function":
            raise invalid(f"{field}.type", f"{kind!r} is not supported: only 'function' tools (built-in tools "
                                           "need OpenAI's Responses service; this gateway's upstream calls are "
                                           "Chat Completions and Messages)")
        tools.append(parse_function_tool(tool, field))
    return tools


def _tool_choice(value: object) -> ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        mode = one_of(value, TOOL_CHOICE_MODES)
        if mode is None:
            raise invalid("tool_choice", "must be 'auto', 'none', 'required' or {'type': 'function', 'name': ...}")
        return ToolChoice(mode=mode)
    choice = require_object(value, "tool_choice")
    if choice.get("type") != "function":
        raise invalid("tool_choice.type", f"{choice.get('type')!r} is not supported: only 'function' (the "
                                          "gateway offers function tools only)")
    return ToolChoice(mode="tool", name=require_str(choice, "name", "tool_choice.name"))


def _output_format(value: object) -> OutputFormat | None:
    """`text.format`: `text` is no format; `json_object`; `json_schema` with `name`, `schema`, `strict`."""
    if value is None:
        return None
    text = require_object(value, "text")
    extra = sorted(set(text) - {"format"})
    if extra:
        raise invalid(f"text.{extra[0]}", "is not supported (the internal model has no place for it)")
    if text.get("format") is None:
        return None
    spec = require_object(text.get("format"), "text.format")
    kind = spec.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return OutputFormat(type="json_object")
    if kind != "json_schema":
        raise invalid("text.format.type", f"must be 'text', 'json_object' or 'json_schema' (got {kind!r})")
    return parse_json_schema_format(spec, "text.format")


def _reasoning(value: object) -> Reasoning | None:
    if value is None:
        return None
    reasoning = require_object(value, "reasoning")
    for key in ("summary", "generate_summary"):
        if reasoning.get(key) is not None:
            raise invalid(f"reasoning.{key}", "is not supported: the gateway's targets return reasoning "
                          "(Anthropic's thinking) or none (OpenAI Chat Completions), never a summary")
    extra = sorted(set(reasoning) - {"effort", "summary", "generate_summary"})
    if extra:
        raise invalid(f"reasoning.{extra[0]}", "is not supported")
    effort = optional_str(reasoning, "effort", "reasoning.effort")
    return None if effort is None else Reasoning(effort=effort)


def _echo(data: JSON, metadata: dict[str, str] | None) -> dict[str, Any]:
    """The request parameters a `response` object repeats, with OpenAI's defaults where the client sent none.
    `metadata` is honoured here: it is the response's own attribute, never sent upstream."""
    text = data.get("text") if data.get("text") is not None else {"format": {"type": "text"}}
    reasoning = data.get("reasoning") if data.get("reasoning") is not None else {"effort": None, "summary": None}
    return {
        "instructions": data.get("instructions"), "tools": data.get("tools") or [],
        "tool_choice": data.get("tool_choice") or "auto", "temperature": data.get("temperature"),
        "top_p": data.get("top_p"), "metadata": metadata or {}, "max_output_tokens": data.get("max_output_tokens"),
        "parallel_tool_calls": data.get("parallel_tool_calls") is not False,
        "previous_response_id": data.get("previous_response_id"), "reasoning": reasoning, "text": text,
        "truncation": data.get("truncation") or "disabled", "user": data.get("user"),
        "store": data.get("store") is not False, "background": bool(data.get("background")),
        "service_tier": data.get("service_tier"), "prompt_cache_key": data.get("prompt_cache_key"),
        "safety_identifier": data.get("safety_identifier"),
    }
