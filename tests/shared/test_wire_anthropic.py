"""shared.wire.anthropic: inbound parsing and rendering, outbound request/response translation, checked
against the official SDK's own types and parser."""

import json
from collections.abc import Callable

import anthropic
import httpx2
import pytest
from anthropic.types import Message as SDKMessage
from anthropic.types import RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

from shared.errors import (
    AllTargetsFailed,
    AuthenticationFailed,
    BudgetExceeded,
    Conflict,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from shared.models import ChatRequest, Completion, Delta, FinishReason, Message, Usage
from shared.wire import anthropic as wire
from shared.wire import openai as openai_wire

BASE: dict[str, object] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "Hi"}],
}
EVENTS: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)


def body(**changes: object) -> dict[str, object]:
    return {**BASE, **changes}


def completion(**changes: object) -> Completion:
    fields: dict[str, object] = {
        "id": "msg_1",
        "model": "claude-sonnet-4-5",
        "provider": "openai",
        "content": "Hello!",
        "usage": Usage(prompt_tokens=7, completion_tokens=3),
    }
    return Completion.model_validate({**fields, **changes})


def sse(events: list[tuple[str | None, str]]) -> bytes:
    return "".join(f"event: {name}\ndata: {data}\n\n" for name, data in events).encode()


def sdk_client(handler: Callable[[httpx2.Request], httpx2.Response]) -> anthropic.AsyncAnthropic:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return anthropic.AsyncAnthropic(api_key="sk-test", base_url="http://upstream", http_client=http, max_retries=0)


# --- parse_request ----------------------------------------------------------------------------------


def test_parse_request_minimal_body() -> None:
    assert wire.parse_request(BASE) == ChatRequest(
        model="claude-sonnet-4-5", messages=[Message(role="user", content="Hi")], max_tokens=100
    )


def test_parse_request_reads_every_supported_field() -> None:
    request = wire.parse_request(
        body(
            system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}],
                },
                {"role": "assistant", "content": "ok"},
                {"role": "assistant", "content": "more"},
            ],
            temperature=1,
            top_p=0.5,
            top_k=5,
            stop_sequences=["END", "STOP"],
            stream=True,
            metadata={"user_id": "u-1"},
            thinking={"type": "disabled"},
        )
    )
    assert request.system == "Be brief.\nBe kind."
    assert [(m.role, m.content) for m in request.messages] == [
        ("user", "a"),
        ("assistant", "ok"),
        ("assistant", "more"),
    ]
    assert (request.max_tokens, request.temperature, request.top_p) == (100, 1.0, 0.5)
    assert request.stop == ["END", "STOP"]
    assert (request.stream, request.include_usage, request.user) == (True, True, "u-1")


