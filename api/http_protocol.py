"""The HTTP/1.1 protocol of `llm-gateway serve`: uvicorn's httptools protocol plus two limits it lacks.

Why: uvicorn's fast protocol (httptools, a C parser) accepts request heads of any size, and no uvicorn
protocol times out a client that never finishes its request head (uvicorn's keep-alive timer only runs
between requests), so one slow-loris client per connection could hold the server's connections forever.
uvicorn's pure-Python h11 protocol does bound the head size, but costs the API 0.2-0.3 ms of CPU per
request. `GatewayHttpProtocol` keeps httptools and adds:

- **Head size** (`MAX_HEADER_BYTES`): the request line and headers are counted as they arrive (the URL and
  each completed header from the parser callbacks; whole chunks received while a head is still open, which
  covers a single endless header line the parser would otherwise buffer). Past the limit the client gets
  431 `headers_too_large` and the connection is closed, before the app sees anything. The count is a lower
  bound of the real head size, so a head within the limit is never refused; a pipelined chunk that carries
  the end of one request and the start of the next is counted by callbacks only, so the refusal can come
  one read (at most 256 KiB) late.
- **Head read deadline** (`HEADER_READ_TIMEOUT_S`): a timer runs from the connection's opening to the end of
  its first request head, and from the first byte of each later request to the end of its head. When it
  fires, a client that has started a head gets 408 `request_timeout`; one that sent nothing is disconnected
  (an idle connection between requests is uvicorn's `timeout_keep_alive`, unchanged).

- **Connection cap** (`MAX_CONNECTIONS` per process): uvicorn holds every connection it accepts (its own
  `limit_concurrency` answers a plain-text 503 per request, and only once a request head has arrived). Past
  the cap a new connection is answered at once with 503 `too_many_connections` and `Retry-After: 1`, its
  write side is shut, and what the client sends is read and thrown away until it closes (at most
  `REFUSED_LINGER_S`), so the client reads the 503 instead of a reset. The refused connection no longer
  counts toward the cap.

Everything else is HttpToolsProtocol's; the extra cost per request is a few counters and a deadline
(`loop.time()`). The connection's one timer is not cancelled when a head completes: when it fires it checks
the head in progress, if any, and re-arms itself for that head's deadline, so busy keep-alive connections
see one timer per `HEADER_READ_TIMEOUT_S`, not a `call_later` and a `cancel` per request (about 1.8 us).

`serve` passes a class with the limits bound (`protocol_class`) in one process; `--workers N` passes
`GatewayHttpProtocol` itself, which uvicorn pickles by name into its spawned worker processes, where each
connection reads the limits from `shared.config.get_settings()` (the same environment)."""

import asyncio
import json
import logging
from typing import Any, ClassVar

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from shared.config import get_settings
from shared.metrics import CONNECTIONS_REFUSED

__all__ = ["GatewayHttpProtocol", "protocol_class"]

logger = logging.getLogger(__name__)

