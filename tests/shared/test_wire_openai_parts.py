"""shared.wire.openai inbound, the whole API: content parts, tool calls and results, tools, tool choice,
response format, reasoning, sampling, unmodelled fields kept in `extra`, and a 400 naming each malformed piece."""

import pytest

from shared.content import (
    AudioPart,
    DocumentPart,
    ImagePart,
    OutputFormat,
    Reasoning,
    TextPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from shared.errors import InvalidRequest
from shared.models import Message, WireFormat
from shared.wire import openai as wire

PNG = "iVBORw0KGgo="
PDF = "JVBERi0xLjQK"


def body(**changes: object) -> dict[str, object]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], **changes}


def user(*parts: object) -> dict[str, object]:
    return body(messages=[{"role": "user", "content": list(parts)}])


def test_user_parts_become_image_audio_and_document_parts() -> None:
    request = wire.parse_request(user(
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "a.pdf"}},
        {"type": "file", "file": {"file_id": "file-abc"}},
    ))
    assert request.messages[0].content == [
        TextPart(text="look"),
        ImagePart(data=PNG, media_type="image/png", detail="low"),
        ImagePart(url="https://example.com/a.jpg"),
        AudioPart(data="UklGRg==", format="wav"),
        DocumentPart(data=PDF, media_type="application/pdf", filename="a.pdf"),
        DocumentPart(file_id="file-abc"),
    ]
    assert request.source == WireFormat.OPENAI


def test_system_and_developer_turns_stay_in_place_with_names() -> None:
    request = wire.parse_request(body(messages=[
        {"role": "user", "content": "a"},
        {"role": "developer", "content": "rule", "name": "ops"},
        {"role": "system", "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]},
    ]))
    assert request.system == []
    assert request.messages[1:] == [
        Message(role="developer", content="rule", name="ops"),
        Message(role="system", content=[TextPart(text="x"), TextPart(text="y")]),
    ]


def test_tool_calls_results_and_refusals() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"q":1}'}}
    request = wire.parse_request(body(messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
        {"role": "assistant", "content": None, "refusal": "No."},
        {"role": "assistant", "content": [{"type": "text", "text": "A"}, {"type": "refusal", "refusal": "B"}]},
        {"role": "assistant", "content": None, "function_call": {"name": "old", "arguments": "{}"}},
        {"role": "function", "name": "old", "content": "done"},
    ]))
    assert request.messages[1:] == [
        Message(role="assistant", content=[TextPart(text="Checking."),
                                           ToolCallPart(id="call_1", name="get", arguments='{"q":1}')]),
        Message(role="user", content=[ToolResultPart(tool_call_id="call_1", content=[TextPart(text="sunny")]),
                                      ToolResultPart(tool_call_id="call_2", content=[TextPart(text="rain")])]),
        Message(role="assistant", content=[], refusal="No."),
        Message(role="assistant", content=[TextPart(text="A")], refusal="B"),
        Message(role="assistant", content=[ToolCallPart(id="call_old", name="old", arguments="{}")]),
        Message(role="user", content=[ToolResultPart(tool_call_id="call_old", content=[TextPart(text="done")])]),
    ]


def test_tools_choice_format_reasoning_and_sampling_are_modelled() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    request = wire.parse_request(body(
        tools=[{"type": "function", "function": {"name": "f", "description": "d", "parameters": schema,
                                                 "strict": True}},
               {"type": "custom", "custom": {"name": "grammar", "format": {"type": "text"}}}],
        tool_choice={"type": "function", "function": {"name": "f"}},
        parallel_tool_calls=False,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "out", "schema": schema, "strict": True, "description": "D"}},
        reasoning_effort="high", seed=-4, frequency_penalty=-2, presence_penalty=1.5, logit_bias={"50256": -100},
        logprobs=True, top_logprobs=20, n=3, metadata={"k": "v"}, service_tier="flex", store=False,
        prompt_cache_key="pk", safety_identifier="sid", max_completion_tokens=99,
    ))
    assert request.tools == [
        Tool(name="f", description="d", parameters=schema, strict=True),
        Tool(kind="custom", name="grammar",
             raw={"type": "custom", "custom": {"name": "grammar", "format": {"type": "text"}}}),
    ]
    assert request.tool_choice == ToolChoice(mode="tool", name="f")
    assert request.parallel_tool_calls is False
    assert request.output_format == OutputFormat(type="json_schema", name="out", json_schema=schema, strict=True,
                                                 description="D")
    assert request.reasoning == Reasoning(effort="high")
    sampling = (request.seed, request.frequency_penalty, request.presence_penalty, request.logit_bias,
                request.logprobs, request.top_logprobs, request.n)
    assert sampling == (-4, -2.0, 1.5, {"50256": -100.0}, True, 20, 3)
    service = (request.metadata, request.service_tier, request.store, request.prompt_cache_key,
               request.safety_identifier, request.max_tokens)
    assert service == ({"k": "v"}, "flex", False, "pk", "sid", 99)
    assert request.extra == {}


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", ToolChoice(mode="auto")), ("none", ToolChoice(mode="none")), ("required", ToolChoice(mode="required")),
    ({"type": "custom", "custom": {"name": "g"}}, ToolChoice(mode="tool", name="g")),
])
def test_tool_choice_forms(choice: object, expected: ToolChoice) -> None:
    assert wire.parse_request(body(tool_choice=choice)).tool_choice == expected


