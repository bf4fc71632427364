"""shared.wire.anthropic outbound, gateway to Anthropic: `render_request` of a request from another format
(translated, or refused by name), and `parse_completion` / `StreamParser` reading Anthropic's answers."""

import json

import pytest
from anthropic.types import Message as SDKMessage

from shared.content import (
    AudioPart,
    DocumentPart,
    ImagePart,
    OutputFormat,
    RawPart,
    Reasoning,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from shared.errors import UnsupportedParameter, UpstreamUnavailable
from shared.models import ChatRequest, Delta, FinishReason, Message, ToolCallDelta, Usage, WireFormat
from shared.wire import anthropic as wire
from tests.shared.wire_anthropic_support import EVENTS, sent_body

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def openai_request(**fields: object) -> ChatRequest:
    base: dict[str, object] = {"model": "public", "messages": [Message(role="user", content="Hi")]}
    return ChatRequest.model_validate({**base, **fields, "source": WireFormat.OPENAI})


def test_defaults_max_tokens_and_omits_unset_fields() -> None:
    assert wire.render_request(openai_request(), "claude-sonnet-4-5") == {
        "model": "claude-sonnet-4-5",
        "max_tokens": wire.DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": "Hi"}],
    }


def test_openai_system_messages_lead_into_system_and_later_ones_stay_in_place() -> None:
    request = openai_request(messages=[
        Message(role="system", content="S1"), Message(role="developer", content="S2"),
        Message(role="user", content="Hi"), Message(role="assistant", content="Yo"),
        Message(role="developer", content="Now terse"), Message(role="user", content="Go")],
        temperature=0.4, stop=["END"], user="u-2")
    kw = wire.render_request(request, "claude-sonnet-4-5")
    assert kw["system"] == [{"type": "text", "text": "S1"}, {"type": "text", "text": "S2"}]
    assert kw["messages"] == [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"},
        {"role": "system", "content": [{"type": "text", "text": "Now terse"}]}, {"role": "user", "content": "Go"}]
    assert kw["extra_headers"] == {"anthropic-beta": wire.MID_CONVERSATION_SYSTEM_BETA}
    assert (kw["stop_sequences"], kw["metadata"], kw["extra_body"]) == (["END"], {"user_id": "u-2"},
                                                                       {"temperature": 0.4})


def test_openai_tool_conversation_is_translated() -> None:
    request = openai_request(
        messages=[
            Message(role="user", content=[TextPart(text="Weather?"),
                                          ImagePart(url="data-less", detail="auto"),
                                          ImagePart(data="QUJD", media_type="image/jpeg")]),
            Message(role="assistant", content=[TextPart(text="Checking"),
                                               ToolCallPart(id="call_1", name="weather", arguments='{"city":"Oslo"}'),
                                               ToolCallPart(id="call_2", name="weather", arguments="")]),
            Message(role="user", content=[ToolResultPart(tool_call_id="call_1", content=[TextPart(text="-3C")])]),
            Message(role="user", content=[ToolResultPart(tool_call_id="call_2", content=[TextPart(text="err")],
                                                         is_error=True)]),
            Message(role="user", content="And tomorrow?"),
        ],
        tools=[Tool(name="weather", description="Weather", parameters=SCHEMA, strict=True), Tool(name="noargs")],
        tool_choice=ToolChoice(mode="required"), parallel_tool_calls=False,
        output_format=OutputFormat(type="json_schema", name="answer", json_schema=SCHEMA, description="The answer",
                                   strict=True),
        max_tokens=100, top_p=0.5,
    )
    kw = wire.render_request(request, "claude")
    assert kw["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                                     {"type": "image", "source": {"type": "url", "url": "data-less"}},
                                     {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                                                  "data": "QUJD"}}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking"},
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "call_2", "name": "weather", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "-3C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "err", "is_error": True},
            {"type": "text", "text": "And tomorrow?"}]},
    ]
    assert kw["tools"] == [
        {"name": "weather", "description": "Weather", "input_schema": SCHEMA, "strict": True},
        {"name": "noargs", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert kw["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert kw["output_config"] == {"format": {"type": "json_schema", "schema": {**SCHEMA, "description": "The answer"}}}
    assert kw["extra_body"] == {"top_p": 0.5}
    body, _ = sent_body(kw)  # and the SDK takes it
    assert body["tool_choice"] == kw["tool_choice"]


@pytest.mark.parametrize(("choice", "parallel", "expected"), [
    (ToolChoice(mode="auto"), None, {"type": "auto"}),
    (ToolChoice(mode="none"), False, {"type": "none"}),
    (ToolChoice(mode="tool", name="f"), True, {"type": "tool", "name": "f"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
])
def test_tool_choice(choice: ToolChoice | None, parallel: bool | None, expected: dict[str, object]) -> None:
    request = openai_request(tools=[Tool(name="f", parameters=SCHEMA)], tool_choice=choice,
                             parallel_tool_calls=parallel)
    assert wire.render_request(request, "c")["tool_choice"] == expected


def test_documents_and_thinking_of_other_providers() -> None:
    request = openai_request(messages=[
        Message(role="user", content=[DocumentPart(media_type="application/pdf", data="UERG", filename="a.pdf")]),
        Message(role="assistant", content=[ThinkingPart(text="mine", signature="s", provider="anthropic"),
                                           ThinkingPart(text="theirs", provider="openai"), TextPart(text="ok")]),
    ])
    kw = wire.render_request(request, "c")
    assert kw["messages"] == [
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "UERG"},
             "title": "a.pdf"}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "mine", "signature": "s"},
                                          {"type": "text", "text": "ok"}]},
    ]