def test_parse_request_system_string_and_empty_metadata() -> None:
    request = wire.parse_request(body(system="S", metadata={}))
    assert (request.system, request.user) == ("S", None)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([BASE], "request body"),
        ({"max_tokens": 1, "messages": BASE["messages"]}, "'model'"),
        (body(model=""), "'model'"),
        (body(model=["claude"]), "'model'"),
        ({"model": "c", "max_tokens": 1}, "'messages'"),
        (body(messages=[]), "'messages'"),
        (body(messages={"role": "user"}), "'messages'"),
        (body(messages=[1]), "'messages[0]'"),
        (body(messages=[{"role": "system", "content": "Hi"}]), "'messages[0].role'"),
        (body(messages=[{"content": "Hi"}]), "'messages[0].role'"),
        (body(messages=[{"role": "user"}]), "'messages[0].content'"),
        (body(messages=[{"role": "user", "content": []}]), "'messages[0].content'"),
        (
            body(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}]),
            "'messages[0].content[0].text'",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "image", "source": {}}]}]),
            "'messages[0].content[0].type'",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]),
            "'messages[0].content[0].type'",
        ),
        ({"model": "c", "messages": BASE["messages"]}, "'max_tokens'"),
        (body(max_tokens=0), "'max_tokens'"),
        (body(max_tokens=-1), "'max_tokens'"),
        (body(max_tokens="100"), "'max_tokens'"),
        (body(max_tokens=None), "'max_tokens'"),
        (body(system=5), "'system'"),
        (body(system=[{"type": "image"}]), "'system[0].type'"),
        (body(temperature=1.5), "'temperature'"),
        (body(temperature=-1), "'temperature'"),
        (body(top_p=2), "'top_p'"),
        (body(stop_sequences="END"), "'stop_sequences'"),
        (body(stop_sequences=[1]), "'stop_sequences'"),
        (body(stream=1), "'stream'"),
        (body(metadata="u"), "'metadata'"),
        (body(metadata={"user_id": 7}), "'metadata.user_id'"),
        (body(tools=[{"name": "f", "input_schema": {}}]), "'tools'"),
    ],
)
def test_parse_request_rejects_invalid_field(payload: object, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        wire.parse_request(payload)  # type: ignore[arg-type]
    assert field in caught.value.message


def test_parse_request_names_unsupported_features() -> None:
    with pytest.raises(InvalidRequest, match="'tools' is not supported"):
        wire.parse_request(body(tools=[{"name": "f"}]))
    image = {"role": "user", "content": [{"type": "image", "source": {}}]}
    with pytest.raises(InvalidRequest, match="'image' is not supported"):
        wire.parse_request(body(messages=[image]))


# --- render_completion / render_error ---------------------------------------------------------------


def test_render_completion_is_an_anthropic_message() -> None:
    rendered = wire.render_completion(completion())
    parsed = SDKMessage.model_validate(rendered)
    assert (parsed.id, parsed.type, parsed.role, parsed.model) == (
        "msg_1",
        "message",
        "assistant",
        "claude-sonnet-4-5",
    )
    assert [(block.type, getattr(block, "text", None)) for block in parsed.content] == [("text", "Hello!")]
    assert (parsed.stop_reason, parsed.stop_sequence) == ("end_turn", None)
    assert (parsed.usage.input_tokens, parsed.usage.output_tokens) == (7, 3)
    assert rendered["provider"] == "openai"


@pytest.mark.parametrize(
    ("reason", "stop_reason"),
    [
        (FinishReason.STOP, "end_turn"),
        (FinishReason.LENGTH, "max_tokens"),
        (FinishReason.TOOL_CALLS, "tool_use"),
        (FinishReason.CONTENT_FILTER, "refusal"),
    ],
)
def test_render_completion_stop_reason(reason: FinishReason, stop_reason: str) -> None:
    assert (
        SDKMessage.model_validate(wire.render_completion(completion(finish_reason=reason))).stop_reason == stop_reason
    )


@pytest.mark.parametrize(
    ("error", "error_type"),
    [
        (InvalidRequest("bad"), "invalid_request_error"),
        (PayloadTooLarge("big"), "invalid_request_error"),
        (BudgetExceeded("spent"), "billing_error"),
        (Conflict("twice"), "invalid_request_error"),
        (AuthenticationFailed("who"), "authentication_error"),
        (PermissionDenied("no"), "permission_error"),
        (NotFound("gone"), "not_found_error"),
        (ModelNotFound("no model"), "not_found_error"),
        (RateLimited("slow", retry_after_s=1), "rate_limit_error"),
        (UpstreamRateLimited("slow", retry_after_s=1), "rate_limit_error"),
        (UpstreamRejected("bad", status=422), "invalid_request_error"),
        (UpstreamUnavailable("down"), "api_error"),
        (UpstreamUnavailable("overloaded", status=529), "overloaded_error"),
        (UpstreamTimeout("slow"), "api_error"),
        (AllTargetsFailed("none"), "overloaded_error"),
        (ServiceUnavailable("redis"), "overloaded_error"),
        (GatewayError("bug"), "api_error"),
    ],
)
def test_render_error_type(error: GatewayError, error_type: str) -> None:
    rendered = wire.render_error(error)
    assert rendered == {
        "type": "error",
        "error": {"type": error_type, "message": error.message, "code": error.code},
    }
    parsed = ErrorResponse.model_validate(rendered)
    assert (parsed.error.type, parsed.error.message) == (error_type, error.message)


# --- StreamRenderer ---------------------------------------------------------------------------------


def test_stream_renderer_exact_sequence() -> None:
    renderer = wire.StreamRenderer("msg_9", "claude-haiku-4-5", 1700000000, include_usage=False)
    events = renderer.start(prompt_tokens=12) + renderer.delta("Hel") + renderer.delta("lo")
    events += renderer.finish(FinishReason.LENGTH, Usage(prompt_tokens=12, completion_tokens=2), "openai")
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    data = [json.loads(d) for _, d in events]
    assert all(item["type"] == name for item, name in zip(data, names, strict=True))
    assert data[0]["message"]["usage"] == {"input_tokens": 12, "cache_read_input_tokens": 0, "output_tokens": 0}
    assert data[0]["message"]["id"] == "msg_9"
    assert data[3]["delta"] == {"type": "text_delta", "text": "Hel"}
    assert data[6]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert data[6]["usage"] == {"input_tokens": 12, "cache_read_input_tokens": 0, "output_tokens": 2}
    assert data[6]["provider"] == "openai"
    for item in data:
        if item["type"] != "ping":
            assert EVENTS.validate_python(item).type == item["type"]


def test_stream_renderer_data_is_compact_json() -> None:
    _, data = wire.StreamRenderer("m", "c", 1, include_usage=True).start()[0]
    assert ": " not in data and ", " not in data


def test_stream_renderer_starts_implicitly_and_skips_empty_text() -> None:
    renderer = wire.StreamRenderer("m", "c", 1, include_usage=True)
    assert [name for name, _ in renderer.delta("x")] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
    ]
    assert renderer.delta("") == []