def test_legacy_functions_and_function_call() -> None:
    request = wire.parse_request(body(functions=[{"name": "f", "parameters": {"type": "object"}}],
                                      function_call={"name": "f"}))
    assert request.tools == [Tool(name="f", parameters={"type": "object"})]
    assert request.tool_choice == ToolChoice(mode="tool", name="f")


def test_text_format_is_no_format_and_json_object_is_one() -> None:
    assert wire.parse_request(body(response_format={"type": "text"})).output_format is None
    assert wire.parse_request(body(response_format={"type": "json_object"})).output_format == OutputFormat(
        type="json_object")


def test_unmodelled_fields_are_kept_verbatim_in_extra() -> None:
    extra = {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "mp3"},
             "prediction": {"type": "content", "content": "x"}, "web_search_options": {}, "verbosity": "low",
             "future_field": [1, {"a": None}]}
    allowed = {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}
    request = wire.parse_request(body(**extra, tool_choice=allowed, stream_options={"include_obfuscation": False,
                                                                                      "include_usage": True}))
    assert request.extra == {**extra, "tool_choice": allowed, "stream_options": {"include_obfuscation": False}}
    assert request.tool_choice is None
    assert request.include_usage is True


@pytest.mark.parametrize(("payload", "field"), [
    (user({"type": "image_url"}), "'messages[0].content[0].image_url'"),
    (user({"type": "image_url", "image_url": {"url": ""}}), "'messages[0].content[0].image_url.url'"),
    (user({"type": "image_url", "image_url": {"url": "data:image/png,abc"}}), "'messages[0].content[0].image_url.url'"),
    (user({"type": "image_url", "image_url": {"url": "data:image/png;base64,ab!="}}),
     "'messages[0].content[0].image_url.url'"),
    (user({"type": "image_url", "image_url": {"url": "data:image/png;base64,abc"}}),
     "'messages[0].content[0].image_url.url'"),
    (user({"type": "image_url", "image_url": {"url": "data:;base64,abcd"}}), "'messages[0].content[0].image_url.url'"),
    (user({"type": "image_url", "image_url": {"url": "https://x", "detail": "max"}}),
     "'messages[0].content[0].image_url.detail'"),
    (user({"type": "input_audio", "input_audio": {"data": "UklGRg=="}}),
     "'messages[0].content[0].input_audio.format'"),
    (user({"type": "input_audio", "input_audio": {"data": "not base64", "format": "wav"}}),
     "'messages[0].content[0].input_audio.data'"),
    (user({"type": "file", "file": {"filename": "a.pdf"}}), "'messages[0].content[0].file'"),
    (user({"type": "file", "file": {"file_data": "%%%%"}}), "'messages[0].content[0].file.file_data'"),
    (user({"type": "file", "file": {"file_id": 5}}), "'messages[0].content[0].file.file_id'"),
    (user({"type": "text", "text": 5}), "'messages[0].content[0].text'"),
    (body(messages=[{"role": "system", "content": [{"type": "image_url"}]}]), "'messages[0].content[0].type'"),
    (body(messages=[{"role": "assistant"}]), "'messages[0].content'"),
    (body(messages=[{"role": "assistant", "content": [{"type": "image_url"}]}]), "'messages[0].content[0].type'"),
    (body(messages=[{"role": "assistant", "content": None, "refusal": 1}]), "'messages[0].refusal'"),
    (body(messages=[{"role": "assistant", "tool_calls": {}}]), "'messages[0].tool_calls'"),
    (body(messages=[{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f",
                                                                                           "arguments": "{}"}}]}]),
     "'messages[0].tool_calls[0].id'"),
    (body(messages=[{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}]),
     "'messages[0].tool_calls[0].function.arguments'"),
    (body(messages=[{"role": "assistant", "function_call": {"arguments": "{}"}}]), "'messages[0].function_call.name'"),
    (body(messages=[{"role": "tool", "tool_call_id": "c"}]), "'messages[0].content'"),
    (body(messages=[{"role": "function", "content": "x"}]), "'messages[0].name'"),
    (body(messages=[{"role": "user", "content": "x", "name": 3}]), "'messages[0].name'"),
    (body(tools={}), "'tools'"),
    (body(tools=[{"function": {"name": "f"}}]), "'tools[0].type'"),
    (body(tools=[{"type": "function"}]), "'tools[0].function'"),
    (body(tools=[{"type": "function", "function": {}}]), "'tools[0].function.name'"),
    (body(tools=[{"type": "function", "function": {"name": "f", "parameters": []}}]), "'tools[0].function.parameters'"),
    (body(tools=[{"type": "function", "function": {"name": "f", "strict": "yes"}}]), "'tools[0].function.strict'"),
    (body(tools=[{"type": "custom"}]), "'tools[0].custom'"),
    (body(functions=[{"description": "x"}]), "'functions[0].name'"),
    (body(tool_choice="any"), "'tool_choice'"),
    (body(tool_choice={"type": "function"}), "'tool_choice.function'"),
    (body(tool_choice={"type": "function", "function": {}}), "'tool_choice.function.name'"),
    (body(tool_choice={"type": "tool"}), "'tool_choice.type'"),
    (body(tool_choice={"type": "allowed_tools"}), "'tool_choice.allowed_tools'"),
    (body(function_call="required"), "'function_call'"),
    (body(parallel_tool_calls="no"), "'parallel_tool_calls'"),
    (body(response_format="json"), "'response_format'"),
    (body(response_format={"type": "xml"}), "'response_format.type'"),
    (body(response_format={"type": "json_schema"}), "'response_format.json_schema'"),
    (body(response_format={"type": "json_schema", "json_schema": {}}), "'response_format.json_schema.name'"),
    (body(response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": 1}}),
     "'response_format.json_schema.schema'"),
    (body(response_format={"type": "json_schema", "json_schema": {"name": "n", "strict": 1}}),
     "'response_format.json_schema.strict'"),
    (body(reasoning_effort=1), "'reasoning_effort'"),
    (body(seed=2**63), "'seed'"),
    (body(seed=1.5), "'seed'"),
    (body(frequency_penalty=2.5), "'frequency_penalty'"),
    (body(presence_penalty=-3), "'presence_penalty'"),
    (body(logit_bias=[1]), "'logit_bias'"),
    (body(logit_bias={"abc": 1}), "'logit_bias'"),
    (body(logit_bias={"١٢": 1}), "'logit_bias'"),
    (body(logit_bias={"1": 101}), "'logit_bias.1'"),
    (body(logit_bias={"1": None}), "'logit_bias.1'"),
    (body(logprobs="yes"), "'logprobs'"),
    (body(top_logprobs=21), "'top_logprobs'"),
    (body(n=129), "'n'"),
    (body(metadata={"k": 1}), "'metadata.k'"),
    (body(metadata={str(i): "v" for i in range(17)}), "'metadata'"),
    (body(metadata={"k" * 65: "v"}), "'metadata'"),
    (body(metadata={"k": "v" * 513}), "'metadata.k'"),
    (body(service_tier=1), "'service_tier'"),
    (body(store="yes"), "'store'"),
    (body(prompt_cache_key=5), "'prompt_cache_key'"),
    (body(safety_identifier=[]), "'safety_identifier'"),
])
def test_malformed_fields_are_400s_naming_them(payload: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        wire.parse_request(payload)
    assert field in caught.value.message
    assert caught.value.status == 400


def test_a_large_inline_image_is_kept_as_the_same_characters() -> None:
    data = "QUJD" * 500_000
    request = wire.parse_request(user({"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}}))
    part = request.messages[0].content[0]
    assert isinstance(part, ImagePart)
    assert (part.media_type, part.data == data) == ("image/jpeg", True)