@pytest.mark.parametrize(("effort", "max_tokens", "thinking", "sent_max"), [
    ("low", None, {"type": "enabled", "budget_tokens": 2048}, 4096 + 2048),
    ("high", 5000, {"type": "enabled", "budget_tokens": 4999}, 5000),
    ("minimal", 2000, {"type": "enabled", "budget_tokens": 1024}, 2000),
    ("none", None, {"type": "disabled"}, 4096),
])
def test_reasoning_effort_becomes_a_thinking_budget(effort: str, max_tokens: int | None,
                                                    thinking: dict[str, object], sent_max: int) -> None:
    kw = wire.render_request(openai_request(reasoning=Reasoning(effort=effort), max_tokens=max_tokens), "c")
    assert (kw["thinking"], kw["max_tokens"]) == (thinking, sent_max)


@pytest.mark.parametrize(("changes", "param"), [
    ({"seed": 1}, "seed"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"logit_bias": {"1": 2.0}}, "logit_bias"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"n": 2}, "n"),
    ({"store": True}, "store"),
    ({"prompt_cache_key": "k"}, "prompt_cache_key"),
    ({"safety_identifier": "s"}, "safety_identifier"),
    ({"metadata": {"a": "b"}}, "metadata"),
    ({"service_tier": "flex"}, "service_tier"),
    ({"temperature": 1.5}, "temperature"),
    ({"extra": {"modalities": ["text"]}}, "modalities"),
    ({"output_format": OutputFormat(type="json_object")}, "response_format"),
    ({"reasoning": Reasoning(effort="extreme")}, "reasoning_effort"),
    ({"reasoning": Reasoning(effort="high"), "max_tokens": 500}, "reasoning_effort"),
    ({"tools": [Tool(kind="custom", name="grammar")]}, "tools"),
    ({"messages": [Message(role="user", content=[AudioPart(data="QQ==", format="wav")])]}, "messages"),
    ({"messages": [Message(role="user", content=[ImagePart(url="u", detail="high")])]}, "messages"),
    ({"messages": [Message(role="user", content="x", name="bob")]}, "messages"),
    ({"messages": [Message(role="system", content=[ImagePart(url="u")]), Message(role="user", content="x")]},
     "messages"),
    ({"messages": [Message(role="assistant", content=[ToolCallPart(id="c", name="f", arguments="{oops")])]},
     "messages"),
    ({"messages": [Message(role="user", content=[RawPart(source="openai", block={"type": "x"})])]}, "messages"),
])
def test_untranslatable_parameters_are_refused_by_name_or_dropped(changes: dict[str, object], param: str) -> None:
    request = openai_request(**changes)
    with pytest.raises(UnsupportedParameter) as caught:
        wire.render_request(request, "c")
    assert caught.value.param == param
    assert caught.value.status == 400 and caught.value.code == "unsupported_parameter"
    kw = wire.render_request(request, "c", drop=frozenset({param}))
    assert param not in json.dumps(kw.get("extra_body", {}))


