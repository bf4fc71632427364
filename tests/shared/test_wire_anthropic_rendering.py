"""shared.wire.anthropic rendering back to the client: `render_completion`, `render_error` and
`StreamRenderer`, checked against the official SDK's own types and stream parser."""

import json

import anthropic
import httpx2
import pytest
from anthropic.types import Message as SDKMessage
from anthropic.types.shared import ErrorResponse

from shared.content import RawPart, TextPart, ThinkingPart, ToolCallPart
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
from shared.models import Completion as Completion
from shared.models import Delta, FinishReason, ToolCallDelta, Usage, WireFormat
from shared.wire import anthropic as wire
from tests.shared.wire_anthropic_support import EVENTS, completion, sdk_client, sse


def finished(finish_reason: FinishReason, usage: Usage, provider: str, stop_sequence: str | None = None) -> Completion:
    """The final Completion a renderer's `finish` receives."""
    return Completion(id="x", model="m", provider=provider, content="", finish_reason=finish_reason, usage=usage,
                      stop_sequence=stop_sequence)



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
        (AllTargetsFailed("none"), "api_error"),
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
    events = renderer.start(prompt_tokens=12) + renderer.delta(Delta(text="Hel")) + renderer.delta(Delta(text="lo"))
    events += renderer.finish(finished(FinishReason.LENGTH, Usage(prompt_tokens=12, completion_tokens=2), "openai"))
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    data = [json.loads(d) for _, d in events]
    assert all(item["type"] == name for item, name in zip(data, names, strict=True))
    assert data[0]["message"]["usage"] == {
        "input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}}
    assert data[0]["message"]["id"] == "msg_9"
    assert data[3]["delta"] == {"type": "text_delta", "text": "Hel"}
    assert data[6]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert data[6]["usage"]["output_tokens"] == 2
    assert data[6]["provider"] == "openai"
    for item in data:
        if item["type"] != "ping":
            assert EVENTS.validate_python(item).type == item["type"]


def test_stream_renderer_data_is_compact_json() -> None:
    _, data = wire.StreamRenderer("m", "c", 1, include_usage=True).start()[0]
    assert ": " not in data and ", " not in data


def test_stream_renderer_starts_implicitly_and_skips_empty_text() -> None:
    renderer = wire.StreamRenderer("m", "c", 1, include_usage=True)
    assert [name for name, _ in renderer.delta(Delta(text="x"))] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
    ]
    assert renderer.delta(Delta(text="")) == []


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
    events = renderer.start(prompt_tokens=4) + renderer.delta(Delta(text="Hello"))
    events += renderer.delta(Delta(text=" world"))
    events += renderer.finish(finished(FinishReason.STOP, Usage(prompt_tokens=4, completion_tokens=2), "anthropic"))
    payload = sse(events)
    client = sdk_client(lambda _: httpx2.Response(200, content=payload, headers={"content-type": "text/event-stream"}))
    try:
        stream = await client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[], stream=True)
        received = [event.model_dump() async for event in stream]
    finally:
        await client.close()
    parser = wire.StreamParser()
    deltas = [delta for event in received for delta in parser.parse(event)]
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


# --- cached prompt tokens ---------------------------------------------------------------------------


def test_render_completion_counts_cache_reads_apart_from_input_tokens() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=5, cached_prompt_tokens=200)
    parsed = SDKMessage.model_validate(wire.render_completion(completion(usage=usage)))
    assert (parsed.usage.input_tokens, parsed.usage.cache_read_input_tokens, parsed.usage.output_tokens) == (
        800,
        200,
        5,
    )



# --- full answers -----------------------------------------------------------------------------------

ANTHROPIC_PARTS = [
    ThinkingPart(text="Let me think.", signature="sig==", provider="anthropic"),
    ThinkingPart(redacted="opaque", provider="anthropic"),
    TextPart(text="Checking."),
    ToolCallPart(id="toolu_1", name="weather", arguments='{"city":"Oslo"}'),
    RawPart(source="anthropic", block={"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
                                       "input": {"query": "q"}}),
]


