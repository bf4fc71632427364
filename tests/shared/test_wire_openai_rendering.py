"""shared.wire.openai rendering back to the client: `render_completion`, `render_error` and `StreamRenderer`,
checked against the official SDK's own types and stream parser."""

import json

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
from shared.models import Completion as Completion
from shared.models import Delta as Delta
from shared.models import FinishReason, Usage
from shared.wire import openai as wire
from tests.shared.wire_openai_support import completion, sdk_client, sse


def finished(finish_reason: FinishReason, usage: Usage, provider: str, stop_sequence: str | None = None) -> Completion:
    """The final Completion a renderer's `finish` receives."""
    return Completion(id="x", model="m", provider=provider, content="", finish_reason=finish_reason, usage=usage,
                      stop_sequence=stop_sequence)



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
    assert parsed.choices[0].finish_reason == wire.CLIENT_FINISH_REASONS[reason]


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
    events = renderer.start() + renderer.delta(Delta(text="Hel")) + renderer.delta(Delta(text="lo"))
    events += renderer.finish(finished(FinishReason.LENGTH, Usage(prompt_tokens=5, completion_tokens=2), "openai"))
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
    events = renderer.start() + renderer.delta(Delta(text="Hi"))
    events += renderer.finish(finished(FinishReason.STOP, Usage(prompt_tokens=5, completion_tokens=2), "anthropic"))
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
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    usage = ChatCompletionChunk.model_validate(parsed[3]).usage
    assert usage is not None and usage.total_tokens == 7


def test_stream_renderer_data_is_compact_json() -> None:
    renderer = wire.StreamRenderer("c", "m", 1, include_usage=False)
    _, data = renderer.delta(Delta(text="x"))[1]
    assert ": " not in data and ", " not in data


def test_stream_renderer_starts_implicitly_and_skips_empty_text() -> None:
    renderer = wire.StreamRenderer("c", "m", 1, include_usage=False)
    first = renderer.delta(Delta(text="a"))
    assert len(first) == 2 and json.loads(first[0][1])["choices"][0]["delta"]["role"] == "assistant"
    assert renderer.delta(Delta(text="")) == []


def test_stream_renderer_error_event() -> None:
    renderer = wire.StreamRenderer("c", "m", 1, include_usage=False)
    events = renderer.error(UpstreamUnavailable("openai is down"))
    assert events == [
        (None, json.dumps(wire.render_error(UpstreamUnavailable("openai is down")), separators=(",", ":")))
    ]


async def test_stream_renderer_output_is_read_by_the_openai_sdk() -> None:
    renderer = wire.StreamRenderer("chatcmpl-9", "gpt-4o", 1700000000, include_usage=True)
    events = renderer.start() + renderer.delta(Delta(text="Hello")) + renderer.delta(Delta(text=" world"))
    events += renderer.finish(finished(FinishReason.STOP, Usage(prompt_tokens=4, completion_tokens=2), "anthropic"))
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
    payload = sse(renderer.start() + renderer.delta(Delta(text="Hel")) + renderer.error(UpstreamUnavailable("boom")))
    client = sdk_client(lambda _: httpx2.Response(200, content=payload, headers={"content-type": "text/event-stream"}))
    try:
        stream = await client.chat.completions.create(model="gpt-4o", messages=[], stream=True)
        with pytest.raises(openai.APIError, match="boom"):
            async for _ in stream:
                pass
    finally:
        await client.close()


# --- cached prompt tokens ---------------------------------------------------------------------------


def test_render_completion_reports_cached_prompt_tokens() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=5, cached_prompt_tokens=200)
    parsed = ChatCompletion.model_validate(wire.render_completion(completion(usage=usage)))
    assert parsed.usage is not None and parsed.usage.prompt_tokens_details is not None
    assert (parsed.usage.prompt_tokens, parsed.usage.prompt_tokens_details.cached_tokens) == (1000, 200)


def test_stream_renderer_usage_chunk_reports_cached_prompt_tokens() -> None:
    renderer = wire.StreamRenderer("c", "m", 1, include_usage=True)
    usage_in = Usage(prompt_tokens=9, completion_tokens=1, cached_prompt_tokens=4)
    events = renderer.finish(finished(FinishReason.STOP, usage_in, "x"))
    usage = ChatCompletionChunk.model_validate(chunks(events)[-1]).usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 4

