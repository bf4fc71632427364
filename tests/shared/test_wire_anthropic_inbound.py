"""shared.wire.anthropic inbound: `parse_request` reads a client's Messages body into a `ChatRequest` and
refuses, naming the field, what is invalid or unsupported."""

import pytest

from shared.errors import InvalidRequest
from shared.models import ChatRequest, Message
from shared.wire import anthropic as wire

BASE: dict[str, object] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "Hi"}],
}


def body(**changes: object) -> dict[str, object]:
    return {**BASE, **changes}


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
    assert request.system_text == "Be brief.\nBe kind."
    assert [(m.role, m.text) for m in request.messages] == [
        ("user", "a"),
        ("assistant", "ok"),
        ("assistant", "more"),
    ]
    assert (request.max_tokens, request.temperature, request.top_p) == (100, 1.0, 0.5)
    assert request.stop == ["END", "STOP"]
    assert (request.stream, request.include_usage, request.user) == (True, True, "u-1")


def test_parse_request_system_string_and_empty_metadata() -> None:
    request = wire.parse_request(body(system="S", metadata={}))
    assert (request.system_text, request.user) == ("S", None)


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
