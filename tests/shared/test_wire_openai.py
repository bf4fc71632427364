"""shared.wire.openai: inbound parsing and rendering, outbound request/response translation, checked
against the official SDK's own types and parser."""

import json
from collections.abc import Callable

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.shared import ErrorObject

from shared.errors import (
    AllTargetsFailed,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    RateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from shared.models import ChatRequest, Completion, Delta, FinishReason, Message, Usage
from shared.wire import anthropic as anthropic_wire
from shared.wire import openai as wire

BASE = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}


def body(**changes: object) -> dict[str, object]:
    return {**BASE, **changes}


def completion(**changes: object) -> Completion:
    fields: dict[str, object] = {
        "id": "chatcmpl-1",
        "model": "gpt-4o",
        "provider": "anthropic",
        "content": "Hello!",
        "finish_reason": FinishReason.STOP,
        "usage": Usage(prompt_tokens=7, completion_tokens=3),
        "created": 1700000000,
    }
    return Completion.model_validate({**fields, **changes})


def sse(events: list[tuple[str | None, str]]) -> bytes:
    lines = []
    for name, data in events:
        lines.append((f"event: {name}\n" if name else "") + f"data: {data}\n\n")
    return "".join(lines).encode()


def sdk_client(handler: Callable[[httpx2.Request], httpx2.Response]) -> openai.AsyncOpenAI:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return openai.AsyncOpenAI(api_key="sk-test", base_url="http://upstream/v1", http_client=http, max_retries=0)


# --- parse_request ----------------------------------------------------------------------------------


def test_parse_request_minimal_body() -> None:
    request = wire.parse_request(BASE)
    assert request == ChatRequest(model="gpt-4o", messages=[Message(role="user", content="Hi")])


def test_parse_request_reads_every_supported_field() -> None:
    request = wire.parse_request(
        body(
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": "ok", "name": "bot"},
                {"role": "user", "content": "again"},
            ],
            max_tokens=50,
            temperature=1.5,
            top_p=0.9,
            stop="END",
            stream=True,
            stream_options={"include_usage": True},
            user="u-1",
            n=1,
            response_format={"type": "text"},
            seed=3,
        )
    )
    assert request.system == "Be brief.\n\nBe kind."
    assert [(m.role, m.content) for m in request.messages] == [
        ("user", "a\nb"),
        ("assistant", "ok"),
        ("user", "again"),
    ]
    assert (request.max_tokens, request.temperature, request.top_p) == (50, 1.5, 0.9)
    assert request.stop == ["END"]
    assert request.stream is True
    assert request.include_usage is True
    assert request.user == "u-1"


def test_parse_request_prefers_max_completion_tokens() -> None:
    assert wire.parse_request(body(max_tokens=10, max_completion_tokens=20)).max_tokens == 20
    assert wire.parse_request(body(max_completion_tokens=30)).max_tokens == 30


def test_parse_request_accepts_stop_list_and_nulls() -> None:
    request = wire.parse_request(body(stop=["a", "b", "c", "d"], temperature=None, user=None, stream=None))
    assert request.stop == ["a", "b", "c", "d"]
    assert (request.temperature, request.user, request.stream) == (None, None, False)