def test_stream_renderer_error_event() -> None:
    renderer = wire.StreamRenderer("m", "c", 1, include_usage=True)
    ((name, data),) = renderer.error(UpstreamUnavailable("overloaded", status=529))
    assert name == "error"
    assert json.loads(data) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "overloaded", "code": "upstream_unavailable"},
    }


async def test_stream_renderer_output_is_read_by_the_anthropic_sdk() -> None:
    renderer = wire.StreamRenderer("msg_9", "claude-haiku-4-5", 1, include_usage=True)
    events = renderer.start(prompt_tokens=4) + renderer.delta("Hello") + renderer.delta(" world")
    events += renderer.finish(FinishReason.STOP, Usage(prompt_tokens=4, completion_tokens=2), "anthropic")
    payload = sse(events)
    client = sdk_client(lambda _: httpx2.Response(200, content=payload, headers={"content-type": "text/event-stream"}))
    try:
        stream = await client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[], stream=True)
        received = [event.model_dump() async for event in stream]
    finally:
        await client.close()
    deltas = [delta for delta in map(wire.parse_chunk, received) if delta is not None]
    assert "".join(d.text for d in deltas) == "Hello world"
    assert deltas[0].usage == Usage(prompt_tokens=4)
    assert deltas[-1] == Delta(finish_reason=FinishReason.STOP, usage=Usage(prompt_tokens=4, completion_tokens=2))


async def test_stream_renderer_error_is_raised_by_the_anthropic_sdk() -> None:
    renderer = wire.StreamRenderer("msg_9", "c", 1, include_usage=True)
    payload = sse(renderer.start() + renderer.error(UpstreamUnavailable("boom", status=529)))
    client = sdk_client(lambda _: httpx2.Response(200, content=payload, headers={"content-type": "text/event-stream"}))
    try:
        stream = await client.messages.create(model="c", max_tokens=5, messages=[], stream=True)
        with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
            async for _ in stream:
                pass
    finally:
        await client.close()


