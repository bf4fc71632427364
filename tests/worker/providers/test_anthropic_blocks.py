"""AnthropicProvider against an httpx mock transport: streamed thinking, text and tool_use blocks come out as
deltas of every kind, `drop` reaches `render_request`, and the client's betas reach the upstream."""

import json

import anthropic
import httpx2
import pytest

from shared.content import Tool, ToolCallPart
from shared.errors import UnsupportedParameter
from shared.models import ChatRequest, Delta, FinishReason, Message, ToolCallDelta, Usage
from shared.routing_table import Target
from shared.wire import anthropic as wire
from worker.providers import anthropic as adapter_module
from worker.providers.anthropic import AnthropicProvider

TARGET = Target(provider="anthropic", model="claude-sonnet-4-5", base_url="http://upstream")


def event(name: str, **fields: object) -> str:
    return f"event: {name}\ndata: {json.dumps({'type': name, **fields})}\n\n"


STREAM = "".join([
    event("message_start", message={"id": "msg_1", "type": "message", "role": "assistant", "model": "c",
                                     "content": [], "stop_reason": None, "stop_sequence": None,
                                     "usage": {"input_tokens": 10, "cache_read_input_tokens": 90,
                                               "cache_creation_input_tokens": 4, "output_tokens": 1,
                                               "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                                                  "ephemeral_1h_input_tokens": 4}}}),
    event("ping"),
    event("content_block_start", index=0, content_block={"type": "thinking", "thinking": "", "signature": ""}),
    event("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "Weather needs a tool."}),
    event("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "sig=="}),
    event("content_block_stop", index=0),
    event("content_block_start", index=1, content_block={"type": "text", "text": ""}),
    event("content_block_delta", index=1, delta={"type": "text_delta", "text": "Checking."}),
    event("content_block_stop", index=1),
    event("content_block_start", index=2, content_block={"type": "tool_use", "id": "toolu_1", "name": "weather",
                                                          "input": {}}),
    event("content_block_delta", index=2, delta={"type": "input_json_delta", "partial_json": '{"city":'}),
    event("content_block_delta", index=2, delta={"type": "input_json_delta", "partial_json": '"Oslo"}'}),
    event("content_block_stop", index=2),
    event("message_delta", delta={"stop_reason": "tool_use", "stop_sequence": None},
          usage={"output_tokens": 25}),
    event("message_stop"),
]).encode()


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> list[httpx2.Request]:
    """Every request the adapter sends; the upstream answers a stream or a message as asked."""
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if json.loads(request.content).get("stream"):
            return httpx2.Response(200, content=STREAM, headers={"content-type": "text/event-stream"})
        answer = {"id": "msg_2", "type": "message", "role": "assistant", "model": "c", "stop_reason": "tool_use",
                  "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 7},
                  "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                              {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "Rome"}}]}
        return httpx2.Response(200, json=answer)

    def make_client(base_url: str | None, api_key: str, timeout_s: float) -> anthropic.AsyncAnthropic:
        http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
        return anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0,
                                        http_client=http)

    monkeypatch.setattr(adapter_module, "_make_client", make_client)
    return seen


def provider() -> AnthropicProvider:
    return AnthropicProvider(api_key="sk-ant", base_url=None, timeout_s=5, api_key_lookup=lambda _: None)


REQUEST = wire.parse_request(
    {"model": "public", "max_tokens": 2000, "messages": [{"role": "user", "content": "Weather in Oslo?"}],
     "tools": [{"name": "weather", "input_schema": {"type": "object"}}], "thinking": {"type": "adaptive"},
     "context_management": {"edits": []}},
    {"anthropic-beta": "context-management-2025-06-27,interleaved-thinking-2025-05-14"},
)


async def test_stream_yields_thinking_text_and_tool_call_deltas(upstream: list[httpx2.Request]) -> None:
    adapter = provider()
    try:
        deltas = [delta async for delta in adapter.stream(REQUEST, TARGET)]
    finally:
        await adapter.aclose()
    *content, final = deltas
    assert content == [
        Delta(thinking="Weather needs a tool."),
        Delta(signature="sig=="),
        Delta(text="Checking."),
        Delta(tool_call=ToolCallDelta(index=0, id="toolu_1", name="weather")),
        Delta(tool_call=ToolCallDelta(index=0, arguments='{"city":')),
        Delta(tool_call=ToolCallDelta(index=0, arguments='"Oslo"}')),
    ]
    assert final.finish_reason == FinishReason.TOOL_CALLS
    assert final.usage == Usage(prompt_tokens=104, completion_tokens=25, cached_prompt_tokens=90,
                                cache_write_1h_tokens=4)
    sent = json.loads(upstream[0].content)
    assert (sent["stream"], sent["thinking"], sent["context_management"]) == (True, {"type": "adaptive"},
                                                                              {"edits": []})
    assert upstream[0].headers["anthropic-beta"] == "context-management-2025-06-27,interleaved-thinking-2025-05-14"


async def test_complete_reads_thinking_and_tool_calls(upstream: list[httpx2.Request]) -> None:
    adapter = provider()
    try:
        completion = await adapter.complete(REQUEST, TARGET)
    finally:
        await adapter.aclose()
    assert completion.tool_calls == [ToolCallPart(id="toolu_9", name="weather", arguments='{"city":"Rome"}')]
    assert completion.thinking[0].signature == "s"
    assert json.loads(upstream[0].content)["tools"] == [{"name": "weather", "input_schema": {"type": "object"}}]


async def test_drop_reaches_the_renderer(upstream: list[httpx2.Request]) -> None:
    request = ChatRequest(model="public", messages=[Message(role="user", content="Hi")], seed=7,
                          tools=[Tool(name="f", parameters={"type": "object"})])
    adapter = provider()
    try:
        with pytest.raises(UnsupportedParameter, match="'seed'"):
            await adapter.complete(request, TARGET)
        assert upstream == []
        await adapter.complete(request, TARGET, drop=frozenset({"seed"}))
    finally:
        await adapter.aclose()
    assert "seed" not in json.loads(upstream[0].content)