def test_parse_request_empty_tools_list_is_absent() -> None:
    assert wire.parse_request(body(tools=[])).model == "gpt-4o"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (["not", "an", "object"], "request body"),
        ("text", "request body"),
        ({"messages": BASE["messages"]}, "'model'"),
        (body(model=""), "'model'"),
        (body(model=5), "'model'"),
        ({"model": "gpt-4o"}, "'messages'"),
        (body(messages=[]), "'messages'"),
        (body(messages="Hi"), "'messages'"),
        (body(messages=["Hi"]), "'messages[0]'"),
        (body(messages=[{"content": "Hi"}]), "'messages[0].role'"),
        (body(messages=[{"role": "tool", "content": "Hi"}]), "'messages[0].role'"),
        (body(messages=[{"role": "user"}]), "'messages[0].content'"),
        (body(messages=[{"role": "user", "content": None}]), "'messages[0].content'"),
        (body(messages=[{"role": "user", "content": 5}]), "'messages[0].content'"),
        (body(messages=[{"role": "user", "content": []}]), "'messages[0].content'"),
        (body(messages=[{"role": "user", "content": ["x"]}]), "'messages[0].content[0]'"),
        (body(messages=[{"role": "user", "content": [{"type": "text"}]}]), "'messages[0].content[0].text'"),
        (
            body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
            "'messages[0].content[0].type'",
        ),
        (
            body(messages=[{"role": "assistant", "content": "x", "tool_calls": [{"id": "1"}]}]),
            "'messages[0].tool_calls' is not supported",
        ),
        (body(messages=[{"role": "system", "content": "only a system prompt"}]), "'messages'"),
        (body(max_tokens=0), "'max_tokens'"),
        (body(max_tokens=-5), "'max_tokens'"),
        (body(max_tokens="10"), "'max_tokens'"),
        (body(max_tokens=1.5), "'max_tokens'"),
        (body(max_tokens=True), "'max_tokens'"),
        (body(max_completion_tokens=0), "'max_completion_tokens'"),
        (body(temperature=2.5), "'temperature'"),
        (body(temperature=-0.1), "'temperature'"),
        (body(temperature="hot"), "'temperature'"),
        (body(temperature=False), "'temperature'"),
        (body(top_p=1.5), "'top_p'"),
        (body(stop=["a", "b", "c", "d", "e"]), "'stop'"),
        (body(stop=5), "'stop'"),
        (body(stop=[""]), "'stop'"),
        (body(stop=["a", 1]), "'stop'"),
        (body(stream="yes"), "'stream'"),
        (body(stream_options="x"), "'stream_options'"),
        (body(stream_options={"include_usage": "yes"}), "'stream_options.include_usage'"),
        (body(user=5), "'user'"),
        (body(n=2), "'n'"),
        (body(n="1"), "'n'"),
        (body(tools=[{"type": "function", "function": {"name": "f"}}]), "'tools'"),
        (body(functions=[{"name": "f"}]), "'functions'"),
    ],
)
def test_parse_request_rejects_invalid_field(payload: object, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        wire.parse_request(payload)  # type: ignore[arg-type]
    assert field in caught.value.message
    assert caught.value.status == 400


def test_parse_request_names_unsupported_features() -> None:
    for payload in (body(n=3), body(tools=[{"type": "function"}])):
        with pytest.raises(InvalidRequest, match="not supported"):
            wire.parse_request(payload)
    image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
    with pytest.raises(InvalidRequest, match="'image_url' is not supported"):
        wire.parse_request(body(messages=[image]))


# --- render_completion / render_error ---------------------------------------------------------------


def test_render_completion_is_a_chat_completion() -> None:
    rendered = wire.render_completion(completion())
    parsed = ChatCompletion.model_validate(rendered)
    assert parsed.id == "chatcmpl-1"
    assert parsed.object == "chat.completion"
    assert parsed.created == 1700000000
    assert parsed.choices[0].message.role == "assistant"
    assert parsed.choices[0].message.content == "Hello!"
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage is not None
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens, parsed.usage.total_tokens) == (
        7,
        3,
        10,
    )
    assert rendered["provider"] == "anthropic"


@pytest.mark.parametrize("reason", list(FinishReason))
def test_render_completion_finish_reason(reason: FinishReason) -> None:
    parsed = ChatCompletion.model_validate(wire.render_completion(completion(finish_reason=reason)))
    assert parsed.choices[0].finish_reason == reason.value


def test_render_completion_fills_missing_created() -> None:
    assert wire.render_completion(completion(created=0))["created"] != 0


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequest("'model' is required"),
        ModelNotFound("no such model"),
        RateLimited("slow down", retry_after_s=2),
        UpstreamRejected("bad upstream request", status=400),
        UpstreamTimeout("too slow"),
        AllTargetsFailed("nothing worked"),
    ],
)
def test_render_error_shape(error: GatewayError) -> None:
    rendered = wire.render_error(error)
    assert rendered == {"error": {"message": error.message, "type": error.type, "code": error.code, "param": None}}
    ErrorObject.model_validate(rendered["error"])


