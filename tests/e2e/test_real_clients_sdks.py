"""The official SDKs through the gateway with what real clients send beyond text, each served by an OpenAI
and an Anthropic target of the fake provider: images (a data URL, a base64 image block) whose bytes must
arrive intact (the fake names their type and size), streamed tool calls, thinking blocks whose signatures
must survive the round trip, refusals, stop sequences, and fallback mid-route (an OpenAI target failing
with 503, then an Anthropic target serving a tool call to either SDK, and the other way round)."""

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.real_clients import BOTH, ClientsGateway, clients_gateway  # noqa: F401 (fixture)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PNG_B64 = base64.b64encode(PNG).decode()
SCHEMA: dict[str, Any] = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
OPENAI_TOOLS: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}]
ANTHROPIC_TOOLS: Any = [{"name": "get_weather", "description": "weather", "input_schema": SCHEMA}]


@pytest.fixture
async def oai(clients_gateway: ClientsGateway, tenant_key: str) -> AsyncIterator[openai.AsyncOpenAI]:  # noqa: F811
    sdk = openai.AsyncOpenAI(base_url=clients_gateway.openai_url, api_key=tenant_key, max_retries=0, timeout=30)
    yield sdk
    await sdk.close()


@pytest.fixture
async def claude(clients_gateway: ClientsGateway, tenant_key: str) -> AsyncIterator[anthropic.AsyncAnthropic]:  # noqa: F811
    sdk = anthropic.AsyncAnthropic(base_url=clients_gateway.base_url, api_key=tenant_key, max_retries=0, timeout=30)
    yield sdk
    await sdk.close()


async def _openai_stream_text(stream: Any) -> str:
    return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])


@pytest.mark.parametrize("routed", BOTH)
@pytest.mark.parametrize("streamed", [False, True])
async def test_openai_sdk_data_url_image_arrives_intact(oai: openai.AsyncOpenAI, routed: str, streamed: bool) -> None:
    content: Any = [{"type": "text", "text": "describe"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}]
    messages: Any = [{"role": "user", "content": content}]
    if streamed:
        text = await _openai_stream_text(await oai.chat.completions.create(model=routed, messages=messages,
                                                                            stream=True))
    else:
        text = (await oai.chat.completions.create(model=routed, messages=messages)).choices[0].message.content or ""
    assert text.startswith(f"Received image/png {len(PNG)} bytes. Fake reply to: describe")


@pytest.mark.parametrize("routed", BOTH)
@pytest.mark.parametrize("streamed", [False, True])
async def test_anthropic_sdk_base64_image_arrives_intact(
    claude: anthropic.AsyncAnthropic, routed: str, streamed: bool
) -> None:
    blocks: Any = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                   {"type": "text", "text": "describe"}]
    kwargs: Any = {"model": routed, "max_tokens": 100, "messages": [{"role": "user", "content": blocks}]}
    if streamed:
        async with claude.messages.stream(**kwargs) as stream:
            message = await stream.get_final_message()
    else:
        message = await claude.messages.create(**kwargs)
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith(f"Received image/png {len(PNG)} bytes. Fake reply to: describe")


async def _openai_streamed_tool_call(oai: openai.AsyncOpenAI, routed: str) -> tuple[str, str, dict[str, Any], str]:
    stream = await oai.chat.completions.create(model=routed, messages=[{"role": "user", "content": "weather?"}],
                                               tools=OPENAI_TOOLS, stream=True)
    call_id, name, arguments, finish = "", "", "", ""
    async for chunk in stream:
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for piece in chunk.choices[0].delta.tool_calls or []:
            assert piece.index == 0
            call_id += piece.id or ""
            if piece.function:
                name += piece.function.name or ""
                arguments += piece.function.arguments or ""
    return call_id, name, json.loads(arguments), finish


@pytest.mark.parametrize("routed", [*BOTH, "rc-openai-then-anthropic", "rc-anthropic-then-openai"])
async def test_openai_sdk_streamed_tool_call(oai: openai.AsyncOpenAI, routed: str) -> None:
    call_id, name, arguments, finish = await _openai_streamed_tool_call(oai, routed)
    assert call_id and name == "get_weather" and arguments == {"city": "city example"}
    assert finish == "tool_calls"


@pytest.mark.parametrize("routed", [*BOTH, "rc-openai-then-anthropic", "rc-anthropic-then-openai"])
async def test_anthropic_sdk_streamed_tool_use(claude: anthropic.AsyncAnthropic, routed: str) -> None:
    async with claude.messages.stream(model=routed, max_tokens=100, tools=ANTHROPIC_TOOLS,
                                      messages=[{"role": "user", "content": "weather?"}]) as stream:
        kinds = [event.type async for event in stream]
        message = await stream.get_final_message()
    assert "content_block_start" in kinds and message.stop_reason == "tool_use"
    block = message.content[-1]
    assert block.type == "tool_use" and block.name == "get_weather" and block.input == {"city": "city example"}


@pytest.mark.parametrize(("routed", "provider"), [("rc-openai-then-anthropic", "anthropic"),
                                                  ("rc-anthropic-then-openai", "openai")])
