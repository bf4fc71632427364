"""shared.wire.openai outbound, gateway to OpenAI: a client's whole Chat Completions body survives
parse_request -> render_request (unmodelled fields through `extra_body`), checked down to the JSON the official
SDK sends; and a request from an Anthropic client (built from shared.content types) is rendered for OpenAI."""

import copy
import json

import httpx2
import pytest

from shared.content import (
    DocumentPart,
    ImagePart,
    OutputFormat,
    Reasoning,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from shared.errors import UnsupportedParameter
from shared.models import ChatRequest, Message, WireFormat
from shared.wire import openai as wire
from tests.shared.wire_openai_support import completion, sdk_client

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CALLS = [
    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}},
    {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}},
]
EXTRA = {"modalities": ["text"], "prediction": {"type": "content", "content": "Oslo"}, "verbosity": "low",
         "web_search_options": {"search_context_size": "low"}, "audio": {"voice": "alloy", "format": "wav"}}
BODY: dict[str, object] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "D1"}, {"type": "text", "text": "D2"}]},
        {"role": "user", "name": "alice", "content": [
            {"type": "text", "text": "Weather in these?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/map.jpg"}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0x", "filename": "a.pdf"}},
            {"type": "file", "file": {"file_id": "file-1"}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": CALLS},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"},
                                                               {"type": "text", "text": "later"}]},
        {"role": "assistant", "content": "Oslo is sunny.", "name": "bot"},
        {"role": "system", "content": "Mid-conversation rule."},
        {"role": "assistant", "content": None, "refusal": "I cannot help with that."},
        {"role": "user", "content": "Thanks"},
    ],
    "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather now",
                                                "parameters": SCHEMA, "strict": True}},
              {"type": "custom", "custom": {"name": "sql", "description": "SQL"}}],
    "tool_choice": {"type": "function", "function": {"name": "weather"}},
    "parallel_tool_calls": True,
    "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True,
                                                               "description": "the answer"}},
    "reasoning_effort": "low",
    "seed": 42, "frequency_penalty": 0.5, "presence_penalty": -0.5, "logit_bias": {"1234": -50.0},
    "logprobs": True, "top_logprobs": 3, "n": 2, "metadata": {"team": "a"}, "service_tier": "flex", "store": True,
    "prompt_cache_key": "pk-1", "safety_identifier": "hash-1", "user": "u-1",
    "max_tokens": 300, "stop": ["END", "STOP"], "temperature": 0.3, "top_p": 0.9,
    **EXTRA,
}


def expected(body: dict[str, object]) -> dict[str, object]:
    rendered = {key: value for key, value in body.items() if key not in EXTRA}
    rendered["extra_body"] = EXTRA
    return rendered


def test_every_field_round_trips() -> None:
    assert wire.render_request(wire.parse_request(BODY), "gpt-4o") == expected(BODY)


def test_stream_options_round_trip_with_usage_always_on() -> None:
    body = {**BODY, "stream": True, "stream_options": {"include_obfuscation": False}}
    rendered = wire.render_request(wire.parse_request(body), "gpt-4o", drop=frozenset({"n"}))  # one choice streams
    assert rendered["stream"] is True
    assert rendered["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert rendered["extra_body"] == EXTRA


def test_reasoning_models_take_max_completion_tokens() -> None:
    body = {key: value for key, value in BODY.items() if key != "max_tokens"}
    rendered = wire.render_request(wire.parse_request({**body, "max_completion_tokens": 300}), "o3")
    assert rendered == {**expected(body), "model": "o3", "max_completion_tokens": 300}


async def test_the_sdk_sends_the_client_body_unchanged() -> None:
    """extra_body is merged into the JSON by the SDK: what OpenAI receives is what the client sent."""
    sent: list[dict[str, object]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        return httpx2.Response(200, json=wire.render_completion(completion(provider="openai")))

    client = sdk_client(handler)
    try:
        await client.chat.completions.create(**wire.render_request(wire.parse_request(BODY), "gpt-4o"))  # type: ignore[call-overload]
    finally:
        await client.close()
    assert sent == [BODY]


def test_allowed_tools_choice_goes_back_verbatim() -> None:
    choice = {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
        {"type": "function", "function": {"name": "weather"}}]}}
    rendered = wire.render_request(wire.parse_request({**BODY, "tool_choice": choice}), "gpt-4o")
    assert "tool_choice" not in rendered
    assert rendered["extra_body"] == {**EXTRA, "tool_choice": choice}


def test_legacy_functions_are_sent_as_tools() -> None:
    body = {"model": "gpt-4o", "functions": [{"name": "f", "parameters": SCHEMA}], "function_call": "auto",
            "messages": [{"role": "user", "content": "x"},
                         {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
                         {"role": "function", "name": "f", "content": "ok"}]}
    rendered = wire.render_request(wire.parse_request(body), "gpt-4o")
    assert rendered["tools"] == [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}]
    assert rendered["tool_choice"] == "auto"
    assert rendered["messages"] == [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_f", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_f", "content": "ok"},
    ]


def test_dropped_parameters_are_left_out() -> None:
    drop = frozenset({"seed", "logit_bias", "modalities", "response_format", "reasoning_effort"})
    rendered = wire.render_request(wire.parse_request(BODY), "gpt-4o", drop=drop)
    assert not {"seed", "logit_bias", "response_format", "reasoning_effort"} & set(rendered)
    assert "modalities" not in rendered["extra_body"]  # type: ignore[operator]


def test_the_parsed_request_is_not_changed_by_rendering() -> None:
    request = wire.parse_request(copy.deepcopy(BODY))
    before = request.model_dump()
    wire.render_request(request, "gpt-4o")
    assert request.model_dump() == before


