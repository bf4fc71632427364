"""shared.wire.anthropic inbound: `parse_request` reads a client's whole Messages body into a `ChatRequest`
and refuses, naming the field, what is invalid."""

import base64

import pytest

from shared.content import (
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
from shared.errors import InvalidRequest
from shared.models import ChatRequest, Message, WireFormat
from shared.wire import anthropic as wire

BASE: dict[str, object] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "Hi"}],
}
PNG = base64.b64encode(b"\x89PNG fake image bytes").decode()
PDF = base64.b64encode(b"%PDF-1.7 fake").decode()


def body(**changes: object) -> dict[str, object]:
    return {**BASE, **changes}


def user(*content: object) -> dict[str, object]:
    return body(messages=[{"role": "user", "content": list(content)}])


def test_parse_request_minimal_body() -> None:
    assert wire.parse_request(BASE) == ChatRequest(
        model="claude-sonnet-4-5", messages=[Message(role="user", content="Hi")], max_tokens=100,
        source=WireFormat.ANTHROPIC,
    )


def test_parse_request_reads_sampling_and_attribution() -> None:
    request = wire.parse_request(body(
        system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind.",
                                                       "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        temperature=1, top_p=0.5, top_k=5, stop_sequences=["END", "STOP"], stream=True,
        metadata={"user_id": "u-1"}, service_tier="standard_only",
    ))
    assert request.system == [TextPart(text="Be brief."),
                              TextPart(text="Be kind.", cache_control={"type": "ephemeral", "ttl": "1h"})]
    assert (request.temperature, request.top_p, request.top_k) == (1.0, 0.5, 5)
    assert request.stop == ["END", "STOP"]
    assert (request.stream, request.include_usage, request.user, request.service_tier) == (
        True, True, "u-1", "standard_only")
    assert request.extra == {}


def test_parse_request_reads_every_content_block() -> None:
    request = wire.parse_request(body(messages=[
        {"role": "user", "content": [
            {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": "https://x/i.png"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
             "title": "T", "context": "C", "citations": {"enabled": True}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}},
            {"type": "document", "source": {"type": "url", "url": "https://x/d.pdf"}},
            {"type": "document", "source": {"type": "file", "file_id": "file_1"}},
        ]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "calling", "citations": [{"type": "char_location", "cited_text": "x"}]},
            {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"q": "é", "n": [1, 2]}},
            {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {"query": "x"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "42", "is_error": True,
             "cache_control": {"type": "ephemeral"}},
        ]},
    ]))
    first, second, third = request.messages
    assert first.content[1] == ImagePart(data=PNG, media_type="image/png")
    assert first.content[1].data is PNG  # type: ignore[union-attr]  # the client's string, not a copy
    assert first.content[2] == ImagePart(url="https://x/i.png")
    assert first.content[3] == DocumentPart(media_type="application/pdf", data=PDF, title="T", context="C",
                                            citations={"enabled": True})
    assert first.content[4] == DocumentPart(media_type="text/plain", text="plain")
    assert first.content[5] == DocumentPart(url="https://x/d.pdf")
    assert first.content[6] == DocumentPart(file_id="file_1")
    assert second.content[:2] == [ThinkingPart(text="hmm", signature="sig", provider="anthropic"),
                                  ThinkingPart(redacted="opaque", provider="anthropic")]
    assert second.content[3] == ToolCallPart(id="toolu_1", name="get", arguments='{"q":"é","n":[1,2]}')
    assert second.content[4] == RawPart(source="anthropic", block={
        "type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {"query": "x"}})
    assert third.content == [ToolResultPart(tool_call_id="toolu_1", content=[TextPart(text="42")], is_error=True,
                                            cache_control={"type": "ephemeral"})]


def test_parse_request_tool_result_with_blocks_and_unmodelled_blocks() -> None:
    result = {"type": "tool_result", "tool_use_id": "t", "content": [
        {"type": "text", "text": "see"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG}}]}
    odd = {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "tool_reference", "tool_name": "x"}]}
    request = wire.parse_request(user(result, odd))
    assert request.messages[0].content == [
        ToolResultPart(tool_call_id="t", content=[TextPart(text="see"), ImagePart(data=PNG, media_type="image/jpeg")]),
        RawPart(source="anthropic", block=odd),
    ]


