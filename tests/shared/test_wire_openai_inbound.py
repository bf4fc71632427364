"""shared.wire.openai inbound: `parse_request` reads a client's Chat Completions body into a `ChatRequest`
and refuses, naming the field, what is invalid or unsupported."""

import pytest

from shared.errors import InvalidRequest
from shared.models import ChatRequest, Message
from shared.wire import openai as wire

BASE = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}


def body(**changes: object) -> dict[str, object]:
    return {**BASE, **changes}


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
    assert request.system == []
    assert [(m.role, m.text) for m in request.messages] == [
        ("system", "Be brief."),
        ("developer", "Be kind."),
        ("user", "ab"),
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
        (body(messages=[{"role": "bot", "content": "Hi"}]), "'messages[0].role'"),
        (body(messages=[{"role": "tool", "content": "Hi"}]), "'messages[0].tool_call_id'"),
        (body(messages=[{"role": "user"}]), "'messages[0].content'"),
        (body(messages=[{"role": "user", "content": None}]), "'messages[0].content'"),
        (body(messages=[{"role": "user", "content": 5}]), "'messages[0].content'"),
        (body(messages=[{"role": "user", "content": []}]), "'messages[0].content'"),
        (body(messages=[{"role": "user", "content": ["x"]}]), "'messages[0].content[0]'"),
        (body(messages=[{"role": "user", "content": [{"type": "text"}]}]), "'messages[0].content[0].text'"),
        (
            body(messages=[{"role": "user", "content": [{"type": "video", "video": {"url": "x"}}]}]),
            "'messages[0].content[0].type'",
        ),
        (
            body(messages=[{"role": "assistant", "content": "x", "tool_calls": [{"id": "1"}]}]),
            "'messages[0].tool_calls[0].function'",
        ),
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
        (body(n=0), "'n'"),
        (body(n="1"), "'n'"),
    ],
)
def test_parse_request_rejects_invalid_field(payload: object, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        wire.parse_request(payload)  # type: ignore[arg-type]
    assert field in caught.value.message
    assert caught.value.status == 400
