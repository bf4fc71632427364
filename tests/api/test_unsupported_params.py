"""The API's pre-check of what a route's targets can honour (api/submit.py), in-process on real Redis
(database 3, no worker) and a SQLite file: a request no target can honour with the drops allowed is refused
with 400 `unsupported_parameter` before admission, so it costs nothing; an admitted one names in
`x-gateway-dropped-params` what its first eligible target leaves out, and its job carries the client's
`x-gateway-drop-params`."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio

from api.submit import _with_headers_keyed
from shared.keys import job_key
from shared.wire import anthropic as anthropic_wire
from shared.wire._common import client_name
from tests.api.conftest import create_tenant_via_admin, routed_app_client

ADMIN = {"X-API-Key": "drop-admin-key"}
ROUTES = """models:
  claude-only:
    - {provider: anthropic, model: claude-sonnet-4-5}
  claude-then-gpt:
    - {provider: anthropic, model: claude-sonnet-4-5}
    - {provider: openai, model: gpt-4o}
  gpt-only:
    - {provider: openai, model: gpt-4o}
  lenient-claude:
    drop_params: [temperature]
    targets: [{provider: anthropic, model: claude-sonnet-4-5}]
"""
HOT = 1.5  # an OpenAI temperature Anthropic does not take (0..1)


@pytest.fixture
async def http(clean_redis: str, sqlite_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with routed_app_client(ROUTES, tmp_path, redis_url=clean_redis, database_url=sqlite_url,
                                 admin_api_key=ADMIN["X-API-Key"]) as client:
        yield client


async def _tenant(http: httpx.AsyncClient, **limits: object) -> dict[str, str]:
    tenant = await create_tenant_via_admin(http, ADMIN, "dropper", **limits)
    return {"X-API-Key": tenant["api_key"]}


def _body(model: str, **fields: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, **fields}


async def test_no_target_can_honour_it_is_400_and_costs_nothing(http: httpx.AsyncClient) -> None:
    auth = await _tenant(http, rate_limit=1)  # one request a minute: a refused one must not use it
    response = await http.post("/v1/chat/completions", json=_body("claude-only", temperature=HOT), headers=auth)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_parameter" and error["type"] == "invalid_request_error"
    assert "'temperature'" in error["message"] and "0 to 1" in error["message"]
    assert "x-gateway-drop-params" in error["message"]
    queued = await http.post("/api/v1/jobs", json=_body("claude-only"), headers=auth)
    assert queued.status_code == 202, queued.text


async def test_anthropic_client_gets_the_anthropic_error_shape(http: httpx.AsyncClient) -> None:
    auth = await _tenant(http)
    body = _body("gpt-only", stop_sequences=["a", "b", "c", "d", "e"])
    response = await http.post("/v1/messages", json=body, headers=auth)
    assert response.status_code == 400, response.text
    payload = response.json()
    assert payload["type"] == "error" and payload["error"]["code"] == "unsupported_parameter"
    # Named as this client knows it: `stop_sequences` once the Anthropic wire module sets the request's source.
    name = client_name("stop", anthropic_wire.parse_request(body).source)
    assert f"'{name}'" in payload["error"]["message"] and "at most 4" in payload["error"]["message"]


async def test_a_later_target_that_can_honour_it_admits_the_request(http: httpx.AsyncClient,
                                                                     raw: redis.asyncio.Redis) -> None:
    auth = await _tenant(http)
    response = await http.post("/api/v1/jobs", json=_body("claude-then-gpt", temperature=HOT), headers=auth)
    assert response.status_code == 202, response.text
    assert "x-gateway-dropped-params" not in response.headers  # the first eligible target, gpt-4o, drops nothing


async def test_client_header_allows_dropping_and_travels_in_the_job(http: httpx.AsyncClient,
                                                                    raw: redis.asyncio.Redis) -> None:
    auth = await _tenant(http)
    headers = {**auth, "x-gateway-drop-params": "seed, temperature"}
    response = await http.post("/api/v1/jobs", json=_body("claude-only", temperature=HOT), headers=headers)
    assert response.status_code == 202, response.text
    assert response.headers["x-gateway-dropped-params"] == "temperature"
    stored = await raw.hget(job_key(response.json()["id"]), "drop_params")
    assert stored == b"seed,temperature"


async def test_route_drop_params_allow_dropping(http: httpx.AsyncClient) -> None:
    auth = await _tenant(http)
    response = await http.post("/api/v1/jobs", json=_body("lenient-claude", temperature=HOT), headers=auth)
    assert response.status_code == 202, response.text
    assert response.headers["x-gateway-dropped-params"] == "temperature"


@pytest.mark.parametrize("value", ["se ed", "seed, x;y", ",".join(f"p{i}" for i in range(65))])
async def test_malformed_drop_header_is_400(http: httpx.AsyncClient, value: str) -> None:
    auth = await _tenant(http)
    response = await http.post("/api/v1/jobs", json=_body("gpt-only"),
                               headers={**auth, "x-gateway-drop-params": value})
    assert response.status_code == 400 and "x-gateway-drop-params" in response.json()["error"]["message"]


def test_allowed_drops_and_betas_are_part_of_the_cache_key() -> None:
    digest = "ab" * 32
    assert _with_headers_keyed(digest, [], []) == digest
    keys = {_with_headers_keyed(digest, drops, betas) for drops, betas in
            [(["seed"], []), (["seed", "top_k"], []), ([], ["seed"]), ([], ["files-api-2025-04-14"]),
             (["seed"], ["files-api-2025-04-14"])]}
    assert len(keys) == 5 and digest not in keys
    assert _with_headers_keyed(digest, [], ["b", "a"]) == _with_headers_keyed(digest, [], ["a", "b"])