def test_parse_request_tools_choice_thinking_and_output() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    request = wire.parse_request(body(
        tools=[
            {"name": "get", "description": "Get", "input_schema": schema, "strict": True,
             "cache_control": {"type": "ephemeral"}},
            {"name": "lazy", "input_schema": schema, "defer_loading": True},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        ],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        thinking={"type": "enabled", "budget_tokens": 2048},
        output_config={"effort": "high", "format": {"type": "json_schema", "schema": schema}},
    ))
    assert request.tools == [
        Tool(name="get", description="Get", parameters=schema, strict=True, cache_control={"type": "ephemeral"}),
        Tool(name="lazy", parameters=schema, raw={"name": "lazy", "input_schema": schema, "defer_loading": True}),
        Tool(kind="web_search_20250305", name="web_search",
             raw={"type": "web_search_20250305", "name": "web_search", "max_uses": 3}),
    ]
    assert (request.tool_choice, request.parallel_tool_calls) == (ToolChoice(mode="required"), False)
    assert request.reasoning == Reasoning(mode="enabled", budget_tokens=2048, effort="high")
    assert request.output_format == OutputFormat(type="json_schema", json_schema=schema)
    assert request.extra == {}


@pytest.mark.parametrize(("choice", "expected", "parallel"), [
    ({"type": "auto"}, ToolChoice(mode="auto"), None),
    ({"type": "none"}, ToolChoice(mode="none"), None),
    ({"type": "tool", "name": "get", "disable_parallel_tool_use": False}, ToolChoice(mode="tool", name="get"), True),
])
def test_parse_request_tool_choice(choice: dict[str, object], expected: ToolChoice, parallel: bool | None) -> None:
    request = wire.parse_request(body(tool_choice=choice))
    assert (request.tool_choice, request.parallel_tool_calls) == (expected, parallel)


def test_parse_request_keeps_unmodelled_fields_and_halves_verbatim() -> None:
    request = wire.parse_request(body(
        context_management={"edits": [{"type": "clear_tool_uses_20250919"}]},
        container="c_1", mcp_servers=[{"type": "url", "url": "https://m"}],
        thinking={"type": "adaptive", "display": "omitted"},
        output_config={"effort": "low", "task_budget": 5},
        metadata={"user_id": "u", "tag": "x"},
        output_format={"type": "json_schema", "schema": {"type": "object"}},
    ), headers={"Anthropic-Beta": "a-1, b-2", "x-other": "y"})
    assert request.extra == {
        "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
        "container": "c_1", "mcp_servers": [{"type": "url", "url": "https://m"}],
        "thinking": {"type": "adaptive", "display": "omitted"},
        "output_config": {"task_budget": 5},
        "metadata": {"user_id": "u", "tag": "x"},
    }
    assert request.reasoning == Reasoning(mode="adaptive", effort="low")
    assert request.output_format == OutputFormat(type="json_schema", json_schema={"type": "object"})
    assert request.user == "u"
    assert request.betas == ["a-1", "b-2"]


def test_parse_betas_splits_and_dedupes() -> None:
    assert wire.parse_betas({"anthropic-beta": "x,y , x,,z"}) == ["x", "y", "z"]
    assert wire.parse_betas(None) == []


