"""shared.wire.anthropic rendering back to the client: `render_completion`, `render_error` and
`StreamRenderer`, checked against the official SDK's own types and stream parser."""

import json

import anthropic
import httpx2
import pytest
from anthropic.types import Message as SDKMessage
from anthropic.types.shared import ErrorResponse

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
from shared.models import Delta, FinishReason, Usage
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
    assert [name for name, _ in renderer.delta(Delta(text="x"))] == [
        "message_start",
        "content_block_start",
        "ping",
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


# --- cached prompt tokens ---------------------------------------------------------------------------


def test_render_completion_counts_cache_reads_apart_from_input_tokens() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=5, cached_prompt_tokens=200)
    parsed = SDKMessage.model_validate(wire.render_completion(completion(usage=usage)))
    assert (parsed.usage.input_tokens, parsed.usage.cache_read_input_tokens, parsed.usage.output_tokens) == (
        800,
        200,
        5,
    )