# --- StreamRenderer ---------------------------------------------------------------------------------


def chunks(events: list[tuple[str | None, str]]) -> list[dict[str, object]]:
    assert all(name is None for name, _ in events)
    return [json.loads(data) for _, data in events if data != "[DONE]"]


def test_stream_renderer_sequence_without_usage() -> None:
    renderer = wire.StreamRenderer("chatcmpl-9", "gpt-4o", 1700000000, include_usage=False)
    events = renderer.start() + renderer.delta("Hel") + renderer.delta("lo")
    events += renderer.finish(FinishReason.LENGTH, Usage(prompt_tokens=5, completion_tokens=2), "openai")
    assert events[-1] == (None, "[DONE]")
    parsed = chunks(events)
    assert [c["choices"][0]["delta"] for c in parsed] == [  # type: ignore[index]
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in parsed] == [None, None, None, "length"]  # type: ignore[index]
    assert all("usage" not in c for c in parsed)
    assert parsed[-1]["provider"] == "openai"
    for chunk in parsed:
        model = ChatCompletionChunk.model_validate(chunk)
        assert (model.id, model.model, model.created) == ("chatcmpl-9", "gpt-4o", 1700000000)


def test_stream_renderer_sequence_with_usage() -> None:
    renderer = wire.StreamRenderer("chatcmpl-9", "gpt-4o", 1700000000, include_usage=True)
    events = renderer.start() + renderer.delta("Hi")
    events += renderer.finish(FinishReason.STOP, Usage(prompt_tokens=5, completion_tokens=2), "anthropic")
    assert len(events) == 5
    assert events[-1] == (None, "[DONE]")
    parsed = chunks(events)
    assert [c["usage"] for c in parsed[:3]] == [None, None, None]
    assert parsed[3]["choices"] == []
    assert parsed[3]["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    usage = ChatCompletionChunk.model_validate(parsed[3]).usage
    assert usage is not None and usage.total_tokens == 7


def test_stream_renderer_data_is_compact_json() -> None:
    renderer = wire.StreamRenderer("c", "m", 1, include_usage=False)
    _, data = renderer.delta("x")[1]
    assert ": " not in data and ", " not in data


def test_stream_renderer_starts_implicitly_and_skips_empty_text() -> None:
    renderer = wire.StreamRenderer("c", "m", 1, include_usage=False)
    first = renderer.delta("a")
    assert len(first) == 2 and json.loads(first[0][1])["choices"][0]["delta"]["role"] == "assistant"
    assert renderer.delta("") == []


def test_stream_renderer_error_event() -> None:
    renderer = wire.StreamRenderer("c", "m", 1, include_usage=False)
    events = renderer.error(UpstreamUnavailable("openai is down"))
    assert events == [
        (None, json.dumps(wire.render_error(UpstreamUnavailable("openai is down")), separators=(",", ":")))
    ]


async def test_stream_renderer_output_is_read_by_the_openai_sdk() -> None:
    renderer = wire.StreamRenderer("chatcmpl-9", "gpt-4o", 1700000000, include_usage=True)
    events = renderer.start() + renderer.delta("Hello") + renderer.delta(" world")
    events += renderer.finish(FinishReason.STOP, Usage(prompt_tokens=4, completion_tokens=2), "anthropic")
    payload = sse(events)
    client = sdk_client(lambda _: httpx2.Response(200, content=payload, headers={"content-type": "text/event-stream"}))
    try:
        stream = await client.chat.completions.create(model="gpt-4o", messages=[], stream=True)
        received = [chunk async for chunk in stream]
    finally:
        await client.close()
    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert text == "Hello world"
    assert received[-1].usage is not None and received[-1].usage.total_tokens == 6


async def test_stream_renderer_error_is_raised_by_the_openai_sdk() -> None:
    renderer = wire.StreamRenderer("chatcmpl-9", "gpt-4o", 1, include_usage=False)
    payload = sse(renderer.start() + renderer.delta("Hel") + renderer.error(UpstreamUnavailable("boom")))
    client = sdk_client(lambda _: httpx2.Response(200, content=payload, headers={"content-type": "text/event-stream"}))
    try:
        stream = await client.chat.completions.create(model="gpt-4o", messages=[], stream=True)
        with pytest.raises(openai.APIError, match="boom"):
            async for _ in stream:
                pass
    finally:
        await client.close()


# --- outbound ---------------------------------------------------------------------------------------


def test_render_request_full() -> None:
    request = ChatRequest(
        model="public",
        system="Be brief.",
        messages=[Message(role="user", content="Hi"), Message(role="assistant", content="Yo")],
        max_tokens=10,
        temperature=0.5,
        top_p=0.8,
        stop=["x"],
        user="u",
    )
    assert wire.render_request(request, "gpt-4o-mini") == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Yo"},
        ],
        "max_tokens": 10,
        "temperature": 0.5,
        "top_p": 0.8,
        "stop": ["x"],
        "user": "u",
    }


