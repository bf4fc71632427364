"""`api.http_protocol.GatewayHttpProtocol` in an in-process uvicorn server (both event loops `serve` may
use) with small limits, over raw sockets: the 431 head-size limit wherever the bytes of the head go (URL, a
header, one endless header line dribbled in pieces), no false refusals of pipelined requests, the 408 head
read deadline, the closing of a connection that sends nothing, and the connection cap's 503."""

import asyncio
import json
import pickle
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from api.http_protocol import GatewayHttpProtocol, protocol_class
from shared.config import get_settings
from tests.support.processes import free_port

MAX_HEAD = 4096
TIMEOUT_S = 0.5
MAX_CONNECTIONS = 3


async def _app(scope: dict[str, object], receive: object, send: object) -> None:
    """Answers `<path> <body length>` as text."""
    assert scope["type"] == "http"
    size = 0
    while True:
        message = await receive()  # type: ignore[operator]
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = f"{scope['path']} {size}".encode()
    await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    yield from _run_server(request.param, protocol_class(MAX_HEAD, TIMEOUT_S))


def _run_server(loop: str, protocol: type[GatewayHttpProtocol]) -> Iterator[tuple[str, int]]:
    port = free_port()
    config = uvicorn.Config(_app, host="127.0.0.1", port=port, loop=loop, lifespan="off", log_config=None,
                            http=protocol, timeout_keep_alive=5)
    instance = uvicorn.Server(config)
    instance.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # not the main thread
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    yield "127.0.0.1", port
    instance.should_exit = True
    thread.join(timeout=10)


