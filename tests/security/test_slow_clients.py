"""Hostile clients against a real `llm-gateway serve` process (uvicorn, h11), over raw sockets: oversized
headers are refused with 400 and the server keeps answering; a body dribbled byte by byte, or headers sent
and the body never, get 408 after `BODY_READ_TIMEOUT_S` and the connection is closed; an idle keep-alive
connection is closed after `KEEP_ALIVE_TIMEOUT_S`.

Known gap (docs/SECURITY_FINDINGS.md): uvicorn has no timeout for an incomplete request head, so a client
that never finishes its headers holds a connection until it goes away; a reverse proxy must bound that."""

import socket
import time
from collections.abc import Callable

import httpx

from tests.e2e.conftest import Gateway
from tests.security.conftest import BODY_READ_TIMEOUT_S

BODY = b'{"model": "fake-openai", "messages": [{"role": "user", "content": "slow"}]}'


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


def test_oversized_headers_are_refused_and_server_keeps_serving(secure_gateway: Gateway) -> None:
    with _connect(secure_gateway) as sock:
        # 20 KiB of headers in one write, past MAX_HEADER_BYTES (16 KiB); the server reads it all, so its
        # close is orderly (a larger flood races the close and ends in a reset, which proves nothing more).
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: gw\r\n" + (b"X-Filler: " + b"a" * 10_000 + b"\r\n") * 2)
        answer = _read_until_closed(sock, 10)
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")), answer[:200]
    assert httpx.get(f"{secure_gateway.base_url}/health", timeout=10).status_code == 200


def test_headers_within_the_limit_are_served(secure_gateway: Gateway) -> None:
    response = httpx.get(f"{secure_gateway.base_url}/health", headers={"X-Filler": "a" * 8000}, timeout=10)
    assert response.status_code == 200


def test_dribbled_body_gets_408_and_connection_closed(secure_gateway: Gateway,
                                                      secure_tenant: Callable[..., tuple[str, str]]) -> None:
    _, key = secure_tenant()
    started = time.monotonic()
    with _connect(secure_gateway) as sock:
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
        secure_gateway: Gateway, secure_tenant: Callable[..., tuple[str, str]]) -> None:
    _, key = secure_tenant()
    started = time.monotonic()
    with _connect(secure_gateway) as sock:
        sock.sendall(_head(key, len(BODY)) + BODY[:10])
        answer = _read_until_closed(sock, BODY_READ_TIMEOUT_S + 5)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert BODY_READ_TIMEOUT_S - 0.5 < time.monotonic() - started < BODY_READ_TIMEOUT_S + 5


def test_idle_keep_alive_connection_is_closed(secure_gateway: Gateway) -> None:
    with _connect(secure_gateway) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
        started = time.monotonic()
        answer = _read_until_closed(sock, 10)  # KEEP_ALIVE_TIMEOUT_S=2 in the fixture
    assert answer.startswith(b"HTTP/1.1 200")
    assert time.monotonic() - started < 8
