"""`api.body` on raw ASGI messages: what a client that disconnects mid-body gets, and how much of an
oversized body is drained before the 413 (the rest of the limits run over HTTP in tests/security)."""

from collections.abc import Awaitable, Callable
from types import SimpleNamespace

import pytest
from fastapi import Request

from api.body import DRAIN_FACTOR, DRAIN_MAX_BYTES, drain_limit, read_json_object
from shared.errors import GatewayError

LIMIT = 1024
Message = dict[str, object]


def _request(chunks: list[bytes], *, disconnect: bool, headers: list[tuple[bytes, bytes]]) -> tuple[Request, list[int]]:
    """A request whose body arrives in `chunks` (then a disconnect, if asked), and the list of chunks read."""
    read: list[int] = []

    async def receive() -> Message:
        if len(read) < len(chunks):
            read.append(len(chunks[len(read)]))
            return {"type": "http.request", "body": chunks[len(read) - 1], "more_body": disconnect or
                    len(read) < len(chunks)}
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b"",
             "app": SimpleNamespace(state=SimpleNamespace())}  # no gateway state: default settings
    return Request(scope, receive), read


async def _refusal(call: Callable[[], Awaitable[object]]) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await call()
    return caught.value


async def test_read_json_object_client_disconnect_mid_body_is_a_4xx_not_a_500() -> None:
    request, _ = _request([b'{"model": '], disconnect=True, headers=[])
    error = await _refusal(lambda: read_json_object(request, LIMIT))
    assert error.status == 400 and error.code == "client_disconnected"


async def test_read_json_object_drains_an_oversized_declared_body_before_413() -> None:
    chunks = [b"x" * LIMIT] * 4
    request, read = _request(chunks, disconnect=False, headers=[(b"content-length", str(4 * LIMIT).encode())])
    error = await _refusal(lambda: read_json_object(request, LIMIT))
    assert error.status == 413 and read == [LIMIT] * 4  # every byte read, so the close is not a reset


async def test_read_json_object_drains_an_oversized_chunked_body_up_to_its_budget() -> None:
    chunks = [b"x" * LIMIT] * (DRAIN_FACTOR * 3)
    request, read = _request(chunks, disconnect=False, headers=[])
    error = await _refusal(lambda: read_json_object(request, LIMIT))
    assert error.status == 413 and DRAIN_FACTOR <= len(read) <= DRAIN_FACTOR + 1  # then it stops reading


async def test_read_json_object_answers_a_far_too_large_declared_body_without_reading_it() -> None:
    declared = str(DRAIN_FACTOR * LIMIT + 1).encode()
    request, read = _request([b"x" * LIMIT], disconnect=False, headers=[(b"content-length", declared)])
    error = await _refusal(lambda: read_json_object(request, LIMIT))
    assert error.status == 413 and read == []


async def test_read_json_object_does_not_drain_a_body_sent_only_after_100_continue() -> None:
    headers = [(b"content-length", str(2 * LIMIT).encode()), (b"expect", b"100-continue")]
    request, read = _request([b"x" * LIMIT] * 2, disconnect=False, headers=headers)
    error = await _refusal(lambda: read_json_object(request, LIMIT))
    assert error.status == 413 and read == []


async def test_read_json_object_refuses_a_body_whose_last_chunk_crosses_the_limit_with_413() -> None:
    request, read = _request([b"x" * 600, b"x" * 600], disconnect=False, headers=[])  # no Content-Length
    error = await _refusal(lambda: read_json_object(request, LIMIT))
    assert error.status == 413 and read == [600, 600]


@pytest.mark.parametrize("declared", ["²".encode("latin-1"), b"9" * 5000, b"-1", b"1e3", b" 12"])
async def test_read_json_object_ignores_a_content_length_that_is_not_ascii_digits(declared: bytes) -> None:
    """'²'.isdigit() is True and int('²') raises; 5,000 digits pass isdigit() and int() refuses them: both
    were 500s. A length that is no number is ignored and the body read within the limit as it comes."""
    request, _ = _request([b'{"model": "m"}'], disconnect=False, headers=[(b"content-length", declared)])
    assert await read_json_object(request, LIMIT) == {"model": "m"}


def test_drain_is_capped_for_a_limit_sized_for_vision_payloads() -> None:
    """8 times a 32 MiB limit would be 256 MiB read for nothing: the drain stops at 64 MiB."""
    assert drain_limit(1_000_000) == 8_000_000
    assert drain_limit(32 * 1024 * 1024) == DRAIN_MAX_BYTES == 64 * 1024 * 1024
    assert drain_limit(100 * 1024 * 1024) == 100 * 1024 * 1024  # never below the limit itself