# --- outbound ---------------------------------------------------------------------------------------


def test_render_request_full() -> None:
    request = ChatRequest(
        model="public",
        system="Be brief.",
        messages=[Message(role="user", content="Hi")],
        max_tokens=10,
        temperature=0.5,
        stop=["x"],
        user="u",
        stream=True,
    )
    assert wire.render_request(request, "claude-haiku-4-5") == {
        "model": "claude-haiku-4-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "Hi"}],
        "system": "Be brief.",
        "stop_sequences": ["x"],
        "metadata": {"user_id": "u"},
        "stream": True,
        "extra_body": {"temperature": 0.5},
    }


def test_render_request_defaults_max_tokens_and_omits_unset_fields() -> None:
    request = ChatRequest(model="public", messages=[Message(role="user", content="Hi")])
    assert wire.render_request(request, "claude-sonnet-4-5") == {
        "model": "claude-sonnet-4-5",
        "max_tokens": wire.DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    assert wire.DEFAULT_MAX_TOKENS == 4096


def test_render_request_top_p_only_without_temperature() -> None:
    only_top_p = ChatRequest(model="p", messages=[Message(role="user", content="Hi")], top_p=0.3)
    both = only_top_p.model_copy(update={"temperature": 0.2})
    assert wire.render_request(only_top_p, "c")["extra_body"] == {"top_p": 0.3}
    assert wire.render_request(both, "c")["extra_body"] == {"temperature": 0.2}


def test_openai_request_rendered_for_anthropic() -> None:
    request = openai_wire.parse_request(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "S1"},
                {"role": "developer", "content": "S2"},
                {"role": "user", "content": "Hi"},
            ],
            "temperature": 1.8,
            "stop": "END",
            "user": "u-2",
        }
    )
    assert wire.render_request(request, "claude-sonnet-4-5") == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hi"}],
        "system": "S1\n\nS2",
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-2"},
        "extra_body": {"temperature": 1.0},
    }


async def test_render_request_is_accepted_by_the_anthropic_sdk() -> None:
    sent: list[dict[str, object]] = []
    answer = wire.render_completion(completion(provider="anthropic"))

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        return httpx2.Response(200, json=answer)

    request = ChatRequest(
        model="p", system="S", messages=[Message(role="user", content="Hi")], temperature=1.5, user="u"
    )
    client = sdk_client(handler)
    try:
        response = await client.messages.create(**wire.render_request(request, "claude-haiku-4-5"))  # type: ignore[arg-type]
    finally:
        await client.close()
    assert sent[0]["system"] == "S"
    assert sent[0]["temperature"] == 1.0
    assert sent[0]["max_tokens"] == 4096
    assert sent[0]["metadata"] == {"user_id": "u"}
    parsed = wire.parse_completion(response.model_dump(), "anthropic")
    assert (parsed.content, parsed.usage) == ("Hello!", Usage(prompt_tokens=7, completion_tokens=3))


def test_parse_completion_reads_sdk_dump() -> None:
    data = SDKMessage.model_validate(
        {
            "id": "msg_x",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
            "stop_reason": "stop_sequence",
            "stop_sequence": "END",
            "usage": {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 5},
        }
    ).model_dump()
    parsed = wire.parse_completion(data, "anthropic")
    assert (parsed.id, parsed.model, parsed.provider) == ("msg_x", "claude-sonnet-4-5", "anthropic")
    assert parsed.content == "Hi there"
    assert parsed.finish_reason == FinishReason.STOP
    assert parsed.usage == Usage(prompt_tokens=15, completion_tokens=4, cached_prompt_tokens=5)
    assert parsed.created > 0


@pytest.mark.parametrize(
    ("stop_reason", "reason"),
    [
        ("end_turn", FinishReason.STOP),
        ("max_tokens", FinishReason.LENGTH),
        ("tool_use", FinishReason.TOOL_CALLS),
        ("refusal", FinishReason.CONTENT_FILTER),
        ("model_context_window_exceeded", FinishReason.LENGTH),
    ],
)
def test_parse_completion_finish_reason(stop_reason: str, reason: FinishReason) -> None:
    data = wire.render_completion(completion()) | {"stop_reason": stop_reason}
    assert wire.parse_completion(data, "anthropic").finish_reason == reason