def test_render_request_omits_unset_fields_and_adds_stream_options() -> None:
    request = ChatRequest(model="public", messages=[Message(role="user", content="Hi")], stream=True)
    assert wire.render_request(request, "gpt-4o") == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize("model", ["o1", "o3-mini", "o4-mini-2025-04-16", "gpt-5"])
def test_render_request_reasoning_models_get_max_completion_tokens(model: str) -> None:
    request = ChatRequest(model="public", messages=[Message(role="user", content="Hi")], max_tokens=7)
    rendered = wire.render_request(request, model)
    assert rendered["max_completion_tokens"] == 7
    assert "max_tokens" not in rendered


def test_render_request_round_trips_a_client_body() -> None:
    client_body = {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}],
        "max_tokens": 5,
        "temperature": 0.2,
        "stop": ["a", "b"],
    }
    assert wire.render_request(wire.parse_request(client_body), "gpt-4o") == client_body


async def test_render_request_is_accepted_by_the_openai_sdk() -> None:
    sent: list[dict[str, object]] = []
    answer = wire.render_completion(completion(provider="openai"))

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        return httpx2.Response(200, json=answer)

    request = ChatRequest(model="p", system="S", messages=[Message(role="user", content="Hi")], max_tokens=9)
    client = sdk_client(handler)
    try:
        response = await client.chat.completions.create(**wire.render_request(request, "gpt-4o"))  # type: ignore[call-overload]
    finally:
        await client.close()
    assert sent[0]["messages"] == [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]
    assert sent[0]["max_tokens"] == 9
    assert wire.parse_completion(response.model_dump(), "openai").content == "Hello!"


def test_anthropic_request_rendered_for_openai() -> None:
    request = anthropic_wire.parse_request(
        {
            "model": "claude-sonnet-4-5",
            "system": [{"type": "text", "text": "Be brief."}],
            "max_tokens": 100,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "stop_sequences": ["END"],
            "temperature": 0.7,
            "metadata": {"user_id": "u-7"},
            "stream": True,
        }
    )
    assert wire.render_request(request, "gpt-4o") == {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "max_tokens": 100,
        "temperature": 0.7,
        "stop": ["END"],
        "user": "u-7",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_parse_completion_reads_sdk_dump() -> None:
    data = ChatCompletion.model_validate(
        {
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "created": 1700000001,
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi there"},
                    "finish_reason": "length",
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15},
        }
    ).model_dump()
    assert wire.parse_completion(data, "openai") == Completion(
        id="chatcmpl-x",
        model="gpt-4o-2024-08-06",
        provider="openai",
        content="Hi there",
        finish_reason=FinishReason.LENGTH,
        usage=Usage(prompt_tokens=11, completion_tokens=4),
        created=1700000001,
    )


def test_parse_completion_tolerates_null_content_and_usage() -> None:
    data = {
        "id": "x",
        "model": "m",
        "created": 1,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "tool_calls"}],
        "usage": None,
    }
    parsed = wire.parse_completion(data, "openai")
    assert (parsed.content, parsed.finish_reason, parsed.usage) == ("", FinishReason.TOOL_CALLS, Usage())


def chunk_dump(choices: list[dict[str, object]], usage: dict[str, int] | None = None) -> dict[str, object]:
    data = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices}
    if usage is not None:
        data["usage"] = usage
    return ChatCompletionChunk.model_validate(data).model_dump()


