"""api.fast_routes: the hot completion routes answer exactly as their FastAPI routes do (status, headers, body,
error shape), without going through the router; the app falls back to FastAPI where the fast path would not
be the same, and refuses a fast route whose dependencies it would skip."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, Request, Response
from starlette.routing import Router

from api.deps import StateDep, TenantDep, TenantShardDep, get_state
from api.fast_routes import FastRouteError, GatewayApp, check_dependencies, declared_routes
from api.main import create_app
from api.wire_routes import OpenAIRoute
from shared.config import Settings
from tests.api.conftest import make_tenant_key

pytestmark = pytest.mark.usefixtures("clean_redis")
VOLATILE = {"date", "x-request-id"}


@asynccontextmanager
async def gateway(sqlite_url: str, redis_url: str) -> AsyncIterator[tuple[GatewayApp, httpx.AsyncClient]]:
    settings = Settings(_env_file=None, redis_url=redis_url, database_url=sqlite_url,  # type: ignore[call-arg]
                        api_metrics_port=0, request_timeout_s=1, max_body_bytes=2048)
    app = create_app(settings)
    assert isinstance(app, GatewayApp)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield app, client


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE}
    return response.status_code, headers, response.json()


def _cases(key: str) -> list[tuple[str, dict[str, str], bytes]]:
    auth = {"x-api-key": key, "content-type": "application/json"}
    return [
        ("/v1/chat/completions", {}, b"{}"),  # no key
        ("/v1/messages", {}, b"{}"),
        ("/v1/messages", {"x-api-key": "nope"}, b"{}"),
        ("/v1/chat/completions", {"authorization": "Bearer llmgw_unknown"}, b"{}"),
        ("/v1/chat/completions", auth, b"{not json"),
        ("/v1/messages", auth, b"[1, 2]"),
        ("/v1/messages", auth, b""),
        ("/v1/chat/completions", auth, b'{"model": "m", "messages": "no"}'),
        ("/v1/messages", auth, b'{"model": "m", "messages": [], "max_tokens": -1}'),
        ("/v1/chat/completions", auth, b"x" * 4096),  # over MAX_BODY_BYTES
        ("/v1/messages", {**auth, "content-length": "99999"}, b"x" * 4096),
    ]


async def test_fast_answers_equal_the_fastapi_routes(sqlite_url: str, clean_redis: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    key = await make_tenant_key(sqlite_url)
    async with gateway(sqlite_url, clean_redis) as (app, client):
        for path, headers, body in _cases(key):
            fast = await client.post(path, headers=headers, content=body)
            app.dependency_overrides[get_state] = get_state  # any override sends requests through FastAPI
            slow = await client.post(path, headers=headers, content=body)
            app.dependency_overrides.clear()
            assert _answer(fast) == _answer(slow), (path, headers, body[:40])
            assert fast.status_code in (400, 401, 413), fast.text
            assert ("type" in fast.json() and fast.json()["type"] == "error") is (path == "/v1/messages")
            assert fast.headers["x-request-id"]


async def test_fast_path_skips_the_router(sqlite_url: str, clean_redis: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hot route never reaches the router; another path or method on it does (405, 404 from FastAPI)."""
    calls: list[str] = []
    original = Router.__call__

    async def spy(self: Router, scope: Any, receive: Any, send: Any) -> None:
        calls.append(f"{scope['method']} {scope['path']}")
        await original(self, scope, receive, send)

    monkeypatch.setattr(Router, "__call__", spy)
    async with gateway(sqlite_url, clean_redis) as (_, client):
        answer = await client.post("/v1/chat/completions", json={}, headers={"x-request-id": "req-fast-1"})
        assert answer.status_code == 401 and answer.headers["x-request-id"] == "req-fast-1"
        assert calls == []
        assert (await client.get("/v1/chat/completions")).status_code == 405
        assert (await client.post("/v1/chat/completions/")).status_code in (307, 404)
        assert calls[0] == "GET /v1/chat/completions"


async def test_a_timed_out_job_answers_the_same_with_its_headers(sqlite_url: str, clean_redis: str) -> None:
    """No worker runs: the job times out after submission, so the error carries the rate-limit headers."""
    key = await make_tenant_key(sqlite_url)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with gateway(sqlite_url, clean_redis) as (app, client):
        fast = await client.post("/v1/chat/completions", json=body, headers={"x-api-key": key})
        app.dependency_overrides[get_state] = get_state
        slow = await client.post("/v1/chat/completions", json=body, headers={"x-api-key": key})
    assert fast.status_code == slow.status_code and fast.status_code >= 400
    assert set(fast.headers) == set(slow.headers)
    assert fast.json()["error"]["code"] == slow.json()["error"]["code"]


def test_a_route_with_other_dependencies_is_refused() -> None:
    router = APIRouter(route_class=OpenAIRoute)

    async def extra() -> int:
        return 1

    @router.post("/v1/chat/completions")
    async def endpoint(request: Request, state: StateDep, shard: TenantShardDep, tenant: TenantDep,
                       n: int = Depends(extra)) -> Response:
        raise AssertionError

    with pytest.raises(FastRouteError):
        check_dependencies(next(declared_routes(router.routes, [])))


def test_the_hot_routes_are_found_and_documented(tmp_path: Path) -> None:
    app = create_app(Settings(_env_file=None))
    routes = {route.path: route for route in declared_routes(app.router.routes, [])}
    for path in ("/v1/chat/completions", "/v1/messages"):
        check_dependencies(routes[path])  # what the fast path serves is what FastAPI declares
        operation = app.openapi()["paths"][path]["post"]
        assert operation["requestBody"]["content"]["application/json"]["schema"]
        assert "400" in operation["responses"] and "422" not in operation["responses"]
