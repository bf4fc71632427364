"""The fake provider's tool calls and JSON-schema answers in both formats, plain and streamed, parsed by the
official SDKs: a call of the forced (or first, or directive-named) tool with arguments valid against its
schema, a text quoting the tool result on the next turn, and structured answers valid against the schema."""

import json
from typing import Any

import anthropic
import jsonschema
import pytest

from shared.fake_provider_schema import example_value
from tests.shared.fake_provider_support import Clients

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer", "minimum": 3},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "hourly": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "where": {"$ref": "#/$defs/Where"},
        "note": {"anyOf": [{"type": "null"}, {"type": "number", "maximum": 0.5}]},
        "optional": {"type": "string"},
    },
    "required": ["city", "days", "unit", "hourly", "tags", "where", "note"],
    "additionalProperties": False,
    "$defs": {"Where": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]}},
}
OPENAI_TOOLS: Any = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}},
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}},
]
ANTHROPIC_TOOLS: Any = [
    {"name": "lookup", "input_schema": {"type": "object", "properties": {}}},
    {"name": "get_weather", "input_schema": WEATHER_SCHEMA},
]
ASK: Any = [{"role": "user", "content": "weather in Paris?"}]


def test_example_value_is_valid_and_deterministic() -> None:
    value = example_value(WEATHER_SCHEMA)
    jsonschema.validate(value, WEATHER_SCHEMA)
    assert value == example_value(WEATHER_SCHEMA)
    assert value["city"] == "city example" and value["days"] == 3 and value["unit"] == "celsius"
    assert "optional" not in value and len(value["tags"]) == 2 and value["note"] == 0.5


async def test_openai_forced_tool_call_has_schema_valid_arguments(clients: Clients) -> None:
    oai, _ = clients
    choice: Any = {"type": "function", "function": {"name": "get_weather"}}
    completion = await oai.chat.completions.create(model="m", messages=ASK, tools=OPENAI_TOOLS, tool_choice=choice)
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_SCHEMA)


async def test_openai_auto_calls_first_tool_and_directive_picks_one(clients: Clients) -> None:
    oai, _ = clients
    first = await oai.chat.completions.create(model="m", messages=ASK, tools=OPENAI_TOOLS)
    picked = await oai.chat.completions.create(
        model="m", tools=OPENAI_TOOLS,
        messages=[{"role": "user", "content": 'go [tool:get_weather {"city": "Oslo"}]'}],
    )
    assert first.choices[0].message.tool_calls[0].function.name == "lookup"  # type: ignore[index]
    arguments = json.loads(picked.choices[0].message.tool_calls[0].function.arguments)  # type: ignore[index]
    assert arguments["city"] == "Oslo" and arguments["unit"] == "celsius"
    none = await oai.chat.completions.create(model="m", messages=ASK, tools=OPENAI_TOOLS, tool_choice="none")
    assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason == "stop"


async def test_openai_streamed_tool_call_sends_id_and_name_then_fragments(clients: Clients) -> None:
    oai, _ = clients
    stream = await oai.chat.completions.create(model="m", messages=ASK, tools=OPENAI_TOOLS, stream=True,
                                               tool_choice="required")
    pieces = [chunk.choices[0].delta.tool_calls async for chunk in stream if chunk.choices]
    calls = [call for piece in pieces if piece for call in piece]
    assert calls[0].id and calls[0].function and calls[0].function.name == "lookup"
    assert all(call.id is None and call.index == 0 for call in calls[1:])
    assert json.loads("".join(call.function.arguments or "" for call in calls if call.function)) == {}


async def test_openai_tool_result_turn_answers_quoting_it(clients: Clients) -> None:
    oai, _ = clients
    call: Any = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    messages: Any = [*ASK, {"role": "assistant", "content": None, "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"}]
    completion = await oai.chat.completions.create(model="m", messages=messages, tools=OPENAI_TOOLS)
    assert completion.choices[0].message.content == "Tool result: Sunny, 21 C"
    assert completion.choices[0].finish_reason == "stop"


async def test_openai_json_schema_and_json_object_answers(clients: Clients) -> None:
    oai, _ = clients
    schema: Any = {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER_SCHEMA, "strict": True}}
    structured = await oai.chat.completions.create(model="m", messages=ASK, response_format=schema)
    jsonschema.validate(json.loads(structured.choices[0].message.content or ""), WEATHER_SCHEMA)
    stream = await oai.chat.completions.create(model="m", messages=ASK, response_format={"type": "json_object"},
                                               stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert json.loads(text)["answer"].startswith("Fake reply to: weather in Paris?")


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_tool_use_block_and_round_trip(clients: Clients, stream: bool) -> None:
    _, claude = clients
    kwargs: Any = {"model": "c", "max_tokens": 100, "messages": ASK, "tools": ANTHROPIC_TOOLS,
                   "tool_choice": {"type": "tool", "name": "get_weather"}}
    if stream:
        async with claude.messages.stream(**kwargs) as events:
            message = await events.get_final_message()
    else:
        message = await claude.messages.create(**kwargs)
    block = message.content[0]
    assert message.stop_reason == "tool_use"
    assert isinstance(block, anthropic.types.ToolUseBlock) and block.id.startswith("toolu_")
    jsonschema.validate(block.input, WEATHER_SCHEMA)
    result: Any = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "Rainy"}]}
    answer = await claude.messages.create(model="c", max_tokens=100, tools=ANTHROPIC_TOOLS,
                                          messages=[*ASK, {"role": "assistant", "content": [block]}, result])
    assert answer.content[0].type == "text" and answer.content[0].text == "Tool result: Rainy"
    assert answer.stop_reason == "end_turn"


async def test_anthropic_any_choice_and_structured_output_shapes(clients: Clients) -> None:
    _, claude = clients
    forced = await claude.messages.create(model="c", max_tokens=100, messages=ASK, tools=ANTHROPIC_TOOLS,
                                          tool_choice={"type": "any"})
    assert forced.content[0].type == "tool_use" and forced.content[0].name == "lookup"
    for field in ({"output_format": {"type": "json_schema", "schema": WEATHER_SCHEMA}},
                  {"output_config": {"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}}}):
        message = await claude.messages.create(model="c", max_tokens=100, messages=ASK, extra_body=field)
        assert message.content[0].type == "text"
        jsonschema.validate(json.loads(message.content[0].text), WEATHER_SCHEMA)


async def test_unknown_forced_tool_is_400(clients: Clients) -> None:
    _, claude = clients
    with pytest.raises(anthropic.BadRequestError):
        await claude.messages.create(model="c", max_tokens=10, messages=ASK, tools=ANTHROPIC_TOOLS,
                                     tool_choice={"type": "tool", "name": "missing"})