# Where the connection is in its current request (the parser callbacks move it along).
_IDLE, _HEAD, _BODY = 0, 1, 2
REFUSED_LINGER_S = 1.0
REFUSAL_LOG_EVERY_S = 10.0  # a connection flood logs one line per interval, with the count


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing; httptools re-raises it as the context of a
    `HttpParserCallbackError` from `feed_data`."""


class GatewayHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a request-head size limit (431), a head read deadline (408) and a connection
    cap (503)."""

    # None: read from `get_settings()` per connection (the multi-worker path); `protocol_class` binds them.
    max_header_bytes: ClassVar[int | None] = None
    header_read_timeout_s: ClassVar[float | None] = None
    max_connections: ClassVar[int | None] = None
    # Refusals since the last log line about them, and when that line was written (loop time).
    _refusals: ClassVar[int] = 0
    _refusals_logged_at: ClassVar[float] = float("-inf")

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if self.max_header_bytes is None or self.header_read_timeout_s is None or self.max_connections is None:
            settings = get_settings()
            self._max_head = settings.max_header_bytes
            self._head_timeout_s = settings.header_read_timeout_s
            self._max_connections = settings.max_connections
        else:
            self._max_head = self.max_header_bytes
            self._head_timeout_s = self.header_read_timeout_s
            self._max_connections = self.max_connections
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_deadline = 0.0  # loop time by which the current (or first) request head must be complete
        self._state = _IDLE
        self._messages = 0  # requests begun on this connection
        self._head_bytes = 0  # URL and completed headers of the current head (from the callbacks)
        self._head_chunks = 0  # bytes of the chunks received wholly inside the current head

    # Connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self._max_connections and len(self.server_state.connections) > self._max_connections:
            self._refuse_connection()
            return
        self._head_deadline = self.loop.time() + self._head_timeout_s
        self._head_timer = self.loop.call_at(self._head_deadline, self._on_head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """HttpToolsProtocol's, plus the 431 answer and the count of chunks that are all head."""
        if self._refused:
            return  # answered 503 already: the request is read and thrown away
        self._unset_keepalive_if_required()
        state, messages = self._state, self._messages
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse_large_head()
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # Still in a head that this whole chunk belongs to: it began before the chunk, or with it.
        if self._state == _HEAD and self._messages - messages == (state == _IDLE):
            self._head_chunks += len(data)
            if self._head_chunks > self._max_head:
                self._refuse_large_head()

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._state = _HEAD
        self._messages += 1
        self._head_bytes = self._head_chunks = 0
        if self._messages > 1:  # the first request keeps the deadline set on connection
            self._head_deadline = self.loop.time() + self._head_timeout_s
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(self._head_deadline, self._on_head_timeout)

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._head_bytes += len(url)
        if self._head_bytes > self._max_head:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        # HttpToolsProtocol.on_header, inlined (it runs once per header).
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._head_bytes > self._max_head:
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        self._state = _BODY  # the timer, if armed, finds no head in progress and lapses
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._state = _IDLE
        super().on_message_complete()

    # Limits
    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._state != _HEAD:
            if self._messages == 0:  # connected and sent nothing
                self.transport.close()
            return  # the head was completed: the next request's first byte arms a timer again
        remaining = self._head_deadline - self.loop.time()
        if remaining > 0.001:  # a later request's head, begun after this timer was armed
            self._head_timer = self.loop.call_later(remaining, self._on_head_timeout)
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request's head is slow while the previous response is still being sent:
            # close the connection once that response is complete.
            self.cycle.keep_alive = False
            return
        logger.info("request head from %s not received within %gs: 408", self._peer(), self._head_timeout_s)
        self._send_error(408, f"Request headers not received within {self._head_timeout_s:g} seconds",
                         "request_timeout")

    def _refuse_large_head(self) -> None:
        self._cancel_head_timer()
        logger.info("request head from %s larger than %d bytes: 431", self._peer(), self._max_head)
        self._send_error(431, f"Request headers exceed the limit of {self._max_head} bytes", "headers_too_large")

    def _refuse_connection(self) -> None:
        self._refused = True
        self.server_state.connections.discard(self)
        CONNECTIONS_REFUSED.inc()
        self._log_refusal()
        self._send_error(503, f"The server has {self._max_connections} connections open; retry shortly",
                         "too_many_connections", kind="service_unavailable", extra=b"retry-after: 1\r\n",
                         close=False)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(REFUSED_LINGER_S, self.transport.close)

    def _log_refusal(self) -> None:
        cls = GatewayHttpProtocol
        cls._refusals += 1
        now = self.loop.time()
        if now - cls._refusals_logged_at >= REFUSAL_LOG_EVERY_S:
            logger.warning("MAX_CONNECTIONS (%d) reached: refused %d connection(s) with 503",
                           self._max_connections, cls._refusals)
            cls._refusals, cls._refusals_logged_at = 0, now

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "unknown client"

    def _send_error(self, status: int, message: str, code: str, *, kind: str = "invalid_request_error",
                    extra: bytes = b"", close: bool = True) -> None:
        """An OpenAI-shaped error answer (`extra`: more header lines), then the connection is closed (as
        `send_400_response` does) unless the caller closes it."""
        body = json.dumps({"error": {"message": message, "type": kind, "code": code,
                                     "param": None}}, separators=(",", ":")).encode()
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend([b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body), extra,
                        b"connection: close\r\n\r\n", body])
        self.transport.write(b"".join(content))
        if close:
            self.transport.close()


def protocol_class(max_header_bytes: int, header_read_timeout_s: float,
                   max_connections: int = 0) -> type[GatewayHttpProtocol]:
    """A `GatewayHttpProtocol` with these limits, for `uvicorn.run(..., http=...)` in one process (it cannot be
    pickled by name, so not for `workers > 1`: pass `GatewayHttpProtocol` there)."""
    return type("BoundGatewayHttpProtocol", (GatewayHttpProtocol,),
                {"max_header_bytes": max_header_bytes, "header_read_timeout_s": header_read_timeout_s,
                 "max_connections": max_connections, "__module__": __name__})
