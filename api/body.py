"""Reads a request's JSON body within the limits, so malformed, oversized or hostile input gets a clear 4xx in
the route's error shape instead of FastAPI's default validation errors or a worker tied up for ever.

Limits, all from `Settings`: the body's size (`MAX_BODY_BYTES`, counted as chunks arrive, so a chunked body
without `Content-Length` is cut off too), the time to send it (`BODY_READ_TIMEOUT_S`: a slow-loris client
dribbling its body gets 408) and the length of a completion's `messages` (`MAX_MESSAGES`). The 408 and 413
answers close the connection: the client is still sending a body we will not read, and keeping the socket
open would let it go on doing so.

Before a 413, a body up to `DRAIN_FACTOR` times the limit, and never more than `DRAIN_MAX_BYTES`, is read
and thrown away (within the body's read time): closing a socket with unread bytes makes the kernel reset the
connection, and the client, still sending, then sees "connection reset" instead of the 413 that says what
was wrong. Beyond that the answer is sent at once, and a client that keeps sending may see the reset. The cap
matters with a limit sized for vision payloads (32 MiB by default): 8 times that would be 256 MiB of input
read for nothing per refused request; a body twice the default limit is a client that misjudged the limit,
anything much larger is not worth reading."""

import asyncio
import re
from collections.abc import AsyncGenerator

from fastapi import Request
from starlette.requests import ClientDisconnect

from shared.config import Settings
from shared.errors import GatewayError, InvalidRequest, PayloadTooLarge
from shared.json_input import loads_strict

CLOSE = {"connection": "close"}
DRAIN_FACTOR = 8
DRAIN_MAX_BYTES = 64 * 1024 * 1024
# ASCII digits only (str.isdigit() also takes '²' (refused by int()) and Arabic-Indic digits (read as a number)),
# and few enough that int() never meets its 4,300-digit limit. Anything else is ignored: the body is then
# cut off as it arrives, like a body sent without a length.
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")


async def read_json_object(request: Request, max_bytes: int) -> dict[str, object]:
    settings = _settings(request)
    declared = request.headers.get("content-length")
    if declared is not None and _CONTENT_LENGTH.fullmatch(declared) and int(declared) > max_bytes:
        # A client that waits for "100 Continue" before sending its body sends nothing to drain: we never
        # started reading, so the server never sent the go-ahead.
        waits_to_send = request.headers.get("expect", "").lower() == "100-continue"
        if int(declared) <= drain_limit(max_bytes) and not waits_to_send:
            await _drain(request.stream(), settings.body_read_timeout_s)
        raise _closing(PayloadTooLarge(f"Request body of {declared} bytes exceeds the limit of {max_bytes} bytes"))
    body = await read_body(request, max_bytes, settings.body_read_timeout_s)
    if not body:
        raise InvalidRequest("Request body is empty; expected a JSON object")
    value = loads_strict(body)
    if not isinstance(value, dict):
        raise InvalidRequest("Request body must be a JSON object")
    messages = value.get("messages")
    if isinstance(messages, list) and len(messages) > settings.max_messages:
        raise InvalidRequest(f"'messages' has {len(messages)} items; at most {settings.max_messages} are allowed",
                             code="too_many_messages")
    return value


async def read_body(request: Request, max_bytes: int, timeout_s: float) -> bytes:
    """The raw body, at most `max_bytes` of it, sent within `timeout_s` seconds in all."""
    body = bytearray()
    chunks = request.stream()  # one iterator: Starlette refuses a second `stream()` once the body has ended
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in chunks:
                body.extend(chunk)
                if len(body) > max_bytes:
                    break
    except ClientDisconnect as exc:  # nobody will read the answer; it ends the request without a 500
        raise _closing(InvalidRequest("The client disconnected before sending the whole body",
                                      code="client_disconnected")) from exc
    except TimeoutError as exc:
        error = InvalidRequest(f"Request body not received within {timeout_s:g} seconds", status=408,
                               code="request_timeout")
        raise _closing(error) from exc
    if len(body) > max_bytes:
        await _drain(chunks, timeout_s, budget=drain_limit(max_bytes) - len(body))
        raise _closing(PayloadTooLarge(f"Request body exceeds the limit of {max_bytes} bytes"))
    return bytes(body)


def drain_limit(max_bytes: int) -> int:
    """The largest refused body read to its end before the 413 (see the module's docstring)."""
    return min(DRAIN_FACTOR * max_bytes, max(DRAIN_MAX_BYTES, max_bytes))


async def _drain(chunks: AsyncGenerator[bytes, None], timeout_s: float, budget: int | None = None) -> None:
    """Read and discard the rest of a refused body from `chunks`: all of it, or `budget` bytes, or what
    arrives within `timeout_s`, whichever ends first (see the module's docstring)."""
    seen = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in chunks:
                seen += len(chunk)
                if budget is not None and seen > budget:
                    return
    except (TimeoutError, ClientDisconnect):
        return
    finally:
        await chunks.aclose()


def _closing(error: GatewayError) -> GatewayError:
    error.headers = dict(CLOSE)
    return error


def _settings(request: Request) -> Settings:
    state = getattr(request.app.state, "gateway", None)
    settings = getattr(state, "settings", None)
    return settings if isinstance(settings, Settings) else Settings(_env_file=None)
