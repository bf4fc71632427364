"""`worker.providers.sdk_post`: every adapter call goes through the SDK client's own `post` with a body encoded
once. These tests pin what that relies on in the pinned SDKs, so an upgrade that changes it fails here:
the request on the wire is the one the SDK's resource method sends for the same arguments (method, URL, JSON
body, every header but the SDK's private raw-response marker), the answer is the bare HTTP response, failures
are the SDK's own exception classes, and a stream is left unread until the caller closes it."""

import json
from collections.abc import Awaitable, Callable
from types import ModuleType

import anthropic
import httpx2
import openai
import pytest

from shared.endpoint_requests import EmbeddingRequest, TextCompletionRequest
from shared.models import ChatRequest, Message, WireFormat
from shared.routing_table import Target
from shared.wire.anthropic import render_request as render_anthropic
from shared.wire.anthropic_count import render_count_request
from shared.wire.openai import render_request as render_openai
from shared.wire.openai_embeddings import render_embedding_request
from shared.wire.openai_text_completions import render_text_completion_request
from tests.worker.providers.conftest import collect
from tests.worker.providers.test_raw_bodies import ScriptedBody
from worker.providers import anthropic as anthropic_adapter
from worker.providers import openai as openai_adapter
from worker.providers.anthropic import AnthropicProvider
from worker.providers.openai import OpenAIProvider
from worker.providers.sdk_post import encode_body, post_json, stream_json

OPENAI_TARGET = Target(provider="openai", model="gpt-test", base_url="http://upstream.test/v1")
ANTHROPIC_TARGET = Target(provider="anthropic", model="claude-test", base_url="http://upstream.test")
REQUEST = ChatRequest(model="public", messages=[Message(role="user", content="héllo")], max_tokens=64,
                      temperature=0.5, stop=["END"], extra={"vendor_knob": {"a": 1}})
ANTHROPIC_REQUEST = REQUEST.model_copy(update={"source": WireFormat.ANTHROPIC, "extra": {},
                                               "betas": ["beta-one", "beta-two"]})
PRIVATE_HEADERS = {"x-stainless-raw-response"}
"""Set by `with_raw_response` / `with_streaming_response` for the SDK's own response handling."""

