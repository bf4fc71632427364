"""shared.wire.openai outbound, gateway to OpenAI: `render_request` gives the SDK's keyword arguments, and
`parse_completion` / `parse_chunk` read its responses back, checked against the official SDK."""

import json

import httpx2
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from shared.models import ChatRequest, Completion, Delta, FinishReason, Message, Usage, WireFormat
from shared.wire import anthropic as anthropic_wire
from shared.wire import openai as wire
from tests.shared.wire_openai_support import completion, sdk_client, sse


def finished(finish_reason: FinishReason, usage: Usage, provider: str, stop_sequence: str | None = None) -> Completion:
    """The final Completion a renderer's `finish` receives."""
    return Completion(id="x", model="m", provider=provider, content="", finish_reason=finish_reason, usage=usage,
                      stop_sequence=stop_sequence)



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
        extra_format=WireFormat.OPENAI,
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
    assert wire.parse_chunk(role) == []
    assert wire.parse_chunk(text) == [Delta(text="Hi")]
    assert wire.parse_chunk(finish) == [Delta(finish_reason=FinishReason.CONTENT_FILTER)]
    assert wire.parse_chunk(usage) == [Delta(usage=Usage(prompt_tokens=3, completion_tokens=1))]


def test_parse_chunk_reads_rendered_stream() -> None:
    renderer = wire.StreamRenderer("c", "m", 1, include_usage=True)
    events = renderer.start() + renderer.delta(Delta(text="A")) + renderer.delta(Delta(text="B"))
    events += renderer.finish(finished(FinishReason.STOP, Usage(prompt_tokens=2, completion_tokens=2), "openai"))
    deltas = [wire.parse_chunk(json.loads(data)) for _, data in events if data != "[DONE]"]
    assert deltas == [
        [],
        [Delta(text="A")],
        [Delta(text="B")],
        [Delta(finish_reason=FinishReason.STOP)],
        [Delta(usage=Usage(prompt_tokens=2, completion_tokens=2))],
    ]


# --- cached prompt tokens ---------------------------------------------------------------------------


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
    expected = Usage(prompt_tokens=30, completion_tokens=2, cached_prompt_tokens=16)
    assert wire.parse_chunk(chunk) == [Delta(usage=expected)]


async def test_cached_tokens_survive_the_openai_sdk_stream() -> None:
    renderer = wire.StreamRenderer("chatcmpl-9", "gpt-4o", 1, include_usage=True)
    events = renderer.delta(Delta(text="Hi")) + renderer.finish(finished(
        FinishReason.STOP, Usage(prompt_tokens=8, completion_tokens=1, cached_prompt_tokens=6), "openai"
    ))
    payload = sse(events)
    client = sdk_client(lambda _: httpx2.Response(200, content=payload, headers={"content-type": "text/event-stream"}))
    try:
        stream = await client.chat.completions.create(model="gpt-4o", messages=[], stream=True)
        received = [chunk.model_dump() async for chunk in stream]
    finally:
        await client.close()
    deltas = [delta for chunk in received for delta in wire.parse_chunk(chunk)]
    assert deltas[-1].usage == Usage(prompt_tokens=8, completion_tokens=1, cached_prompt_tokens=6)