def test_parse_chunk_sequence() -> None:
    role = chunk_dump([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    text = chunk_dump([{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}])
    finish = chunk_dump([{"index": 0, "delta": {}, "finish_reason": "content_filter"}])
    usage = chunk_dump([], {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4})
    assert wire.parse_chunk(role) is None
    assert wire.parse_chunk(text) == Delta(text="Hi")
    assert wire.parse_chunk(finish) == Delta(finish_reason=FinishReason.CONTENT_FILTER)
    assert wire.parse_chunk(usage) == Delta(usage=Usage(prompt_tokens=3, completion_tokens=1))


def test_parse_chunk_reads_rendered_stream() -> None:
    renderer = wire.StreamRenderer("c", "m", 1, include_usage=True)
    events = renderer.start() + renderer.delta("A") + renderer.delta("B")
    events += renderer.finish(FinishReason.STOP, Usage(prompt_tokens=2, completion_tokens=2), "openai")
    deltas = [wire.parse_chunk(json.loads(data)) for _, data in events if data != "[DONE]"]
    assert deltas == [
        None,
        Delta(text="A"),
        Delta(text="B"),
        Delta(finish_reason=FinishReason.STOP),
        Delta(usage=Usage(prompt_tokens=2, completion_tokens=2)),
    ]


# --- cached prompt tokens ---------------------------------------------------------------------------


def test_render_completion_reports_cached_prompt_tokens() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=5, cached_prompt_tokens=200)
    parsed = ChatCompletion.model_validate(wire.render_completion(completion(usage=usage)))
    assert parsed.usage is not None and parsed.usage.prompt_tokens_details is not None
    assert (parsed.usage.prompt_tokens, parsed.usage.prompt_tokens_details.cached_tokens) == (1000, 200)


def test_stream_renderer_usage_chunk_reports_cached_prompt_tokens() -> None:
    renderer = wire.StreamRenderer("c", "m", 1, include_usage=True)
    usage_in = Usage(prompt_tokens=9, completion_tokens=1, cached_prompt_tokens=4)
    events = renderer.finish(FinishReason.STOP, usage_in, "x")
    usage = ChatCompletionChunk.model_validate(chunks(events)[-1]).usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 4


def test_parse_completion_reads_cached_tokens() -> None:
    data = ChatCompletion.model_validate(
        {
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": 1200,
                "completion_tokens": 4,
                "total_tokens": 1204,
                "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            },
        }
    ).model_dump()
    usage = wire.parse_completion(data, "openai").usage
    assert usage == Usage(prompt_tokens=1200, completion_tokens=4, cached_prompt_tokens=1024)


def test_parse_chunk_reads_cached_tokens_from_usage_chunk() -> None:
    details = {"cached_tokens": 16}
    usage = {"prompt_tokens": 30, "completion_tokens": 2, "total_tokens": 32, "prompt_tokens_details": details}
    chunk = ChatCompletionChunk.model_validate(
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": usage}
    ).model_dump()
    assert wire.parse_chunk(chunk) == Delta(usage=Usage(prompt_tokens=30, completion_tokens=2, cached_prompt_tokens=16))


async def test_cached_tokens_survive_the_openai_sdk_stream() -> None:
    renderer = wire.StreamRenderer("chatcmpl-9", "gpt-4o", 1, include_usage=True)
    events = renderer.delta("Hi") + renderer.finish(
        FinishReason.STOP, Usage(prompt_tokens=8, completion_tokens=1, cached_prompt_tokens=6), "openai"
    )
    payload = sse(events)
    client = sdk_client(lambda _: httpx2.Response(200, content=payload, headers={"content-type": "text/event-stream"}))
    try:
        stream = await client.chat.completions.create(model="gpt-4o", messages=[], stream=True)
        received = [chunk.model_dump() async for chunk in stream]
    finally:
        await client.close()
    deltas = [delta for delta in map(wire.parse_chunk, received) if delta is not None]
    assert deltas[-1].usage == Usage(prompt_tokens=8, completion_tokens=1, cached_prompt_tokens=6)
