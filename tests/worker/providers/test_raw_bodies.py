"""Both adapters on scripted HTTP bodies (an httpx2 mock transport under the real SDK clients): what the
fake provider cannot send, such as error events in the middle of a stream, keep-alive comments, CRLF line
endings, bodies that are not JSON, and a stream that never ends (to see cancellation close it)."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from types import ModuleType

import anthropic
import httpx2
import openai
import pytest

from shared.errors import UpstreamRejected, UpstreamUnavailable
from shared.models import ChatRequest, Delta, FinishReason, Message, Usage
from shared.routing_table import Target
from tests.worker.providers.conftest import collect
from worker.providers import anthropic as anthropic_adapter
from worker.providers import openai as openai_adapter
from worker.providers.anthropic import AnthropicProvider
from worker.providers.openai import OpenAIProvider

REQUEST = ChatRequest(model="public-model", messages=[Message(role="user", content="hi")])
OPENAI_TARGET = Target(provider="openai", model="gpt-test", base_url="http://upstream.test/v1")
ANTHROPIC_TARGET = Target(provider="anthropic", model="claude-test", base_url="http://upstream.test")

MakeOpenAI = Callable[..., OpenAIProvider]  # (body, status=200) -> an adapter answered by that body
MakeAnthropic = Callable[..., AnthropicProvider]


class ScriptedBody(httpx2.AsyncByteStream):
    """A response body sent in the given chunks; with `hang`, it then stalls until closed."""

    def __init__(self, chunks: list[bytes], hang: bool = False) -> None:
        self.chunks = chunks
        self.hang = hang
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.hang:
            await asyncio.Event().wait()

    async def aclose(self) -> None:
        self.closed = True


def script(monkeypatch: pytest.MonkeyPatch, module: ModuleType, body: ScriptedBody, status: int = 200) -> None:
    """Make `module`'s adapters talk to a transport that answers every request with `body`."""
    content_type = "text/event-stream" if body.hang or b"data:" in b"".join(body.chunks) else "application/json"

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": content_type}, stream=body)

    sdk: Callable[..., object] = openai.AsyncOpenAI if module is openai_adapter else anthropic.AsyncAnthropic

    def make_client(base_url: str | None, api_key: str, timeout_s: float) -> object:
        http_client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
        return sdk(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0, http_client=http_client)

    monkeypatch.setattr(module, "_make_client", make_client)


@pytest.fixture
async def openai_provider(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MakeOpenAI]:
    adapters: list[OpenAIProvider] = []

    def build(body: ScriptedBody, status: int = 200) -> OpenAIProvider:
        script(monkeypatch, openai_adapter, body, status)
        adapters.append(OpenAIProvider(api_key="sk", base_url=None, timeout_s=5, api_key_lookup=lambda _: None))
        return adapters[-1]

    yield build
    for adapter in adapters:
        await adapter.aclose()


@pytest.fixture
async def anthropic_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[MakeAnthropic]:
    adapters: list[AnthropicProvider] = []

    def build(body: ScriptedBody, status: int = 200) -> AnthropicProvider:
        script(monkeypatch, anthropic_adapter, body, status)
        adapters.append(AnthropicProvider(api_key="sk", base_url=None, timeout_s=5, api_key_lookup=lambda _: None))
        return adapters[-1]

    yield build
    for adapter in adapters:
        await adapter.aclose()


def data(payload: object, newline: str = "\n") -> bytes:
    return f"data: {json.dumps(payload)}{newline}{newline}".encode()


def named(event: str, payload: object, newline: str = "\n") -> bytes:
    return f"event: {event}{newline}data: {json.dumps(payload)}{newline}{newline}".encode()