async def test_fallback_mid_route_serves_openai_tool_call_round_trip(
    oai: openai.AsyncOpenAI, clients_gateway: ClientsGateway, routed: str, provider: str  # noqa: F811
) -> None:
    question: Any = {"role": "user", "content": "weather?"}
    response = await oai.chat.completions.with_raw_response.create(model=routed, messages=[question],
                                                                   tools=OPENAI_TOOLS)
    completion = response.parse()
    assert response.headers["x-gateway-provider"] == provider
    assert response.headers["x-gateway-fallback"] == "true"
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "city example"}
    history: Any = [question, completion.choices[0].message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": "Cloudy, 12 C"}]
    answer = await oai.chat.completions.create(model=routed, messages=history, tools=OPENAI_TOOLS)
    assert answer.choices[0].message.content == "Tool result: Cloudy, 12 C"
    served = clients_gateway.upstream_requests(routed)[-1]["body"]
    assert json.dumps(served).count(call.id) >= 2  # the call id links the call and its result upstream


@pytest.mark.parametrize(("routed", "provider"), [("rc-openai-then-anthropic", "anthropic"),
                                                  ("rc-anthropic-then-openai", "openai")])
async def test_fallback_mid_route_serves_anthropic_tool_use_round_trip(
    claude: anthropic.AsyncAnthropic, clients_gateway: ClientsGateway, routed: str, provider: str  # noqa: F811
) -> None:
    question: Any = {"role": "user", "content": "weather?"}
    response = await claude.messages.with_raw_response.create(model=routed, max_tokens=100, messages=[question],
                                                              tools=ANTHROPIC_TOOLS)
    message = await response.parse()  # the async Anthropic SDK parses asynchronously
    assert response.headers["x-gateway-provider"] == provider
    assert response.headers["x-gateway-fallback"] == "true"
    assert message.stop_reason == "tool_use"
    call = message.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == {"city": "city example"}
    blocks = [block.model_dump(exclude_none=True) for block in message.content]
    history: Any = [question, {"role": "assistant", "content": blocks},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                                  "content": "Cloudy, 12 C"}]}]
    answer = await claude.messages.create(model=routed, max_tokens=100, messages=history, tools=ANTHROPIC_TOOLS)
    assert answer.content[0].type == "text" and answer.content[0].text == "Tool result: Cloudy, 12 C"
    served = clients_gateway.upstream_requests(routed)[-1]["body"]
    assert json.dumps(served).count(call.id) >= 2  # the call id links the call and its result upstream


@pytest.mark.parametrize("streamed", [False, True])
async def test_anthropic_sdk_thinking_signature_survives_round_trip(
    claude: anthropic.AsyncAnthropic, streamed: bool
) -> None:
    kwargs: Any = {"model": "rc-anthropic", "max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 1024},
                   "messages": [{"role": "user", "content": "think first"}]}
    if streamed:
        async with claude.messages.stream(**kwargs) as stream:
            message = await stream.get_final_message()
    else:
        message = await claude.messages.create(**kwargs)
    thinking = message.content[0]
    assert thinking.type == "thinking" and thinking.thinking == "Thinking about: think first" and thinking.signature
    blocks = [block.model_dump(exclude_none=True) for block in message.content]
    history = [*kwargs["messages"], {"role": "assistant", "content": blocks}, {"role": "user", "content": "go on"}]
    follow_up = await claude.messages.create(**{**kwargs, "messages": history})  # the fake verifies the signature
    assert follow_up.stop_reason == "end_turn"


@pytest.mark.parametrize("routed", BOTH)
async def test_refusal_reaches_both_clients(
    oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic, routed: str
) -> None:
    completion = await oai.chat.completions.create(model=routed, messages=[{"role": "user", "content": "REFUSE"}])
    assert completion.choices[0].message.refusal == "I can't help with that request."
    stream = await oai.chat.completions.create(model=routed, messages=[{"role": "user", "content": "REFUSE"}],
                                               stream=True)
    choices = [c.choices[0] async for c in stream if c.choices]
    refusal = "".join(choice.delta.refusal or "" for choice in choices)
    if routed == "rc-openai":
        assert refusal == "I can't help with that request."
    else:  # Anthropic says it refused only at the end: its text was streamed as content, then content_filter
        assert "".join(choice.delta.content or "" for choice in choices) == "I can't help with that request."
        assert choices[-1].finish_reason == "content_filter"
    message = await claude.messages.create(model=routed, max_tokens=50,
                                           messages=[{"role": "user", "content": "REFUSE"}])
    assert message.stop_reason == "refusal"


@pytest.mark.parametrize("routed", BOTH)
async def test_anthropic_sdk_stop_sequence(claude: anthropic.AsyncAnthropic, routed: str) -> None:
    message = await claude.messages.create(model=routed, max_tokens=50, stop_sequences=["HALT"],
                                           messages=[{"role": "user", "content": "one HALT two"}])
    if routed == "rc-anthropic":
        assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "HALT")
    else:  # OpenAI stops at the sequence but does not say one matched
        assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert message.content[0].type == "text" and message.content[0].text == "Fake reply to: one"


async def test_anthropic_sdk_beta_header_and_cache_usage_reach_upstream(
    claude: anthropic.AsyncAnthropic, clients_gateway: ClientsGateway  # noqa: F811
) -> None:
    system: Any = [{"type": "text", "text": "cached system prompt " * 5, "cache_control": {"type": "ephemeral"}}]
    kwargs: Any = {"model": "rc-anthropic", "max_tokens": 20, "system": system,
                   "messages": [{"role": "user", "content": "cache me e2e"}],
                   "extra_headers": {"anthropic-beta": "fake-beta-2026-01-01"}}
    # no-cache: the second request must reach the upstream (not the gateway's response cache) to read its cache
    kwargs["extra_headers"]["cache-control"] = "no-cache"
    first = await claude.messages.create(**kwargs)
    second = await claude.messages.create(**kwargs)
    assert first.usage.cache_creation_input_tokens == 15 or first.usage.cache_read_input_tokens == 15
    assert second.usage.cache_read_input_tokens == 15 and second.usage.input_tokens == 3
    upstream = clients_gateway.upstream_requests("rc-anthropic")[-1]
    assert "fake-beta-2026-01-01" in upstream["headers"]["anthropic-beta"]
    assert upstream["body"]["system"][0]["cache_control"] == {"type": "ephemeral"}
