"""Request limits, in-process against real Redis (database 3) and a SQLite file: body size (with and without
`Content-Length`), message count and body read time, each refused with its 4xx in the route's error shape
(OpenAI's, Anthropic's on /v1/messages). Header size and slow clients on a real server: test_slow_clients.py."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.api.conftest import app_client, make_tenant_key

MAX_BODY = 4096
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
ROUTES = {"/v1/chat/completions": CHAT, "/api/v1/completions": CHAT, "/api/v1/jobs": CHAT,
          "/v1/messages": {**CHAT, "model": "claude-sonnet-4-5", "max_tokens": 5}}


@pytest.fixture
async def key(sqlite_url: str) -> str:
    return await make_tenant_key(sqlite_url)


@pytest.fixture
async def http(clean_redis: str, sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, max_body_bytes=MAX_BODY, max_messages=3,
                          body_read_timeout_s=0.5) as client:
        yield client


def assert_error_shape(route: str, response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    if route == "/v1/messages":
        assert body["type"] == "error" and body["error"]["code"] == code and body["error"]["message"]
    else:
        assert body["error"]["code"] == code and body["error"]["message"] and body["error"]["type"]


def oversized(route: str) -> dict[str, object]:
    return {**ROUTES[route], "messages": [{"role": "user", "content": "x" * (MAX_BODY + 10)}]}


@pytest.mark.parametrize("route", ROUTES)
async def test_body_limit_refuses_declared_length_with_413(http: httpx.AsyncClient, key: str, route: str) -> None:
    response = await http.post(route, json=oversized(route), headers={"X-API-Key": key})
    assert_error_shape(route, response, 413, "request_too_large")
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize("route", ROUTES)
async def test_body_limit_refuses_chunked_body_without_length_with_413(http: httpx.AsyncClient, key: str,
                                                                       route: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY // 512 + 2):
            yield b" " * 512

    response = await http.post(route, content=chunks(), headers={"X-API-Key": key})
    assert "content-length" not in response.request.headers
    assert_error_shape(route, response, 413, "request_too_large")


@pytest.mark.parametrize("route", ROUTES)
async def test_message_limit_refuses_too_many_messages_with_400(http: httpx.AsyncClient, key: str,
                                                                 route: str) -> None:
    body = {**ROUTES[route], "messages": [{"role": "user", "content": "hi"}] * 4}
    response = await http.post(route, json=body, headers={"X-API-Key": key})
    assert_error_shape(route, response, 400, "too_many_messages")
    assert "at most 3" in response.text


@pytest.mark.parametrize("route", ROUTES)
async def test_body_read_timeout_answers_408_to_a_slow_body(http: httpx.AsyncClient, key: str, route: str) -> None:
    async def dribble() -> AsyncIterator[bytes]:
        for byte in b'{"model": "gpt-4o", "messages": []}':
            await asyncio.sleep(0.1)
            yield bytes([byte])

    response = await asyncio.wait_for(http.post(route, content=dribble(), headers={"X-API-Key": key}), 5)
    assert_error_shape(route, response, 408, "request_timeout")
    assert response.headers["connection"] == "close"


async def test_body_limit_applies_to_admin_tenant_create(clean_redis: str, sqlite_url: str) -> None:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, max_body_bytes=MAX_BODY,
                          admin_api_key="limits-admin") as http:
        response = await http.post("/api/v1/admin/tenants", content=b" " * (MAX_BODY + 1),
                                   headers={"X-API-Key": "limits-admin"})
    assert response.status_code == 413, response.text