def test_parse_request_keeps_a_mid_conversation_system_message_in_place() -> None:
    request = wire.parse_request(body(messages=[
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": [{"type": "text", "text": "Now be terse."}]},
        {"role": "assistant", "content": "Ok"},
    ]))
    assert [(m.role, m.text) for m in request.messages] == [
        ("user", "Hi"), ("system", "Now be terse."), ("assistant", "Ok")]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([BASE], "request body"),
        ({"max_tokens": 1, "messages": BASE["messages"]}, "'model'"),
        (body(model=""), "'model'"),
        ({"model": "c", "max_tokens": 1}, "'messages'"),
        (body(messages=[]), "'messages'"),
        (body(messages=[1]), "'messages[0]'"),
        (body(messages=[{"role": "tool", "content": "Hi"}]), "'messages[0].role'"),
        (body(messages=[{"role": "user"}]), "'messages[0].content'"),
        (body(messages=[{"role": "user", "content": []}]), "'messages[0].content'"),
        (body(messages=[{"role": "system", "content": [{"type": "image"}]}]), "'messages[0].content[0].type'"),
        (user({"type": "text", "text": 5}), "'messages[0].content[0].text'"),
        (user({"text": "x"}), "'messages[0].content[0].type'"),
        (user({"type": "text", "text": "x", "cache_control": "yes"}), "'messages[0].content[0].cache_control'"),
        (user({"type": "text", "text": "x", "citations": "c"}), "'messages[0].content[0].citations'"),
        (user({"type": "image", "source": {}}), "'messages[0].content[0].source.type'"),
        (user({"type": "image"}), "'messages[0].content[0].source'"),
        (user({"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": PNG}}),
         "'messages[0].content[0].source.media_type'"),
        (user({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "data:x"}}),
         "'messages[0].content[0].source.data'"),
        (user({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "abc"}}),
         "'messages[0].content[0].source.data'"),
        (user({"type": "image", "source": {"type": "url"}}), "'messages[0].content[0].source.url'"),
        (user({"type": "image", "source": {"type": "ftp"}}), "'messages[0].content[0].source.type'"),
        (user({"type": "document", "source": {"type": "base64", "data": PDF}}),
         "'messages[0].content[0].source.media_type'"),
        (user({"type": "document", "source": {"type": "text", "data": 3}}), "'messages[0].content[0].source.data'"),
        (user({"type": "document", "source": {"type": "url", "url": "u"}, "title": 1}),
         "'messages[0].content[0].title'"),
        (user({"type": "tool_use", "id": "t", "name": "n", "input": []}), "'messages[0].content[0].input'"),
        (user({"type": "tool_use", "name": "n", "input": {}}), "'messages[0].content[0].id'"),
        (user({"type": "tool_result", "content": "x"}), "'messages[0].content[0].tool_use_id'"),
        (user({"type": "tool_result", "tool_use_id": "t", "content": 5}), "'messages[0].content[0].content'"),
        (user({"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}), "'messages[0].content[0].is_error'"),
        (user({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text"}]}),
         "'messages[0].content[0].content[0].text'"),
        (user({"type": "thinking", "signature": "s"}), "'messages[0].content[0].thinking'"),
        (user({"type": "redacted_thinking"}), "'messages[0].content[0].data'"),
        ({"model": "c", "messages": BASE["messages"]}, "'max_tokens'"),
        (body(max_tokens=0), "'max_tokens'"),
        (body(max_tokens="100"), "'max_tokens'"),
        (body(system=5), "'system'"),
        (body(system=[{"type": "image"}]), "'system[0].type'"),
        (body(temperature=1.5), "'temperature'"),
        (body(top_p=2), "'top_p'"),
        (body(top_k=-1), "'top_k'"),
        (body(stop_sequences="END"), "'stop_sequences'"),
        (body(stream=1), "'stream'"),
        (body(metadata="u"), "'metadata'"),
        (body(metadata={"user_id": 7}), "'metadata.user_id'"),
        (body(service_tier=1), "'service_tier'"),
        (body(tools={"name": "f"}), "'tools'"),
        (body(tools=[{"input_schema": {}}]), "'tools[0].name'"),
        (body(tools=[{"name": "f"}]), "'tools[0].input_schema'"),
        (body(tools=[{"name": "f", "input_schema": {}, "strict": "y"}]), "'tools[0].strict'"),
        (body(tools=[{"name": "f", "input_schema": {}, "description": 1}]), "'tools[0].description'"),
        (body(tools=[{"name": "f", "type": 3}]), "'tools[0].type'"),
        (body(tool_choice="auto"), "'tool_choice'"),
        (body(tool_choice={"type": "required"}), "'tool_choice.type'"),
        (body(tool_choice={"type": "tool"}), "'tool_choice.name'"),
        (body(tool_choice={"type": "auto", "disable_parallel_tool_use": 1}), "'tool_choice.disable_parallel"),
        (body(thinking=True), "'thinking'"),
        (body(thinking={}), "'thinking.type'"),
        (body(thinking={"type": "enabled"}), "'thinking.budget_tokens'"),
        (body(thinking={"type": "enabled", "budget_tokens": 10}), "'thinking.budget_tokens'"),
        (body(thinking={"type": "adaptive", "display": "all"}), "'thinking.display'"),
        (body(output_config=[]), "'output_config'"),
        (body(output_config={"effort": 3}), "'output_config.effort'"),
        (body(output_config={"format": {"type": "json_object"}}), "'output_config.format.type'"),
        (body(output_config={"format": {"type": "json_schema"}}), "'output_config.format.schema'"),
        (body(output_format={"type": "json_schema", "schema": {}, "name": "x"}), "'output_format'"),
    ],
)
def test_parse_request_rejects_invalid_field(payload: object, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        wire.parse_request(payload)  # type: ignore[arg-type]
    assert field in caught.value.message
    assert caught.value.status == 400
    assert wire.render_error(caught.value)["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_unknown_block_types_are_kept_verbatim() -> None:
    block = {"type": "search_result", "source": "s", "title": "t", "content": [{"type": "text", "text": "x"}]}
    assert wire.parse_request(user(block)).messages[0].content == [RawPart(source="anthropic", block=block)]
