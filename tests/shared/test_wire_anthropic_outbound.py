"""shared.wire.anthropic outbound, gateway to Anthropic: `render_request` gives the SDK's keyword arguments,
and `parse_completion` / `parse_chunk` read its responses back, checked against the official SDK."""

import json

import httpx2
import pytest
from anthropic.types import Message as SDKMessage

from shared.models import ChatRequest, Delta, FinishReason, Message, Usage
from shared.models import Completion as Completion
from shared.wire import anthropic as wire
from shared.wire import openai as openai_wire
from tests.shared.wire_anthropic_support import EVENTS, completion, sdk_client, sse


def finished(finish_reason: FinishReason, usage: Usage, provider: str, stop_sequence: str | None = None) -> Completion:
    """The final Completion a renderer's `finish` receives."""
    return Completion(id="x", model="m", provider=provider, content="", finish_reason=finish_reason, usage=usage,
                      stop_sequence=stop_sequence)



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
    events = renderer.start(prompt_tokens=9) + renderer.delta(Delta(text="A"))
    events += renderer.finish(finished(FinishReason.TOOL_CALLS, Usage(completion_tokens=3), "x"))
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
    events = renderer.start() + renderer.delta(Delta(text="Hi"))
    events += renderer.finish(finished(FinishReason.STOP, usage, "anthropic"))
    payload = sse(events)
    client = sdk_client(lambda _: httpx2.Response(200, content=payload, headers={"content-type": "text/event-stream"}))
    try:
        stream = await client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=[], stream=True)
        received = [event.model_dump() async for event in stream]
    finally:
        await client.close()
    deltas = [delta for delta in map(wire.parse_chunk, received) if delta is not None]
    assert deltas[-1].usage == usage