OPENAI_CHAT = {"id": "c", "object": "chat.completion", "created": 1, "model": "gpt-test",
               "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "hi"}}],
               "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
OPENAI_SSE = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-test","choices":'
              b'[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
              b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-test","choices":[],'
              b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\ndata: [DONE]\n\n')
EMBEDDINGS = {"object": "list", "model": "gpt-test", "usage": {"prompt_tokens": 2, "total_tokens": 2},
              "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}]}
TEXT = {"id": "t", "object": "text_completion", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "text": "hi", "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}}
MESSAGE = {"id": "m", "type": "message", "role": "assistant", "model": "claude-test",
           "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 3, "output_tokens": 1}}
ANTHROPIC_SSE = b"".join(
    f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in [
        ("message_start", {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "hi"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 1}}),
        ("message_stop", {"type": "message_stop"}),
    ])


class Upstream:
    """A mock transport that records every request and answers with one body."""

    def __init__(self, body: bytes, *, status: int = 200, content_type: str = "application/json") -> None:
        self.body, self.status, self.content_type = body, status, content_type
        self.requests: list[httpx2.Request] = []

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return httpx2.Response(self.status, headers={"content-type": self.content_type}, content=self.body)

    def client(self, sdk: ModuleType, base_url: str,
               timeout_s: float = 30.0) -> openai.AsyncOpenAI | anthropic.AsyncAnthropic:
        http_client = httpx2.AsyncClient(transport=httpx2.MockTransport(self.handler))
        factory: Callable[..., openai.AsyncOpenAI | anthropic.AsyncAnthropic] = (
            openai.AsyncOpenAI if sdk is openai else anthropic.AsyncAnthropic)
        return factory(api_key="sk-test", base_url=base_url, timeout=timeout_s, max_retries=0,
                       http_client=http_client)

    def install(self, monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> None:
        sdk = openai if module is openai_adapter else anthropic
        monkeypatch.setattr(module, "_make_client",
                            lambda base_url, _key, timeout_s: self.client(sdk, base_url, timeout_s))


def wire(request: httpx2.Request) -> tuple[str, str, object, dict[str, str]]:
    headers = {name: value for name, value in request.headers.items() if name not in PRIVATE_HEADERS}
    return request.method, str(request.url), json.loads(request.content), headers


SDKCall = Callable[[openai.AsyncOpenAI | anthropic.AsyncAnthropic], Awaitable[object]]
AdapterCall = Callable[[OpenAIProvider | AnthropicProvider], Awaitable[object]]

CASES: dict[str, tuple[ModuleType, bytes, str, AdapterCall, SDKCall]] = {
    "openai chat": (
        openai_adapter, json.dumps(OPENAI_CHAT).encode(), "application/json",
        lambda p: p.complete(REQUEST, OPENAI_TARGET),
        lambda c: c.chat.completions.with_raw_response.create(**render_openai(REQUEST, "gpt-test"))),
    "openai chat stream": (
        openai_adapter, OPENAI_SSE, "text/event-stream",
        lambda p: collect(p.stream(REQUEST.model_copy(update={"stream": True}), OPENAI_TARGET)),
        lambda c: c.chat.completions.with_raw_response.create(
            **render_openai(REQUEST.model_copy(update={"stream": True}), "gpt-test"))),
    "openai embeddings": (
        openai_adapter, json.dumps(EMBEDDINGS).encode(), "application/json",
        lambda p: p.embed(EmbeddingRequest(model="e", input=["a b"], dimensions=2), OPENAI_TARGET),
        lambda c: c.embeddings.with_raw_response.create(
            **render_embedding_request(EmbeddingRequest(model="e", input=["a b"], dimensions=2), "gpt-test"))),
    "openai text completion": (
        openai_adapter, json.dumps(TEXT).encode(), "application/json",
        lambda p: p.complete_text(TextCompletionRequest(model="t", prompt="a", max_tokens=5), OPENAI_TARGET),
        lambda c: c.completions.with_raw_response.create(
            **render_text_completion_request(TextCompletionRequest(model="t", prompt="a", max_tokens=5),
                                             "gpt-test", stream=False))),
    "anthropic messages": (
        anthropic_adapter, json.dumps(MESSAGE).encode(), "application/json",
        lambda p: p.complete(ANTHROPIC_REQUEST, ANTHROPIC_TARGET),
        lambda c: c.messages.with_raw_response.create(
            **render_anthropic(ANTHROPIC_REQUEST, "claude-test"))),
    "anthropic messages stream": (
        anthropic_adapter, ANTHROPIC_SSE, "text/event-stream",
        lambda p: collect(p.stream(ANTHROPIC_REQUEST.model_copy(update={"stream": True}), ANTHROPIC_TARGET)),
        lambda c: c.messages.with_raw_response.create(
            **render_anthropic(ANTHROPIC_REQUEST.model_copy(update={"stream": True}), "claude-test"))),
    "anthropic count_tokens": (
        anthropic_adapter, b'{"input_tokens": 7}', "application/json",
        lambda p: p.count_tokens(ANTHROPIC_REQUEST, ANTHROPIC_TARGET, drop=frozenset()),
        lambda c: c.messages.with_raw_response.count_tokens(
            **render_count_request(ANTHROPIC_REQUEST, "claude-test"))),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_adapter_sends_what_the_sdk_resource_method_sends(
    monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    module, body, content_type, adapter_call, sdk_call = CASES[case]
    ours, reference = Upstream(body, content_type=content_type), Upstream(body, content_type=content_type)
    ours.install(monkeypatch, module)
    target = OPENAI_TARGET if module is openai_adapter else ANTHROPIC_TARGET
    adapter = (OpenAIProvider if module is openai_adapter else AnthropicProvider)(
        api_key=None, base_url=None, timeout_s=30.0, api_key_lookup=lambda _: None)
    await adapter_call(adapter)
    await sdk_call(reference.client(openai if module is openai_adapter else anthropic, str(target.base_url)))
    await adapter.aclose()

    assert len(ours.requests) == len(reference.requests) == 1
    assert wire(ours.requests[0]) == wire(reference.requests[0])


async def test_headers_carry_auth_version_betas_and_the_sdk_user_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    upstream = Upstream(json.dumps(MESSAGE).encode())
    upstream.install(monkeypatch, anthropic_adapter)
    adapter = AnthropicProvider(api_key=None, base_url=None, timeout_s=12.5, api_key_lookup=lambda _: None)
    await adapter.complete(ANTHROPIC_REQUEST, ANTHROPIC_TARGET)
    await adapter.aclose()
    headers = upstream.requests[0].headers
    assert headers["authorization"] == "Bearer sk-test"  # how anthropic 2.17 sends an API key
    assert headers["anthropic-version"]
    assert headers["anthropic-beta"] == "beta-one,beta-two"
    assert headers["user-agent"].startswith("AsyncAnthropic/Python")
    assert headers["x-stainless-read-timeout"] == "12.5"
    assert headers["content-type"] == "application/json"


async def test_the_body_is_encoded_once_as_the_sdk_encodes_json() -> None:
    content, headers = encode_body({"model": "m", "text": "héllo", "n": 1, "extra_body": {"n": 2, "x": [1.5]},
                                    "extra_headers": {"anthropic-beta": "b"}})
    assert content == '{"model":"m","text":"héllo","n":2,"x":[1.5]}'.encode()
    assert headers == {"anthropic-beta": "b"}


def test_a_value_json_cannot_carry_is_refused_before_sending() -> None:
    with pytest.raises(ValueError):
        encode_body({"temperature": float("nan")})
    with pytest.raises(TypeError, match="extra_query"):
        encode_body({"model": "m", "extra_query": {"a": "b"}})


@pytest.mark.parametrize(("status", "error"), [(429, openai.RateLimitError), (400, openai.BadRequestError),
                                               (503, openai.InternalServerError)])
async def test_an_error_status_is_the_sdks_status_error_after_one_attempt(
    status: int, error: type[openai.APIStatusError]
) -> None:
    upstream = Upstream(b'{"error": {"message": "nope"}}', status=status)
    client = upstream.client(openai, "http://upstream.test/v1")
    with pytest.raises(error) as caught:
        await post_json(client.post, "/chat/completions", {"model": "m"})
    assert caught.value.status_code == status
    assert caught.value.body == {"message": "nope"}
    assert len(upstream.requests) == 1  # max_retries=0: the gateway owns retries


async def test_a_transport_timeout_and_a_refused_connection_are_the_sdks_errors() -> None:
    def timing_out(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("slow", request=request)

    def refusing(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    for handler, error in ((timing_out, anthropic.APITimeoutError), (refusing, anthropic.APIConnectionError)):
        http_client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
        client = anthropic.AsyncAnthropic(api_key="k", base_url="http://upstream.test", max_retries=0,
                                          http_client=http_client)
        with pytest.raises(error):
            await post_json(client.post, "/v1/messages", {"model": "m"})


def streaming_client(body: ScriptedBody) -> anthropic.AsyncAnthropic:
    def handler(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    http_client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return anthropic.AsyncAnthropic(api_key="k", base_url="http://upstream.test", max_retries=0,
                                    http_client=http_client)


async def test_a_stream_is_left_unread_until_the_block_ends_and_then_closed() -> None:
    body = ScriptedBody([b"event: ping\n", b"data: {}\n\n"], hang=True)
    async with stream_json(streaming_client(body).post, "/v1/messages", {"model": "m"}) as response:
        chunks = response.aiter_bytes()
        assert await anext(chunks) == b"event: ping\n"
        assert not body.closed
    assert body.closed


async def test_a_stream_is_closed_when_the_block_fails() -> None:
    body = ScriptedBody([b"data: {}\n\n"], hang=True)
    with pytest.raises(RuntimeError, match="consumer failed"):
        async with stream_json(streaming_client(body).post, "/v1/messages", {"model": "m"}):
            raise RuntimeError("consumer failed")
    assert body.closed


async def test_an_sdk_post_that_does_not_return_the_http_response_fails_loudly() -> None:
    async def parsing_post(*_args: object, **_kwargs: object) -> object:
        return {"parsed": True}

    with pytest.raises(TypeError, match="not the HTTP response"):
        await post_json(parsing_post, "/chat/completions", {"model": "m"})