def test_parse_chunk_events() -> None:
    renderer = wire.StreamRenderer("m", "c", 1, include_usage=True)
    events = renderer.start(prompt_tokens=9) + renderer.delta("A")
    events += renderer.finish(FinishReason.TOOL_CALLS, Usage(completion_tokens=3), "x")
    dumps = [EVENTS.validate_python(json.loads(d)).model_dump() for name, d in events if name != "ping"]
    assert [wire.parse_chunk(d) for d in dumps] == [
        Delta(usage=Usage(prompt_tokens=9)),
        None,
        Delta(text="A"),
        None,
        Delta(finish_reason=FinishReason.TOOL_CALLS, usage=Usage(completion_tokens=3)),
        None,
    ]


def test_parse_chunk_ignores_non_text_deltas() -> None:
    event = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "input_json_delta", "partial_json": "{"},
    }
    assert wire.parse_chunk(event) is None
    assert wire.parse_chunk({"type": "ping"}) is None


# --- cached prompt tokens ---------------------------------------------------------------------------


def test_render_completion_counts_cache_reads_apart_from_input_tokens() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=5, cached_prompt_tokens=200)
    parsed = SDKMessage.model_validate(wire.render_completion(completion(usage=usage)))
    assert (parsed.usage.input_tokens, parsed.usage.cache_read_input_tokens, parsed.usage.output_tokens) == (
        800,
        200,
        5,
    )


def test_parse_completion_round_trips_cached_tokens() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=5, cached_prompt_tokens=200)
    dump = SDKMessage.model_validate(wire.render_completion(completion(usage=usage))).model_dump()
    assert wire.parse_completion(dump, "anthropic").usage == usage


def test_parse_completion_counts_cache_writes_as_uncached_prompt() -> None:
    usage = {"input_tokens": 3, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 50, "output_tokens": 1}
    data = wire.render_completion(completion()) | {"usage": usage}
    assert wire.parse_completion(data, "anthropic").usage == Usage(
        prompt_tokens=153, completion_tokens=1, cached_prompt_tokens=50
    )


def test_parse_chunk_reads_cache_reads_from_message_start_and_delta() -> None:
    usage = {"input_tokens": 4, "cache_read_input_tokens": 60, "output_tokens": 1}
    start = {"type": "message_start", "message": {**wire.render_completion(completion()), "usage": usage}}
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {**usage, "output_tokens": 9}}
    assert wire.parse_chunk(EVENTS.validate_python(start).model_dump()) == Delta(
        usage=Usage(prompt_tokens=64, cached_prompt_tokens=60)
    )
    assert wire.parse_chunk(EVENTS.validate_python(delta).model_dump()) == Delta(
        finish_reason=FinishReason.STOP, usage=Usage(prompt_tokens=64, completion_tokens=9, cached_prompt_tokens=60)
    )


async def test_cached_tokens_survive_the_anthropic_sdk_stream() -> None:
    renderer = wire.StreamRenderer("msg_9", "claude-haiku-4-5", 1, include_usage=True)
    usage = Usage(prompt_tokens=40, completion_tokens=2, cached_prompt_tokens=30)
    events = renderer.start() + renderer.delta("Hi") + renderer.finish(FinishReason.STOP, usage, "anthropic")
    payload = sse(events)
    client = sdk_client(lambda _: httpx2.Response(200, content=payload, headers={"content-type": "text/event-stream"}))
    try:
        stream = await client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[], stream=True)
        received = [event.model_dump() async for event in stream]
    finally:
        await client.close()
    deltas = [delta for delta in map(wire.parse_chunk, received) if delta is not None]
    assert deltas[-1].usage == usage
