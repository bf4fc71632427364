"""Server-Sent Events decoding for both provider adapters.

Why this exists: the SDKs' own streams decode each event and then parse it into a pydantic model, which
profiling showed to be about a quarter of a worker's CPU on streams. The adapters instead open the request
through the SDK's `with_streaming_response` (so auth, base URL, timeouts and status-error mapping still come
from the SDK), read the raw body and decode the events here, handing each `data` payload straight to the
`shared.wire` translators. Neither SDK exposes its decoder publicly (OpenAI's lives only in the private
`openai._streaming`), so there is one decoder, written once, for both providers.

The decoder follows the WHATWG event-stream rules the adapters depend on: lines end in LF, CRLF or CR (also
when split across chunks), `data` lines accumulate joined by LF, `event` names the event, lines starting
with a colon are comments (keep-alives), `id`, `retry` and unknown fields are ignored, a blank line
dispatches, and an unfinished event at the end of the body is dropped. One departure: an event with a name
but no data is still dispatched, so that an `error` event without a payload is not lost. Lines are split as
bytes and decoded one by one, so a multi-byte UTF-8 character split across chunks is never cut.
"""

from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator
from typing import NamedTuple

__all__ = ["SSEDecoder", "ServerSentEvent", "aiter_events"]


class ServerSentEvent(NamedTuple):
    event: str | None
    """The `event:` name, None when the event had none."""
    data: str
    """The `data:` lines joined by LF; "" when the event had none."""


class SSEDecoder:
    """Incremental decoder: `feed` takes body bytes in chunks of any size and returns the events completed."""

    def __init__(self) -> None:
        self._pending = b""  # a line not yet terminated
        self._skip_lf = False  # the last chunk ended in CR: a LF starting the next one ends the same line
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        buffer = self._pending + chunk if self._pending else chunk
        lines = buffer.splitlines()  # bytes split on LF, CRLF and CR only
        last = buffer[-1:]
        if last == b"\n":
            self._pending = b""
        elif last == b"\r":
            self._pending = b""
            self._skip_lf = True
        else:
            self._pending = lines.pop()
        return list(self._lines(lines))

    def _lines(self, lines: Iterable[bytes]) -> Iterator[ServerSentEvent]:
        for line in lines:
            if not line:
                if self._data or self._event is not None:
                    data = b"\n".join(self._data).decode("utf-8", "replace")
                    yield ServerSentEvent(self._event, data)
                    self._event, self._data = None, []
                continue
            if line[:1] == b":":
                continue  # a comment: servers send these as keep-alives
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace") or None


async def aiter_events(chunks: AsyncIterable[bytes]) -> AsyncGenerator[ServerSentEvent, None]:
    """The events of a streamed body, as its chunks arrive."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
