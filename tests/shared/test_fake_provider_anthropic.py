"""The fake provider's Anthropic Messages endpoint, driven by the official anthropic SDK against a real
uvicorn server (and raw httpx where the exact wire bytes matter): replies, event streams and failures."""

from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from tests.shared.fake_provider_support import (
    ANTHROPIC_MESSAGES,
    ANTHROPIC_STREAM_EVENTS,
    EXPECTED_REPLY,
    Clients,
    sse_events,
)

# The SDK's transport is httpx2; plain httpx's class too, should the SDK be switched back to it.
REMOTE_PROTOCOL_ERRORS = (httpx2.RemoteProtocolError, httpx.RemoteProtocolError)


async def test_anthropic_message_returns_reply_usage_and_end_turn(clients: Clients) -> None:
    _, claude = clients
    messages: Any = [
        {"role": "user", "content": [{"type": "text", "text": "one two"}, {"type": "text", "text": "three"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "final question please"},
    ]
    message = await claude.messages.create(
        model="claude-test", max_tokens=100, system="You are terse.", messages=messages
    )
    assert message.id.startswith("msg_")
    assert message.model == "claude-test"
    assert message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Fake reply to: final question please tok1 tok2 tok3 tok4 tok5 tok6"
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (3 + 3 + 1 + 3, 12)


async def test_anthropic_message_max_tokens_truncates_with_max_tokens_stop_reason(clients: Clients) -> None:
    _, claude = clients
    message = await claude.messages.create(model="c", max_tokens=3, messages=ANTHROPIC_MESSAGES)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Fake reply to:"
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


async def test_anthropic_stream_emits_events_in_anthropic_order(clients: Clients) -> None:
    _, claude = clients
    stream = await claude.messages.create(model="c", max_tokens=50, messages=ANTHROPIC_MESSAGES, stream=True)
    events = [event async for event in stream]
    # The SDK swallows `ping`; everything else arrives in order.
    assert [event.type for event in events] == [name for name in ANTHROPIC_STREAM_EVENTS if name != "ping"]
    deltas = [
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    ]
    assert "".join(deltas) == EXPECTED_REPLY
    assert deltas[:2] == ["Fake", " reply"]


async def test_anthropic_stream_raw_sse_has_named_events_ping_and_usage(raw: httpx.AsyncClient) -> None:
    payload = {"model": "c", "max_tokens": 50, "messages": ANTHROPIC_MESSAGES, "stream": True}
    response = await raw.post("/v1/messages", json=payload, headers={"x-api-key": "k"})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert [name for name, _ in events] == ANTHROPIC_STREAM_EVENTS
    assert all(name == data["type"] for name, data in events)
    start = events[0][1]["message"]
    assert (start["content"], start["usage"]) == ([], {"input_tokens": 7, "output_tokens": 1})
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {"output_tokens": 12}


async def test_anthropic_stream_helper_accumulates_final_message(clients: Clients) -> None:
    _, claude = clients
    async with claude.messages.stream(model="c", max_tokens=6, messages=ANTHROPIC_MESSAGES) as stream:
        message = await stream.get_final_message()
    assert message.content[0].type == "text"
    assert message.content[0].text == "Fake reply to: hello there how"
    assert message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 6)


async def test_anthropic_fail_429_retry_after_directive_sets_fractional_header(clients: Clients) -> None:
    _, claude = clients
    with pytest.raises(anthropic.RateLimitError) as caught:
        await claude.messages.create(
            model="fail-429-retry-after-0.1", max_tokens=5, messages=ANTHROPIC_MESSAGES
        )
    assert caught.value.response.headers["retry-after"] == "0.1"
    assert caught.value.response.headers["retry-after-ms"] == "100"
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "Injected failure: HTTP 429 for model 'fail-429-retry-after-0.1'.",
        },
    }


async def test_anthropic_fail_529_raises_overloaded_error(clients: Clients) -> None:
    _, claude = clients
    with pytest.raises(anthropic.OverloadedError) as caught:
        await claude.messages.create(model="claude-fail-529", max_tokens=5, messages=ANTHROPIC_MESSAGES)
    assert caught.value.status_code == 529
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert "retry-after" not in caught.value.response.headers


async def test_anthropic_fail_500_raises_internal_server_error_with_api_error(clients: Clients) -> None:
    _, claude = clients
    with pytest.raises(anthropic.InternalServerError) as caught:
        await claude.messages.create(model="fail-500", max_tokens=5, messages=ANTHROPIC_MESSAGES, stream=True)
    assert caught.value.status_code == 500
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "api_error"


async def test_anthropic_stream_cut_after_raises_remote_protocol_error_after_n_tokens(
    clients: Clients,
) -> None:
    _, claude = clients
    stream = await claude.messages.create(
        model="claude-cut-after-3", max_tokens=50, messages=ANTHROPIC_MESSAGES, stream=True
    )
    seen: list[str] = []
    # The cut comes after message_start, content_block_start and exactly 3 deltas, as the transport's
    # "incomplete chunked read". anthropic < 2.17 let that RemoteProtocolError escape; 2.17 wraps it in
    # APIConnectionError (raised from it). Either form must carry the same cause.
    with pytest.raises((*REMOTE_PROTOCOL_ERRORS, anthropic.APIConnectionError)) as caught:
        async for event in stream:
            seen.append(event.type)
    error = caught.value
    cause = error.__cause__ if isinstance(error, anthropic.APIConnectionError) else error
    assert isinstance(cause, REMOTE_PROTOCOL_ERRORS), repr(error)
    assert "incomplete chunked read" in str(cause)
    assert seen == ["message_start", "content_block_start", *["content_block_delta"] * 3]
