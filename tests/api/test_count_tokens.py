"""`POST /v1/messages/count_tokens` in-process (real Redis database 3, a SQLite file, no worker): a route served
by OpenAI is counted with tiktoken and says so; bad bodies are 400 in Anthropic's error shape; an unknown model
is 404; the request counts against the tenant's request rate, and costs nothing else."""

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio
from prometheus_client import REGISTRY

from shared.keys import job_key
from tests.api.conftest import create_tenant_via_admin, routed_app_client

ADMIN = {"X-API-Key": "count-admin-key"}
ROUTES = """models:
  gpt-route:
    - {provider: openai, model: gpt-4o}
  legacy-route:
    - {provider: openai, model: gpt-4}
  claude-then-gpt:
    - {provider: anthropic, model: claude-sonnet-4-5}
    - {provider: openai, model: gpt-4o}
"""
URL = "/v1/messages/count_tokens"
HELLO = {"messages": [{"role": "user", "content": "Hello, world"}]}


@pytest.fixture
async def http(clean_redis: str, sqlite_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with routed_app_client(ROUTES, tmp_path, redis_url=clean_redis, database_url=sqlite_url,
                                 admin_api_key=ADMIN["X-API-Key"], request_timeout_s=1) as client:
        yield client


async def _tenant(http: httpx.AsyncClient, **limits: object) -> dict[str, str]:
    tenant = await create_tenant_via_admin(http, ADMIN, "counter", **limits)
    return {"X-API-Key": tenant["api_key"], "anthropic-version": "2023-06-01"}


def _anthropic_error(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == kind, body
    return str(body["error"]["message"])


async def test_count_tokens_on_openai_route_is_tiktoken(http: httpx.AsyncClient) -> None:
    auth = await _tenant(http)
    response = await http.post(URL, json={"model": "gpt-route", **HELLO}, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json() == {"input_tokens": 3 + 3 + 1 + 3}
    assert response.headers["x-gateway-token-counter"] == "tiktoken/o200k_base"
    assert response.headers["x-gateway-provider"] == "openai" and response.headers["x-gateway-model"] == "gpt-4o"


async def test_count_tokens_uses_the_target_models_encoding(http: httpx.AsyncClient) -> None:
    auth = await _tenant(http)
    response = await http.post(URL, json={"model": "legacy-route", **HELLO}, headers=auth)
    assert response.headers["x-gateway-token-counter"] == "tiktoken/cl100k_base"


async def test_count_tokens_counts_system_tools_and_schema(http: httpx.AsyncClient) -> None:
    auth = await _tenant(http)
    plain = (await http.post(URL, json={"model": "gpt-route", **HELLO}, headers=auth)).json()["input_tokens"]
    tool = {"name": "get_weather", "description": "Weather", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}}}
    fuller = {"model": "gpt-route", **HELLO, "system": "Be brief.", "tools": [tool],
              "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}}
    response = await http.post(URL, json=fuller, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["input_tokens"] > plain + 3 + 1 + 3 + 12


async def test_count_tokens_on_anthropic_route_is_a_count_tokens_job(http: httpx.AsyncClient,
                                                                     raw: redis.asyncio.Redis) -> None:
    """No worker runs here: the request waits for its job until REQUEST_TIMEOUT_S (504), and the job it
    queued is a count_tokens job holding the parsed request, never a chat job."""
    auth = await _tenant(http)
    response = await http.post(URL, json={"model": "claude-then-gpt", **HELLO, "system": "Be brief."},
                               headers=auth)
    _anthropic_error(response, 504, "api_error")
    keys = [key async for key in raw.scan_iter(match=job_key("*"))]
    assert len(keys) == 1
    request = json.loads(await raw.hget(keys[0], "request") or b"{}")
    assert request["endpoint"] == "count_tokens"
    assert request["request"]["model"] == "claude-then-gpt" and request["request"].get("max_tokens") is None


async def test_count_tokens_unknown_model_is_404(http: httpx.AsyncClient) -> None:
    auth = await _tenant(http)
    response = await http.post(URL, json={"model": "no-such-model", **HELLO}, headers=auth)
    assert "no-such-model" in _anthropic_error(response, 404, "not_found_error")


@pytest.mark.parametrize(("body", "named"), [
    ({"model": "gpt-route", **HELLO, "max_tokens": 10}, "max_tokens"),
    ({"model": "gpt-route", **HELLO, "stream": True}, "stream"),
    ({"model": "gpt-route"}, "messages"),
    ({"messages": HELLO["messages"]}, "model"),
    ({"model": "gpt-route", "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"model": "gpt-route", "messages": "hi"}, "messages"),
])
async def test_count_tokens_bad_body_is_400_in_anthropic_shape(http: httpx.AsyncClient, body: dict[str, object],
                                                               named: str) -> None:
    auth = await _tenant(http)
    response = await http.post(URL, json=body, headers=auth)
    assert named in _anthropic_error(response, 400, "invalid_request_error")


async def test_count_tokens_not_json_is_400_in_anthropic_shape(http: httpx.AsyncClient) -> None:
    auth = await _tenant(http)
    response = await http.post(URL, content=b"{not json", headers={**auth, "content-type": "application/json"})
    _anthropic_error(response, 400, "invalid_request_error")


async def test_count_tokens_field_openai_cannot_take_is_400_unless_dropped(http: httpx.AsyncClient) -> None:
    auth = await _tenant(http)
    body = {"model": "gpt-route", **HELLO,
            "mcp_servers": [{"type": "url", "url": "https://mcp.example", "name": "x"}]}
    assert "mcp_servers" in _anthropic_error(await http.post(URL, json=body, headers=auth), 400,
                                             "invalid_request_error")
    allowed = await http.post(URL, json=body, headers={**auth, "x-gateway-drop-params": "mcp_servers"})
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-gateway-dropped-params"] == "mcp_servers"


async def test_count_tokens_needs_a_key(http: httpx.AsyncClient) -> None:
    response = await http.post(URL, json={"model": "gpt-route", **HELLO}, headers={"anthropic-version": "x"})
    _anthropic_error(response, 401, "authentication_error")


async def test_count_tokens_is_rate_limited_like_any_request(http: httpx.AsyncClient) -> None:
    auth = await _tenant(http, rate_limit=2)
    statuses = [(await http.post(URL, json={"model": "gpt-route", **HELLO}, headers=auth)).status_code
                for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = await http.post(URL, json={"model": "gpt-route", **HELLO}, headers=auth)
    _anthropic_error(refused, 429, "rate_limit_error")
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


async def test_count_tokens_is_not_billed(http: httpx.AsyncClient) -> None:
    """A tenant whose budget is spent can still count (Anthropic's endpoint is free too)."""
    auth = await _tenant(http, budget_usd=0.0)
    response = await http.post(URL, json={"model": "gpt-route", **HELLO}, headers=auth)
    assert response.status_code == 200, response.text


async def test_count_tokens_is_counted_under_its_endpoint_label(http: httpx.AsyncClient) -> None:
    auth = await _tenant(http)
    before = _count_requests()
    assert (await http.post(URL, json={"model": "gpt-route", **HELLO}, headers=auth)).status_code == 200
    assert _count_requests() == before + 1


def _count_requests() -> float:
    return sum(sample.value for metric in REGISTRY.collect() if metric.name == "llm_gateway_requests"
               for sample in metric.samples
               if sample.name.endswith("_total") and sample.labels.get("endpoint") == "count_tokens")