# --- a request from an Anthropic client --------------------------------------------------------------

EPHEMERAL = {"type": "ephemeral"}


def anthropic_request(**changes: object) -> ChatRequest:
    fields: dict[str, object] = {
        "model": "claude-sonnet-4-5",
        "source": WireFormat.ANTHROPIC,
        "system": [TextPart(text="You are terse.", cache_control=EPHEMERAL), TextPart(text="Use tools.")],
        "messages": [
            Message(role="user", content=[
                TextPart(text="What is in these?"),
                ImagePart(data="iVBORw0KGgo=", media_type="image/png", cache_control=EPHEMERAL),
                DocumentPart(data="JVBERi0x", media_type="application/pdf", title="Report"),
                DocumentPart(text="plain notes", media_type="text/plain"),
            ]),
            Message(role="assistant", content=[
                ThinkingPart(text="Let me look.", signature="sig", provider="anthropic"),
                TextPart(text="Looking."),
                ToolCallPart(id="toolu_1", name="lookup", arguments='{"q":"x"}'),
            ]),
            Message(role="user", content=[
                ToolResultPart(tool_call_id="toolu_1", content=[TextPart(text="found"),
                                                                ImagePart(url="https://example.com/r.png")]),
                TextPart(text="Go on."),
            ]),
            Message(role="system", content="Answer in JSON."),
        ],
        "tools": [Tool(name="lookup", description="Look up", parameters=SCHEMA, cache_control=EPHEMERAL)],
        "tool_choice": ToolChoice(mode="required"),
        "parallel_tool_calls": False,
        "output_format": OutputFormat(type="json_schema", json_schema=SCHEMA),
        "reasoning": Reasoning(mode="enabled", budget_tokens=10000),
        "max_tokens": 1024,
        "stop": ["END"],
        "temperature": 0.5,
        "user": "user-7",
        "service_tier": "standard_only",
        "stream": True,
    }
    return ChatRequest.model_validate({**fields, **changes})


def test_an_anthropic_request_is_rendered_for_openai() -> None:
    assert wire.render_request(anthropic_request(), "gpt-5") == {
        "model": "gpt-5",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are terse."},
                                           {"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0x", "filename": "Report"}},
                {"type": "text", "text": "plain notes"},
            ]},
            {"role": "assistant", "content": "Looking.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"x"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "found"},
            {"role": "user", "content": [
                {"type": "text", "text": "Attachments of the result of tool call toolu_1:"},
                {"type": "image_url", "image_url": {"url": "https://example.com/r.png"}},
                {"type": "text", "text": "Go on."},
            ]},
            {"role": "system", "content": "Answer in JSON."},
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "Look up",
                                                    "parameters": SCHEMA}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "response_format": {"type": "json_schema", "json_schema": {"name": "response", "schema": SCHEMA}},
        "reasoning_effort": "medium",
        "max_completion_tokens": 1024,
        "stop": ["END"],
        "temperature": 0.5,
        "user": "user-7",
        "service_tier": "default",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(("reasoning", "effort"), [
    (Reasoning(mode="enabled", budget_tokens=1024), "low"),
    (Reasoning(mode="enabled", budget_tokens=4096), "low"),
    (Reasoning(mode="enabled", budget_tokens=4097), "medium"),
    (Reasoning(mode="enabled", budget_tokens=16384), "medium"),
    (Reasoning(mode="enabled", budget_tokens=32000), "high"),
    (Reasoning(mode="adaptive"), None),
    (Reasoning(mode="disabled"), None),
    (Reasoning(mode="adaptive", effort="max"), "high"),
    (Reasoning(effort="low"), "low"),
])
def test_thinking_budgets_map_to_efforts(reasoning: Reasoning, effort: str | None) -> None:
    rendered = wire.render_request(anthropic_request(reasoning=reasoning), "o4-mini")
    assert rendered.get("reasoning_effort") == effort


@pytest.mark.parametrize(("changes", "param"), [
    ({"top_k": 5}, "top_k"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
    ({"extra": {"context_management": {"edits": []}}}, "context_management"),
    ({"tools": [Tool(kind="web_search_20250305", name="web_search", raw={"type": "web_search_20250305"})]}, "tools"),
    ({"messages": [Message(role="user", content=[DocumentPart(url="https://example.com/a.pdf")])]}, "messages"),
    ({"messages": [Message(role="user", content=[ToolResultPart(tool_call_id="t", is_error=True)])]}, "messages"),
    ({"messages": [Message(role="user", content=[DocumentPart(data="JVBERi0x", media_type="application/pdf",
                                                              context="quarterly")])]}, "messages"),
    ({"messages": [Message(role="assistant", content=[TextPart(text="x", citations=[{"type": "char_location"}])])]},
     "messages"),
    ({"system": [TextPart(text="x", citations=[{"type": "char_location"}])]}, "system"),
])
def test_what_openai_cannot_carry_is_refused_unless_dropped(changes: dict[str, object], param: str) -> None:
    request = anthropic_request(**changes)
    with pytest.raises(UnsupportedParameter) as caught:
        wire.render_request(request, "gpt-4o")
    assert caught.value.param == param
    assert caught.value.status == 400
    rendered = wire.render_request(request, "gpt-4o", drop=frozenset({param}))
    assert "top_k" not in rendered and "extra_body" not in rendered
    assert rendered.get("stop") is None or len(rendered["stop"]) <= 4  # type: ignore[arg-type]


def test_openai_extra_is_not_sent_from_another_source_and_cache_markers_are_nothing() -> None:
    rendered = wire.render_request(anthropic_request(), "gpt-4o")
    assert "extra_body" not in rendered
    assert "cache_control" not in json.dumps(rendered)
    assert "Let me look." not in json.dumps(rendered)