def openai_chunk(text: str | None = None, finish: str | None = None, usage: object = None) -> dict[str, object]:
    choices = [] if text is None and finish is None else [
        {"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}
    ]
    return {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-test", "choices": choices, "usage": usage}


OPENAI_USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


async def first_delta_then_cancel(stream: AsyncIterator[Delta]) -> Delta:
    """Read one delta in a task, then cancel the task while it waits for the next."""
    first: asyncio.Future[Delta] = asyncio.get_running_loop().create_future()

    async def consume() -> None:
        async for delta in stream:
            if not first.done():
                first.set_result(delta)

    task = asyncio.create_task(consume())
    delta = await asyncio.wait_for(first, 5)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return delta


# --- OpenAI -----------------------------------------------------------------------------------------


async def test_openai_stream_with_comments_and_crlf(openai_provider: MakeOpenAI) -> None:
    chunks = [
        b": keep-alive\r\n\r\n",
        data(openai_chunk("Hel"), "\r\n")[:9],  # an event split mid-line
        data(openai_chunk("Hel"), "\r\n")[9:] + data(openai_chunk("lo"), "\r\n"),
        data(openai_chunk(finish="stop"), "\r\n") + data(openai_chunk(usage=OPENAI_USAGE), "\r\n"),
        b"data: [DONE]\r\n\r\n",
    ]
    deltas = await collect(openai_provider(ScriptedBody(chunks)).stream(REQUEST, OPENAI_TARGET))
    assert deltas == [
        Delta(text="Hel"),
        Delta(text="lo"),
        Delta(finish_reason=FinishReason.STOP, usage=Usage(prompt_tokens=3, completion_tokens=2)),
    ]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ({"message": "The server had an error processing your request.", "type": "server_error"},
         "openai stream failed: The server had an error processing your request."),
        ({"type": "server_error"}, "openai stream failed: server_error"),
        ("boom", "openai stream failed: An error occurred during streaming"),
    ],
)
async def test_openai_error_object_mid_stream_raises_after_the_delivered_deltas(
    openai_provider: MakeOpenAI, error: object, message: str
) -> None:
    body = ScriptedBody([data(openai_chunk("Hi")), data({"error": error}), data(openai_chunk(finish="stop"))])
    deltas: list[Delta] = []
    with pytest.raises(UpstreamUnavailable) as caught:
        async for delta in openai_provider(body).stream(REQUEST, OPENAI_TARGET):
            deltas.append(delta)
    assert deltas == [Delta(text="Hi")]
    assert caught.value.message == message
    assert body.closed


async def test_openai_event_that_is_not_json_is_unavailable(
    openai_provider: MakeOpenAI,
) -> None:
    with pytest.raises(UpstreamUnavailable, match="openai sent a stream event that is not a JSON object"):
        await collect(openai_provider(ScriptedBody([b"data: <html>\n\n"])).stream(REQUEST, OPENAI_TARGET))


async def test_openai_body_that_is_not_json_is_unavailable(
    openai_provider: MakeOpenAI,
) -> None:
    with pytest.raises(UpstreamUnavailable, match="openai sent a response that is not a JSON object: '<html>bad"):
        await openai_provider(ScriptedBody([b"<html>bad gateway</html>"])).complete(REQUEST, OPENAI_TARGET)


async def test_openai_complete_reads_the_raw_body(openai_provider: MakeOpenAI) -> None:
    body = {
        "id": "c9", "object": "chat.completion", "created": 7, "model": "gpt-test", "usage": OPENAI_USAGE,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "length"}],
    }
    completion = await openai_provider(ScriptedBody([json.dumps(body).encode()])).complete(REQUEST, OPENAI_TARGET)
    assert (completion.id, completion.content, completion.finish_reason) == ("c9", "ok", FinishReason.LENGTH)
    assert completion.usage == Usage(prompt_tokens=3, completion_tokens=2)


async def test_openai_error_status_still_goes_through_the_sdk(
    openai_provider: MakeOpenAI,
) -> None:
    error = json.dumps({"error": {"message": "Unknown model.", "type": "invalid_request_error"}}).encode()
    with pytest.raises(UpstreamRejected) as caught:
        await collect(openai_provider(ScriptedBody([error]), 404).stream(REQUEST, OPENAI_TARGET))
    assert (caught.value.status, caught.value.message) == (404, "Unknown model.")
    assert isinstance(caught.value.__cause__, openai.NotFoundError)


async def test_openai_cancelled_stream_closes_the_response(
    openai_provider: MakeOpenAI,
) -> None:
    body = ScriptedBody([data(openai_chunk("Hi"))], hang=True)
    assert await first_delta_then_cancel(openai_provider(body).stream(REQUEST, OPENAI_TARGET)) == Delta(text="Hi")
    assert body.closed


