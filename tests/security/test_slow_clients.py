"""Hostile clients against a real `llm-gateway serve --workers 2` process (uvicorn with httptools and
`api.http_protocol.GatewayHttpProtocol`, which the spawned workers get by name), over raw sockets: oversized
request heads get 431 and the server keeps answering; a head sent halfway and then stopped gets 408 after
`HEADER_READ_TIMEOUT_S`, a connection that sends nothing is closed; a body dribbled byte by byte, or headers
sent and the body never, get 408 after `BODY_READ_TIMEOUT_S` and the connection is closed; an idle
keep-alive connection is closed after `KEEP_ALIVE_TIMEOUT_S`; an oversized body gets its 413, not a reset.

The API process is this module's own, on `secure_gateway`'s Redis, database and worker, with
`HEADER_READ_TIMEOUT_S=1`."""

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Gateway
from tests.security.conftest import BODY_READ_TIMEOUT_S
from tests.support.processes import Process, free_port, wait_http

BODY = b'{"model": "fake-openai", "messages": [{"role": "user", "content": "slow"}]}'
HEADER_READ_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def slow_gateway(secure_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    port = free_port()
    multiproc_dir = tmp_path_factory.mktemp("slow-clients-metrics")
    env = {**secure_gateway.env, "HEADER_READ_TIMEOUT_S": str(HEADER_READ_TIMEOUT_S),
           "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir), "MAX_BODY_BYTES": "1000000"}
    log_dir = Path(secure_gateway.log_dir)
    api = Process("api-slow-clients", ["serve", "--port", str(port), "--workers", "2"], env, log_dir)
    gateway = Gateway(f"http://127.0.0.1:{port}", secure_gateway.fake_url, env, log_dir)
    try:
        wait_http(f"{gateway.base_url}/health", api)
        yield gateway
    finally:
        api.stop()


def _connect(gateway: Gateway) -> socket.socket:
    host, port = gateway.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_until_closed(sock: socket.socket, timeout_s: float) -> bytes:
    """Everything the server sends until it closes the connection; fails if it stays open past `timeout_s`."""
    sock.settimeout(timeout_s)
    data = bytearray()
    while True:
        chunk = sock.recv(65536)  # raises TimeoutError if the server neither answers nor closes
        if not chunk:
            return bytes(data)
        data.extend(chunk)


def _head(key: str, length: int) -> bytes:
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nX-API-Key: {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def test_oversized_headers_get_431_and_server_keeps_serving(slow_gateway: Gateway) -> None:
    for _ in range(4):  # both worker processes, most likely
        with _connect(slow_gateway) as sock:
            # 20 KiB of headers in one write, past MAX_HEADER_BYTES (16 KiB); the server reads it all, so its
            # close is orderly (a larger flood races the close and ends in a reset, which proves nothing more).
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: gw\r\n" + (b"X-Filler: " + b"a" * 10_000 + b"\r\n") * 2)
            answer = _read_until_closed(sock, 10)
        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer[:200]
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"connection: close" in head.lower()
        assert json.loads(body)["error"]["code"] == "headers_too_large"
    assert httpx.get(f"{slow_gateway.base_url}/health", timeout=10).status_code == 200


def test_headers_within_the_limit_are_served(slow_gateway: Gateway) -> None:
    response = httpx.get(f"{slow_gateway.base_url}/health", headers={"X-Filler": "a" * 8000}, timeout=10)
    assert response.status_code == 200


def test_unfinished_headers_get_408_and_connection_closed(slow_gateway: Gateway) -> None:
    with _connect(slow_gateway) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: gw\r\nX-Half: ")  # and nothing more
        started = time.monotonic()
        answer = _read_until_closed(sock, HEADER_READ_TIMEOUT_S + 5)
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"
    assert elapsed < HEADER_READ_TIMEOUT_S + 3
    assert httpx.get(f"{slow_gateway.base_url}/health", timeout=10).status_code == 200


def test_connection_that_sends_nothing_is_closed(slow_gateway: Gateway) -> None:
    with _connect(slow_gateway) as sock:
        started = time.monotonic()
        assert _read_until_closed(sock, HEADER_READ_TIMEOUT_S + 5) == b""
    assert time.monotonic() - started < HEADER_READ_TIMEOUT_S + 3


def test_dribbled_body_gets_408_and_connection_closed(slow_gateway: Gateway,
                                                      secure_tenant: Callable[..., tuple[str, str]]) -> None:
    _, key = secure_tenant()
    started = time.monotonic()
    with _connect(slow_gateway) as sock:
        sock.sendall(_head(key, len(BODY)))
        answer = b""
        for byte in BODY:  # one byte every 0.1 s: the whole body would take about 7 s
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.1)
            if time.monotonic() - started > BODY_READ_TIMEOUT_S + 1:
                break
        answer = _read_until_closed(sock, 5)
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b'"code":"request_timeout"' in answer
    assert elapsed < BODY_READ_TIMEOUT_S + 5


def test_headers_sent_body_never_gets_408_and_connection_closed(
        slow_gateway: Gateway, secure_tenant: Callable[..., tuple[str, str]]) -> None:
    _, key = secure_tenant()
    started = time.monotonic()
    with _connect(slow_gateway) as sock:
        sock.sendall(_head(key, len(BODY)) + BODY[:10])
        answer = _read_until_closed(sock, BODY_READ_TIMEOUT_S + 5)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert BODY_READ_TIMEOUT_S - 0.5 < time.monotonic() - started < BODY_READ_TIMEOUT_S + 5


def test_idle_keep_alive_connection_is_closed(slow_gateway: Gateway) -> None:
    with _connect(slow_gateway) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
        started = time.monotonic()
        answer = _read_until_closed(sock, 10)  # KEEP_ALIVE_TIMEOUT_S=2 in the fixture
    assert answer.startswith(b"HTTP/1.1 200")
    assert time.monotonic() - started < 8



@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_oversized_body_gets_its_413_not_a_reset(
        slow_gateway: Gateway, secure_tenant: Callable[..., tuple[str, str]], chunked: bool) -> None:
    """The server reads and discards a body a few times over MAX_BODY_BYTES (1 MB) before it answers and
    closes: closing on unread bytes makes the kernel reset the connection, and the client (the SDKs, httpx)
    then sees a connection error instead of the 413."""
    _, key = secure_tenant()
    body = json.dumps({"model": "fake-openai", "messages": [{"role": "user", "content": "x" * 3_000_000}]}).encode()
    if chunked:
        pieces = [body[i:i + 65536] for i in range(0, len(body), 65536)]
        request = _head(key, 0).replace(b"Content-Length: 0", b"Transfer-Encoding: chunked") + b"".join(
            b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
    else:
        request = _head(key, len(body)) + body
    for _ in range(3):
        with _connect(slow_gateway) as sock:
            sock.sendall(request)  # a reset would fail this, or the read below
            answer = _read_until_closed(sock, 10)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
        assert b'"code":"request_too_large"' in answer
