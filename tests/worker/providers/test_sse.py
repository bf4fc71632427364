"""The Server-Sent Events decoder both adapters read streams with (worker.providers.sse)."""

from collections.abc import AsyncIterator

import pytest

from worker.providers.sse import ServerSentEvent, SSEDecoder, aiter_events


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def every_split(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(body[:i], body[i:]) for i in range(len(body) + 1)]


def test_data_only_events_have_no_name() -> None:
    assert decode(b'data: {"a": 1}\n\ndata: {"b": 2}\n\n') == [
        ServerSentEvent(None, '{"a": 1}'),
        ServerSentEvent(None, '{"b": 2}'),
    ]


def test_named_events() -> None:
    body = b'event: message_start\ndata: {"type": "message_start"}\n\nevent: ping\ndata: {}\n\n'
    assert decode(body) == [
        ServerSentEvent("message_start", '{"type": "message_start"}'),
        ServerSentEvent("ping", "{}"),
    ]


def test_multi_line_data_is_joined_by_newlines() -> None:
    assert decode(b"data: {\ndata:  \"a\": 1\ndata: }\n\n") == [ServerSentEvent(None, '{\n "a": 1\n}')]


def test_only_one_space_after_the_colon_is_dropped() -> None:
    assert decode(b"data:x\n\ndata:  y\n\ndata:\n\n") == [
        ServerSentEvent(None, "x"),
        ServerSentEvent(None, " y"),
        ServerSentEvent(None, ""),
    ]


def test_comments_and_keep_alives_are_ignored() -> None:
    body = b": keep-alive\n\n:\n\ndata: a\n: between lines\ndata: b\n\n: OPENROUTER PROCESSING\n\n"
    assert decode(body) == [ServerSentEvent(None, "a\nb")]


def test_id_retry_and_unknown_fields_are_ignored() -> None:
    assert decode(b"id: 7\nretry: 1000\nfoo: bar\ndata: x\n\nid: 8\n\n") == [ServerSentEvent(None, "x")]


def test_done_sentinel_is_an_ordinary_data_event() -> None:
    assert decode(b"data: {}\n\ndata: [DONE]\n\n") == [ServerSentEvent(None, "{}"), ServerSentEvent(None, "[DONE]")]


def test_error_events_are_dispatched_with_or_without_data() -> None:
    body = b'event: error\ndata: {"type": "error", "error": {"message": "Overloaded"}}\n\nevent: error\n\n'
    assert decode(body) == [
        ServerSentEvent("error", '{"type": "error", "error": {"message": "Overloaded"}}'),
        ServerSentEvent("error", ""),
    ]


def test_blank_lines_without_fields_dispatch_nothing() -> None:
    assert decode(b"\n\n\r\n\r\n") == []


def test_the_event_name_does_not_leak_into_the_next_event() -> None:
    assert decode(b"event: a\ndata: 1\n\ndata: 2\n\n") == [ServerSentEvent("a", "1"), ServerSentEvent(None, "2")]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_any_line_ending(newline: bytes) -> None:
    body = newline.join([b"event: e", b"data: 1", b"data: 2", b"", b": c", b"data: 3", b"", b""])
    assert decode(body) == [ServerSentEvent("e", "1\n2"), ServerSentEvent(None, "3")]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_events_split_at_any_byte(newline: bytes) -> None:
    body = newline.join([b"event: e", b"data: {\"t\": \"h\xc3\xa9\"}", b"", b"data: [DONE]", b"", b""])
    expected = [ServerSentEvent("e", '{"t": "hé"}'), ServerSentEvent(None, "[DONE]")]
    for head, tail in every_split(body):
        assert decode(head, tail) == expected, (head, tail)


def test_crlf_split_between_chunks_is_one_line_ending() -> None:
    # "\r" ends one chunk and "\n" starts the next: one line ending, not an extra blank line.
    assert decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [ServerSentEvent(None, "a\nb")]


def test_byte_at_a_time() -> None:
    body = b"event: e\r\ndata: x\r\n\r\n"
    assert decode(*(body[i : i + 1] for i in range(len(body)))) == [ServerSentEvent("e", "x")]


def test_an_unfinished_event_at_the_end_is_dropped() -> None:
    assert decode(b"data: complete\n\ndata: cut") == [ServerSentEvent(None, "complete")]
    assert decode(b"data: complete\n\ndata: cut\n") == [ServerSentEvent(None, "complete")]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode(b"data: \xff\n\n") == [ServerSentEvent(None, "\ufffd")]


async def test_aiter_events_reads_an_async_body() -> None:
    async def body() -> AsyncIterator[bytes]:
        for chunk in (b"data: 1\n", b"\ndata: 2", b"\n\n: bye\n\n"):
            yield chunk

    assert [event async for event in aiter_events(body())] == [ServerSentEvent(None, "1"), ServerSentEvent(None, "2")]