def test_dropped_parts_leave_the_rest_of_the_message() -> None:
    request = openai_request(messages=[Message(role="user", content=[
        TextPart(text="hear"), AudioPart(data="QQ==", format="wav"), ImagePart(url="u", detail="low")])])
    kw = wire.render_request(request, "c", drop=frozenset({"messages"}))
    assert kw["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hear"},
                                                           {"type": "image", "source": {"type": "url", "url": "u"}}]}]


def test_anthropic_only_fields_of_an_anthropic_request_are_not_refused() -> None:
    request = wire.parse_request({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                                  "top_k": 3, "context_management": {}},
                                 {"anthropic-beta": "context-management-2025-06-27"})
    kw = wire.render_request(request, "c")
    assert kw["extra_body"] == {"top_k": 3, "context_management": {}}
    assert kw["extra_headers"] == {"anthropic-beta": "context-management-2025-06-27"}


# --- parse_completion -------------------------------------------------------------------------------

ANSWER: dict[str, object] = {
    "id": "msg_x",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "Let me see.", "signature": "sig=="},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Calling ", "citations": [{"type": "char_location", "cited_text": "c",
                                                            "document_index": 0, "document_title": None,
                                                            "start_char_index": 0, "end_char_index": 1}]},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
        {"type": "text", "text": "done"},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "container": {"id": "cnt_1", "expires_at": "2026-12-05T00:00:00Z"},
    "usage": {"input_tokens": 10, "output_tokens": 40, "cache_read_input_tokens": 100,
              "cache_creation_input_tokens": 50,
              "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 30},
              "output_tokens_details": {"thinking_tokens": 25}, "service_tier": "standard",
              "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0}},
}


def test_parse_completion_reads_every_block_usage_and_extra() -> None:
    SDKMessage.model_validate(ANSWER)  # a real answer's shape
    data: dict[str, object] = json.loads(json.dumps(ANSWER))  # the adapter parses the raw JSON
    parsed = wire.parse_completion(data, "anthropic")
    assert parsed.parts == [
        ThinkingPart(text="Let me see.", signature="sig==", provider="anthropic"),
        ThinkingPart(redacted="opaque", provider="anthropic"),
        TextPart(text="Calling ", citations=data["content"][2]["citations"]),  # type: ignore[index]
        ToolCallPart(id="toolu_1", name="weather", arguments='{"city":"Oslo"}'),
        TextPart(text="done"),
    ]
    assert (parsed.content, parsed.finish_reason, parsed.service_tier) == ("Calling done", FinishReason.TOOL_CALLS,
                                                                         "standard")
    assert parsed.usage == Usage(prompt_tokens=160, completion_tokens=40, cached_prompt_tokens=100,
                                 cache_write_tokens=20, cache_write_1h_tokens=30, reasoning_tokens=25)
    server_tools = {"web_search_requests": 1, "web_fetch_requests": 0}
    assert parsed.extra == {"container": ANSWER["container"], "usage": {"server_tool_use": server_tools}}
    assert parsed.extra_format == WireFormat.ANTHROPIC


@pytest.mark.parametrize(("stop_reason", "reason"), [
    ("end_turn", FinishReason.STOP), ("max_tokens", FinishReason.LENGTH), ("tool_use", FinishReason.TOOL_CALLS),
    ("refusal", FinishReason.REFUSAL), ("pause_turn", FinishReason.PAUSE_TURN),
    ("stop_sequence", FinishReason.STOP_SEQUENCE), ("model_context_window_exceeded", FinishReason.LENGTH),
])
def test_parse_completion_finish_reason(stop_reason: str, reason: FinishReason) -> None:
    parsed = wire.parse_completion({**ANSWER, "stop_reason": stop_reason, "stop_sequence": "END"}, "anthropic")
    assert (parsed.finish_reason, parsed.stop_sequence) == (reason, "END")