def test_render_completion_renders_parts_usage_and_anthropic_extra() -> None:
    usage = Usage(prompt_tokens=160, completion_tokens=40, cached_prompt_tokens=100, cache_write_tokens=20,
                  cache_write_1h_tokens=30, reasoning_tokens=25)
    rendered = wire.render_completion(completion(
        parts=ANTHROPIC_PARTS, content="Checking.", finish_reason=FinishReason.TOOL_CALLS, usage=usage,
        provider="anthropic", service_tier="standard", extra_format=WireFormat.ANTHROPIC,
        extra={"container": {"id": "c", "expires_at": "2026-12-05T00:00:00Z"},
               "usage": {"server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0}}}))
    parsed = SDKMessage.model_validate(rendered)
    assert [block.type for block in parsed.content] == ["thinking", "redacted_thinking", "text", "tool_use",
                                                        "server_tool_use"]
    assert parsed.content[0].signature == "sig=="  # type: ignore[union-attr]
    assert parsed.content[3].input == {"city": "Oslo"}  # type: ignore[union-attr]
    assert parsed.stop_reason == "tool_use"
    assert (parsed.usage.input_tokens, parsed.usage.cache_read_input_tokens,
            parsed.usage.cache_creation_input_tokens) == (10, 100, 50)
    assert parsed.usage.cache_creation is not None
    assert (parsed.usage.cache_creation.ephemeral_5m_input_tokens,
            parsed.usage.cache_creation.ephemeral_1h_input_tokens) == (20, 30)
    assert parsed.usage.output_tokens_details and parsed.usage.output_tokens_details.thinking_tokens == 25
    assert parsed.usage.service_tier == "standard"
    assert parsed.usage.server_tool_use and parsed.usage.server_tool_use.web_search_requests == 1
    assert parsed.container and parsed.container.id == "c"
    assert wire.parse_completion(rendered, "anthropic").parts == ANTHROPIC_PARTS  # and back


def test_render_completion_of_an_openai_answer() -> None:
    tool_calls = completion(parts=[TextPart(text="Let me check."),
                                   ToolCallPart(id="call_1", name="f", arguments='{"a":1}')],
                            content="Let me check.", finish_reason=FinishReason.TOOL_CALLS,
                            extra={"system_fingerprint": "fp"}, extra_format=WireFormat.OPENAI, service_tier="default")
    rendered = wire.render_completion(tool_calls)
    parsed = SDKMessage.model_validate(rendered)
    assert [block.type for block in parsed.content] == ["text", "tool_use"]
    assert "system_fingerprint" not in rendered and parsed.usage.service_tier is None
    refused = SDKMessage.model_validate(wire.render_completion(completion(content="", refusal="I can't help.")))
    assert (refused.stop_reason, refused.content[0].text) == ("refusal", "I can't help.")  # type: ignore[union-attr]
    stopped = wire.render_completion(completion(finish_reason=FinishReason.STOP_SEQUENCE, stop_sequence="END"))
    assert (stopped["stop_reason"], stopped["stop_sequence"]) == ("stop_sequence", "END")
    broken = completion(parts=[ToolCallPart(id="c", name="f", arguments="{nope")], content="")
    with pytest.raises(UpstreamUnavailable):
        wire.render_completion(broken)


# --- streams of every block kind --------------------------------------------------------------------

STREAMED = [
    Delta(thinking="Let me "), Delta(thinking="think."), Delta(signature="sig=="),
    Delta(redacted_thinking="opaque"),
    Delta(text="Checking"), Delta(text="."),
    Delta(tool_call=ToolCallDelta(index=0, id="toolu_1", name="weather")),
    Delta(tool_call=ToolCallDelta(index=0, arguments='{"city":')),
    Delta(tool_call=ToolCallDelta(index=0, arguments='"Oslo"}')),
    Delta(tool_call=ToolCallDelta(index=1, id="toolu_2", name="noargs")),
]


def streamed_events() -> list[tuple[str | None, str]]:
    renderer = wire.StreamRenderer("msg_9", "claude-haiku-4-5", 1, include_usage=True)
    events = renderer.start(prompt_tokens=40)
    for delta in STREAMED:
        events += renderer.delta(delta)
    usage = Usage(prompt_tokens=40, completion_tokens=30, cached_prompt_tokens=10, cache_write_1h_tokens=5)
    return events + renderer.finish(finished(FinishReason.TOOL_CALLS, usage, "anthropic"))


def test_stream_renderer_opens_a_block_per_kind() -> None:
    data = [json.loads(d) for _, d in streamed_events()]
    starts = [(item["index"], item["content_block"]["type"]) for item in data if item["type"] == "content_block_start"]
    assert starts == [(0, "thinking"), (1, "redacted_thinking"), (2, "text"), (3, "tool_use"), (4, "tool_use")]
    stops = [item["index"] for item in data if item["type"] == "content_block_stop"]
    assert stops == [0, 1, 2, 3, 4]
    kinds = [item["delta"]["type"] for item in data if item["type"] == "content_block_delta"]
    assert kinds == ["thinking_delta", "thinking_delta", "signature_delta", "text_delta", "text_delta",
                     "input_json_delta", "input_json_delta"]
    for item in data:
        if item["type"] != "ping":
            EVENTS.validate_python(item)


def test_stream_renderer_output_parses_back_to_the_same_deltas() -> None:
    parser = wire.StreamParser()
    deltas = [d for _, data in streamed_events() for d in parser.parse(json.loads(data))]
    assert [d for d in deltas if d.usage is None and d.finish_reason is None] == STREAMED
    assert deltas[-1].usage == Usage(prompt_tokens=40, completion_tokens=30, cached_prompt_tokens=10,
                                     cache_write_1h_tokens=5)


def test_stream_renderer_thinking_after_a_signature_is_a_new_block() -> None:
    renderer = wire.StreamRenderer("m", "c", 1, include_usage=True)
    events = renderer.delta(Delta(thinking="a", signature="s1")) + renderer.delta(Delta(thinking="b"))
    starts = [json.loads(d)["index"] for name, d in events if name == "content_block_start"]
    assert starts == [0, 1]


async def test_the_sdk_message_stream_accumulates_our_events() -> None:
    payload = sse(streamed_events())
    client = sdk_client(lambda _: httpx2.Response(200, content=payload, headers={"content-type": "text/event-stream"}))
    try:
        async with client.messages.stream(model="claude-haiku-4-5", max_tokens=5,
                                          messages=[{"role": "user", "content": "Hi"}]) as stream:
            texts = [text async for text in stream.text_stream]
            message = await stream.get_final_message()
    finally:
        await client.close()
    assert "".join(texts) == "Checking."
    assert [block.type for block in message.content] == ["thinking", "redacted_thinking", "text", "tool_use",
                                                         "tool_use"]
    thinking, redacted, _, call, bare = message.content
    assert (thinking.thinking, thinking.signature) == ("Let me think.", "sig==")  # type: ignore[union-attr]
    assert redacted.data == "opaque"  # type: ignore[union-attr]
    assert (call.id, call.name, call.input) == ("toolu_1", "weather", {"city": "Oslo"})  # type: ignore[union-attr]
    assert bare.input == {}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"
    assert (message.usage.output_tokens, message.usage.cache_read_input_tokens) == (30, 10)
