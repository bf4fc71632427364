"""OpenAIProvider with the whole API (an httpx2 mock transport under the real SDK client): the request body it
sends for tools and `drop`, and every delta kind of a stream (tool-call pieces, refusals, logprobs) as it comes,
with the final delta's finish reason and usage."""

import json
from collections.abc import AsyncIterator, Callable

import httpx2
import openai
import pytest

from shared.content import Tool, ToolCallPart
from shared.models import ChatRequest, Delta, FinishReason, Message, ToolCallDelta, Usage
from shared.routing_table import Target
from tests.worker.providers.conftest import collect
from worker.providers import openai as openai_adapter
from worker.providers.openai import OpenAIProvider

TARGET = Target(provider="openai", model="gpt-test", base_url="http://upstream.test/v1")
REQUEST = ChatRequest(model="public", messages=[Message(role="user", content="weather in Oslo?")],
                      tools=[Tool(name="weather", parameters={"type": "object"})], seed=7, logprobs=True)
Handler = Callable[[httpx2.Request], httpx2.Response]


def chunk(delta: dict[str, object], finish: str | None = None, logprobs: object = None) -> dict[str, object]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": logprobs}]}


LOGPROBS = {"content": [{"token": "I", "logprob": -0.5, "bytes": [73], "top_logprobs": []}]}
CHUNKS = [
    chunk({"role": "assistant", "content": None}),
    chunk({"content": "I"}, logprobs=LOGPROBS),
    chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                           "function": {"name": "weather", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
    chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                           "function": {"name": "weather", "arguments": "{}"}}]}),
    chunk({}, "tool_calls"),
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test", "choices": [],
     "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29,
               "prompt_tokens_details": {"cached_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 0}}},
]


def sse(chunks: list[dict[str, object]]) -> bytes:
    return b"".join(f"data: {json.dumps(item)}\n\n".encode() for item in chunks) + b"data: [DONE]\n\n"


@pytest.fixture
async def provider(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[[Handler], OpenAIProvider]]:
    adapters: list[OpenAIProvider] = []

    def build(handler: Handler) -> OpenAIProvider:
        def make_client(base_url: str | None, api_key: str, timeout_s: float) -> openai.AsyncOpenAI:
            http_client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
            return openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0,
                                      http_client=http_client)

        monkeypatch.setattr(openai_adapter, "_make_client", make_client)
        adapters.append(OpenAIProvider(api_key="sk", base_url=None, timeout_s=5, api_key_lookup=lambda _: None))
        return adapters[-1]

    yield build
    for adapter in adapters:
        await adapter.aclose()


def streaming(chunks: list[dict[str, object]], sent: list[dict[str, object]]) -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse(chunks))

    return handler


async def test_stream_yields_tool_call_pieces_text_and_logprobs_as_they_come(
    provider: Callable[[Handler], OpenAIProvider],
) -> None:
    sent: list[dict[str, object]] = []
    deltas = await collect(provider(streaming(CHUNKS, sent)).stream(REQUEST, TARGET))
    assert deltas == [
        Delta(text="I", logprobs=LOGPROBS),
        Delta(tool_call=ToolCallDelta(index=0, id="call_1", name="weather")),
        Delta(tool_call=ToolCallDelta(index=0, arguments='{"city":')),
        Delta(tool_call=ToolCallDelta(index=0, arguments='"Oslo"}')),
        Delta(tool_call=ToolCallDelta(index=1, id="call_2", name="weather", arguments="{}")),
        Delta(finish_reason=FinishReason.TOOL_CALLS, usage=Usage(prompt_tokens=20, completion_tokens=9)),
    ]
    assert sent[0]["tools"] == [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    assert (sent[0]["seed"], sent[0]["logprobs"], sent[0]["stream_options"]) == (7, True, {"include_usage": True})


async def test_stream_passes_drop_to_the_request(provider: Callable[[Handler], OpenAIProvider]) -> None:
    sent: list[dict[str, object]] = []
    await collect(provider(streaming(CHUNKS, sent)).stream(REQUEST, TARGET, drop=frozenset({"seed", "logprobs"})))
    assert "seed" not in sent[0] and "logprobs" not in sent[0]


async def test_a_streamed_refusal_finishes_as_a_refusal(provider: Callable[[Handler], OpenAIProvider]) -> None:
    chunks = [chunk({"role": "assistant", "refusal": ""}), chunk({"refusal": "I can't"}), chunk({"refusal": "."}),
              chunk({}, "stop")]
    deltas = await collect(provider(streaming(chunks, [])).stream(REQUEST, TARGET))
    assert [d.refusal for d in deltas[:-1]] == ["I can't", "."]
    assert deltas[-1].finish_reason == FinishReason.REFUSAL


async def test_complete_reads_tool_calls_and_passes_drop(provider: Callable[[Handler], OpenAIProvider]) -> None:
    sent: list[dict[str, object]] = []
    answer = {"id": "chatcmpl-2", "object": "chat.completion", "created": 1, "model": "gpt-test",
              "system_fingerprint": "fp_1",
              "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None,
                           "message": {"role": "assistant", "content": None, "tool_calls": [
                               {"id": "call_1", "type": "function",
                                "function": {"name": "weather", "arguments": "{}"}}]}}],
              "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        return httpx2.Response(200, json=answer)

    completion = await provider(handler).complete(REQUEST, TARGET, drop=frozenset({"seed"}))
    assert completion.tool_calls == [ToolCallPart(id="call_1", name="weather", arguments="{}")]
    assert (completion.finish_reason, completion.system_fingerprint) == (FinishReason.TOOL_CALLS, "fp_1")
    assert "seed" not in sent[0] and sent[0]["logprobs"] is True