def test_parse_completion_plain_text_has_no_parts_and_cache_writes_default_to_5m() -> None:
    data = {**ANSWER, "content": [{"type": "text", "text": "Hi"}],
            "usage": {"input_tokens": 3, "cache_creation_input_tokens": 100, "output_tokens": 1}}
    parsed = wire.parse_completion(data, "anthropic")
    assert (parsed.content, parsed.parts) == ("Hi", [])
    assert parsed.usage == Usage(prompt_tokens=103, completion_tokens=1, cache_write_tokens=100)


def test_parse_completion_broken_answers_are_upstream_failures() -> None:
    with pytest.raises(UpstreamUnavailable):
        wire.parse_completion({"id": "x"}, "anthropic")
    with pytest.raises(UpstreamUnavailable, match="malformed"):
        wire.parse_completion({**ANSWER, "content": [{"type": "text"}]}, "anthropic")


# --- StreamParser -----------------------------------------------------------------------------------

STREAM: list[dict[str, object]] = [
    {"type": "message_start", "message": {**ANSWER, "content": [], "stop_reason": None,
                                          "usage": {"input_tokens": 10, "cache_read_input_tokens": 5,
                                                    "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "",
                                                                  "signature": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 1},
    {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1",
                                                                  "name": "weather", "input": {}}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"city"'}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ':"Oslo"}'}},
    {"type": "content_block_stop", "index": 2},
    {"type": "content_block_start", "index": 3, "content_block": {"type": "redacted_thinking", "data": "xx"}},
    {"type": "content_block_start", "index": 4, "content_block": {"type": "tool_use", "id": "toolu_2",
                                                                  "name": "noargs", "input": {}}},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
     "usage": {"output_tokens": 30, "cache_creation_input_tokens": 7}},
    {"type": "message_stop"},
]


def test_stream_parser_reads_every_delta_kind() -> None:
    parser = wire.StreamParser()
    deltas = [d for event in STREAM for d in parser.parse(EVENTS.validate_python(event).model_dump())]
    assert deltas == [
        Delta(usage=Usage(prompt_tokens=15, cached_prompt_tokens=5)),
        Delta(thinking="Hmm"),
        Delta(signature="sig"),
        Delta(text="Hi"),
        Delta(tool_call=ToolCallDelta(index=0, id="toolu_1", name="weather")),
        Delta(tool_call=ToolCallDelta(index=0, arguments='{"city"')),
        Delta(tool_call=ToolCallDelta(index=0, arguments=':"Oslo"}')),
        Delta(redacted_thinking="xx"),
        Delta(tool_call=ToolCallDelta(index=1, id="toolu_2", name="noargs")),
        Delta(finish_reason=FinishReason.TOOL_CALLS,
              usage=Usage(prompt_tokens=7, completion_tokens=30, cache_write_tokens=7)),
    ]


def test_stream_parser_stop_sequence() -> None:
    event = {"type": "message_delta", "delta": {"stop_reason": "stop_sequence", "stop_sequence": "END"},
             "usage": {"output_tokens": 2}}
    assert wire.parse_chunk(event) == [Delta(finish_reason=FinishReason.STOP_SEQUENCE, stop_sequence="END",
                                             usage=Usage(completion_tokens=2))]
    assert wire.parse_chunk({"type": "ping"}) == []


@pytest.mark.parametrize(("effort", "max_tokens", "sent"), [
    (None, None, 4096), ("high", None, 4096 + 16384), ("high", 9000, 9000), ("none", None, 4096)])
def test_sent_max_tokens_is_what_render_request_sends(effort: str | None, max_tokens: int | None, sent: int) -> None:
    """Budgets reserve `sent_max_tokens` (shared/reservation.py): it must be the limit Anthropic is sent."""
    request = openai_request(max_tokens=max_tokens, reasoning=Reasoning(effort=effort) if effort else None)
    assert wire.sent_max_tokens(request) == sent == wire.render_request(request, "c")["max_tokens"]