async def test_openai_stream_closed_by_the_consumer_closes_the_response(openai_provider: MakeOpenAI) -> None:
    body = ScriptedBody([data(openai_chunk("Hi"))], hang=True)
    stream = openai_provider(body).stream(REQUEST, OPENAI_TARGET)
    assert await anext(stream) == Delta(text="Hi")
    await stream.aclose()  # type: ignore[attr-defined]
    assert body.closed


async def test_openai_body_held_open_after_done_still_finishes(
    openai_provider: MakeOpenAI,
) -> None:
    chunks = [data(openai_chunk("Hi", finish="stop")), data(openai_chunk(usage=OPENAI_USAGE)), b"data: [DONE]\n\n"]
    body = ScriptedBody(chunks, hang=True)
    deltas = await asyncio.wait_for(collect(openai_provider(body).stream(REQUEST, OPENAI_TARGET)), 2)
    assert deltas[-1].finish_reason == FinishReason.STOP
    assert body.closed


# --- Anthropic --------------------------------------------------------------------------------------


def anthropic_events(newline: str = "\n") -> list[bytes]:
    start = {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3, "output_tokens": 1}}}
    text = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}
    stop = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}
    return [
        named("message_start", start, newline),
        named("ping", {"type": "ping"}, newline),
        f": keep-alive{newline}{newline}".encode(),
        named("content_block_delta", text, newline),
        named("message_delta", stop, newline),
        named("message_stop", {"type": "message_stop"}, newline),
    ]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
async def test_anthropic_stream_with_pings_comments_and_crlf(
    anthropic_provider: MakeAnthropic, newline: str
) -> None:
    body = ScriptedBody(anthropic_events(newline))
    deltas = await collect(anthropic_provider(body).stream(REQUEST, ANTHROPIC_TARGET))
    assert deltas == [
        Delta(text="Hi"),
        Delta(finish_reason=FinishReason.STOP, usage=Usage(prompt_tokens=3, completion_tokens=2)),
    ]
    assert body.closed


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (named("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
         "anthropic stream error: overloaded_error: Overloaded"),
        (named("error", {"type": "error", "error": {"type": "api_error"}}), "anthropic stream error: api_error"),
        (b"event: error\ndata: upstream exploded\n\n", "anthropic stream error: upstream exploded"),
        (b"event: error\n\n", "anthropic stream error: error event without a payload"),
    ],
)
async def test_anthropic_error_event_mid_stream_raises_after_the_delivered_deltas(
    anthropic_provider: MakeAnthropic, event: bytes, message: str
) -> None:
    events = anthropic_events()
    body = ScriptedBody([*events[:4], event, *events[4:]])  # after the text delta
    deltas: list[Delta] = []
    with pytest.raises(UpstreamUnavailable) as caught:
        async for delta in anthropic_provider(body).stream(REQUEST, ANTHROPIC_TARGET):
            deltas.append(delta)
    assert deltas == [Delta(text="Hi")]
    assert caught.value.message == message
    assert body.closed


async def test_anthropic_body_that_is_not_json_is_unavailable(
    anthropic_provider: MakeAnthropic,
) -> None:
    with pytest.raises(UpstreamUnavailable, match="anthropic sent a response that is not a JSON object"):
        await anthropic_provider(ScriptedBody([b"[1, 2]"])).complete(REQUEST, ANTHROPIC_TARGET)


async def test_anthropic_cancelled_stream_closes_the_response(
    anthropic_provider: MakeAnthropic,
) -> None:
    body = ScriptedBody(anthropic_events()[:4], hang=True)
    stream = anthropic_provider(body).stream(REQUEST, ANTHROPIC_TARGET)
    assert await first_delta_then_cancel(stream) == Delta(text="Hi")
    assert body.closed


async def test_anthropic_stream_closed_by_the_consumer_closes_the_response(anthropic_provider: MakeAnthropic) -> None:
    body = ScriptedBody(anthropic_events()[:4], hang=True)
    stream = anthropic_provider(body).stream(REQUEST, ANTHROPIC_TARGET)
    assert await anext(stream) == Delta(text="Hi")
    await stream.aclose()  # type: ignore[attr-defined]
    assert body.closed