def _read_until_closed(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    data = bytearray()
    while chunk := sock.recv(65536):  # TimeoutError if the server neither answers nor closes
        data.extend(chunk)
    return bytes(data)


def _read_first(sock: socket.socket, path: str) -> bytes:
    """One whole answer of `_app` on a keep-alive connection (head and body may come in separate reads)."""
    data = b""
    while not data.endswith(f"{path} 0".encode()):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def _error(answer: bytes) -> dict[str, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert b"content-type: application/json" in head.lower()
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error"
    return error  # type: ignore[no-any-return]


def _get(server: tuple[str, int], path: str = "/ok") -> bytes:
    with socket.create_connection(server, timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        return _read_until_closed(sock, 5)


def test_head_within_the_limit_is_served(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Filler: " + b"a" * (MAX_HEAD - 200) + b"\r\n"
                     b"Connection: close\r\n\r\n")
        assert _read_until_closed(sock, 5).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("head", [
    b"GET /ok HTTP/1.1\r\nHost: t\r\n" + b"X-Filler: aaaaaaaaaaaaaaaa\r\n" * 300 + b"\r\n",  # many headers
    b"GET /" + b"a" * (MAX_HEAD + 10) + b" HTTP/1.1\r\nHost: t\r\n\r\n",  # a long URL
    b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Filler: " + b"a" * (MAX_HEAD + 10),  # one unfinished header line
], ids=["many-headers", "long-url", "unfinished-line"])
def test_oversized_head_gets_431(server: tuple[str, int], head: bytes) -> None:
    with socket.create_connection(server, timeout=5) as sock:
        sock.sendall(head)
        answer = _read_until_closed(sock, 5)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer[:200]
    assert _error(answer)["code"] == "headers_too_large"
    assert _get(server).startswith(b"HTTP/1.1 200")


def test_endless_header_line_dribbled_in_pieces_gets_431(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Filler: ")
        answer = b""
        for _ in range(MAX_HEAD // 512 + 4):  # the parser buffers the line, no callback fires
            time.sleep(0.02)  # separate reads on the server
            try:
                sock.sendall(b"a" * 512)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = _read_until_closed(sock, 5)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


def test_pipelined_requests_with_large_bodies_are_not_refused(server: tuple[str, int]) -> None:
    body = b"x" * (4 * MAX_HEAD)
    one = b"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    last = b"POST /b HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with socket.create_connection(server, timeout=5) as sock:
        sock.sendall(one * 3 + last)
        answer = _read_until_closed(sock, 5)
    assert answer.count(b"HTTP/1.1 200") == 4, answer[:300]
    assert answer.count(f"/a {len(body)}".encode()) == 3
    assert answer.endswith(f"/b {len(body)}".encode())


def test_unfinished_head_gets_408_and_connection_closed(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: t\r\nX-Half")
        started = time.monotonic()
        answer = _read_until_closed(sock, 5)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert _error(answer)["code"] == "request_timeout"
    assert TIMEOUT_S - 0.1 < time.monotonic() - started < TIMEOUT_S + 1


def test_connection_that_sends_nothing_is_closed(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=5) as sock:
        started = time.monotonic()
        assert _read_until_closed(sock, 5) == b""
    assert time.monotonic() - started < TIMEOUT_S + 1


def test_head_deadline_restarts_with_each_request(server: tuple[str, int]) -> None:
    """A keep-alive connection idle longer than the head deadline (within `timeout_keep_alive`) still serves
    its next request; the deadline runs from that request's first byte."""
    with socket.create_connection(server, timeout=5) as sock:
        sock.sendall(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _read_first(sock, "/one").startswith(b"HTTP/1.1 200")
        time.sleep(TIMEOUT_S * 2)
        sock.sendall(b"GET /two HTTP/1.1\r\nHost: t\r\n")
        time.sleep(TIMEOUT_S / 2)
        sock.sendall(b"Connection: close\r\n\r\n")
        answer = _read_until_closed(sock, 5)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"/two 0")


def test_deadline_of_a_head_begun_while_the_previous_timer_runs(server: tuple[str, int]) -> None:
    """The timer armed for the first head is still pending when the second head begins: when it fires it
    re-arms itself for the second head's own deadline instead of refusing it early."""
    with socket.create_connection(server, timeout=5) as sock:
        sock.sendall(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _read_first(sock, "/one").startswith(b"HTTP/1.1 200")
        time.sleep(TIMEOUT_S * 0.6)
        sock.sendall(b"GET /two HTTP/1.1\r\nHost: t\r\n")
        started = time.monotonic()
        answer = _read_until_closed(sock, 5)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert TIMEOUT_S - 0.1 < time.monotonic() - started < TIMEOUT_S + 1


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def capped_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """A server that keeps at most MAX_CONNECTIONS connections (idle ones are closed after 5 s)."""
    yield from _run_server(request.param, protocol_class(MAX_HEAD, 5.0, MAX_CONNECTIONS))


def test_connection_past_the_cap_gets_503_and_a_freed_slot_is_reused(capped_server: tuple[str, int]) -> None:
    held = [socket.create_connection(capped_server, timeout=5) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.1)  # the server has accepted them
        for _ in range(3):
            with socket.create_connection(capped_server, timeout=5) as sock:
                # The request (with a body) is sent after the 503 was written: it is read and dropped, so the
                # client reads the answer, not a reset.
                sock.sendall(b"POST /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + b"a" * 100_000)
                answer = _read_until_closed(sock, 5)
            assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer[:200]
            head, _, body = answer.partition(b"\r\n\r\n")
            assert b"retry-after: 1\r\n" in head.lower() and b"connection: close" in head.lower()
            error = json.loads(body)["error"]
            assert (error["type"], error["code"]) == ("service_unavailable", "too_many_connections")
        held.pop().close()
        time.sleep(0.1)
        assert _get(capped_server).startswith(b"HTTP/1.1 200")  # refused connections do not hold slots
    finally:
        for sock in held:
            sock.close()


def test_unbound_class_reads_settings_and_pickles_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve --workers N` hands uvicorn's spawned processes `GatewayHttpProtocol` itself (pickled by name);
    there each connection takes the limits from the process's settings."""
    assert pickle.loads(pickle.dumps(GatewayHttpProtocol)) is GatewayHttpProtocol
    monkeypatch.setenv("MAX_HEADER_BYTES", "5000")
    monkeypatch.setenv("HEADER_READ_TIMEOUT_S", "3.5")
    monkeypatch.setenv("MAX_CONNECTIONS", "7")
    get_settings.cache_clear()
    try:
        config = uvicorn.Config(_app, http=GatewayHttpProtocol, lifespan="off", log_config=None)
        loop = asyncio.new_event_loop()  # its own: whether a current loop exists depends on the tests before
        try:
            protocol = GatewayHttpProtocol(config=config, server_state=uvicorn.server.ServerState(), app_state={},
                                           _loop=loop)
            assert (protocol._max_head, protocol._head_timeout_s, protocol._max_connections) == (5000, 3.5, 7)
        finally:
            loop.close()
    finally:
        get_settings.cache_clear()
