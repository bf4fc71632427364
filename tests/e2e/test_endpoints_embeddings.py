"""`POST /v1/embeddings` end to end with the official `openai` SDK: single, batch and token inputs, base64 (the
SDK's default, decoded by it) and float, `dimensions`, `user`; fallback past a failing and a chat-only target;
a chat-only route refused before admission; the cache; usage records with their cost."""

import asyncio
import base64
import math
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import openai
import pytest

from tests.e2e.conftest import E2E_DATABASE
from tests.e2e.endpoints_gateway import EndpointsGateway, endpoints_gateway  # noqa: F401 (fixture)
from tests.support.databases import tenant_usage_rows

SMALL_PRICE_PER_TOKEN = 0.02 / 1_000_000


@dataclass(frozen=True)
class Endpoints:
    gateway: EndpointsGateway
    tenant: tuple[str, str]  # (id, API key) of a new tenant


@pytest.fixture
async def ep(endpoints_gateway: EndpointsGateway, make_tenant: Callable[..., Any]) -> Endpoints:  # noqa: F811
    tenant_id, key = await make_tenant()
    return Endpoints(endpoints_gateway, (str(tenant_id), str(key)))


def sdk(gateway: EndpointsGateway, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.openai_url, api_key=key, max_retries=0)


async def usage_rows(tenant_id: str, count: int) -> list[asyncpg.Record]:
    return await tenant_usage_rows(E2E_DATABASE, tenant_id, count)


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(value * value for value in vector))


async def test_embeddings_single_input_base64_by_default(ep: Endpoints) -> None:
    gw, tenant_id, key = ep.gateway, *ep.tenant
    result = await sdk(gw, key).embeddings.create(model="ep-embed", input="hello embeddings world")
    assert len(result.data) == 1 and len(result.data[0].embedding) == 1536
    assert abs(norm(result.data[0].embedding) - 1.0) < 1e-3
    assert result.usage.prompt_tokens == 3 and result.usage.total_tokens == 3
    sent = gw.upstream_requests("text-embedding-3-small")[-1]["body"]
    assert sent["encoding_format"] == "base64" and sent["input"] == "hello embeddings world"
    rows = await usage_rows(tenant_id, 1)
    assert rows[0]["prompt_tokens"] == 3 and rows[0]["completion_tokens"] == 0
    assert float(rows[0]["cost_usd"]) == pytest.approx(3 * SMALL_PRICE_PER_TOKEN)
    assert rows[0]["provider"] == "openai" and rows[0]["model"] == "text-embedding-3-small"
    assert rows[0]["endpoint"] == "embeddings"


async def test_embeddings_batch_float_with_dimensions_and_user(ep: Endpoints) -> None:
    gw, _, key = ep.gateway, *ep.tenant
    texts = ["first text here", "second", "third one"]
    result = await sdk(gw, key).embeddings.create(
        model="ep-embed", input=texts, dimensions=64, encoding_format="float", user="end-user-7")
    assert [item.index for item in result.data] == [0, 1, 2]
    assert all(len(item.embedding) == 64 for item in result.data)
    assert result.data[0].embedding != result.data[1].embedding
    assert result.usage.prompt_tokens == 6
    sent = gw.upstream_requests("text-embedding-3-small")[-1]["body"]
    assert sent == {"model": "text-embedding-3-small", "input": texts, "dimensions": 64,
                    "encoding_format": "float", "user": "end-user-7"}


async def test_embeddings_base64_and_float_are_the_same_vector(ep: Endpoints) -> None:
    gw, _, key = ep.gateway, *ep.tenant
    headers = {"Authorization": f"Bearer {key}", "Cache-Control": "no-cache, no-store"}
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as http:
        raw = await http.post("/v1/embeddings", headers=headers, json={
            "model": "ep-embed", "input": "same words", "dimensions": 8, "encoding_format": "base64"})
        floats = await http.post("/v1/embeddings", headers=headers, json={
            "model": "ep-embed", "input": "same words", "dimensions": 8})
    assert raw.status_code == 200 and floats.status_code == 200, raw.text
    encoded = raw.json()["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = list(struct.unpack("<8f", base64.b64decode(encoded)))
    assert decoded == pytest.approx(floats.json()["data"][0]["embedding"])
    assert raw.headers["x-gateway-provider"] == "openai"


async def test_embeddings_token_arrays_are_forwarded(ep: Endpoints) -> None:
    gw, _, key = ep.gateway, *ep.tenant
    result = await sdk(gw, key).embeddings.create(model="ep-embed", input=[[1, 2, 3], [4, 5]])
    assert len(result.data) == 2 and result.usage.prompt_tokens == 5
    assert gw.upstream_requests("text-embedding-3-small")[-1]["body"]["input"] == [[1, 2, 3], [4, 5]]


async def test_embeddings_fall_back_past_failing_and_chat_only_targets(ep: Endpoints) -> None:
    gw, tenant_id, key = ep.gateway, *ep.tenant
    response = await sdk(gw, key).embeddings.with_raw_response.create(
        model="ep-embed-fallback", input="fall back please")
    result = response.parse()
    assert response.headers["x-gateway-fallback"] == "true"
    assert response.headers["x-gateway-model"] == "text-embedding-3-large"
    assert len(result.data[0].embedding) == 1536
    assert gw.upstream_requests("emb-first-fail-503")
    assert not gw.upstream_requests("ep-claude")
    rows = await usage_rows(tenant_id, 1)
    assert rows[0]["fallback_used"] is True
    assert float(rows[0]["cost_usd"]) == pytest.approx(3 * 0.13 / 1_000_000)


async def test_embeddings_refused_for_a_chat_only_route(ep: Endpoints) -> None:
    gw, tenant_id, key = ep.gateway, *ep.tenant
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk(gw, key).embeddings.create(model="ep-chat-only", input="no vectors here")
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "unsupported_endpoint"
    assert "ep-chat-only" in error["message"] and "embeddings" in error["message"]
    assert not gw.upstream_requests("ep-chat")
    await asyncio.sleep(0.5)
    assert await usage_rows(tenant_id, 0) == []


async def test_embeddings_invalid_input_is_a_400_naming_it(ep: Endpoints) -> None:
    gw, _, key = ep.gateway, *ep.tenant
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as http:
        for body, field in (({"model": "ep-embed", "input": []}, "'input'"),
                            ({"model": "ep-embed", "input": "x", "encoding_format": "int8"}, "'encoding_format'"),
                            ({"model": "ep-embed", "input": "x", "dimensions": 0}, "'dimensions'")):
            response = await http.post("/v1/embeddings", json=body, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 400, response.text
            assert field in response.json()["error"]["message"]
            assert response.json()["error"]["type"] == "invalid_request_error"


async def test_embeddings_cache_hit_is_free_and_identical(ep: Endpoints) -> None:
    gw, tenant_id, key = ep.gateway, *ep.tenant
    headers = {"Authorization": f"Bearer {key}", "x-cache-ttl": "60"}
    body = {"model": "ep-embed", "input": ["cache me", "twice"], "dimensions": 16}
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as http:
        first = await http.post("/v1/embeddings", json=body, headers=headers)
        second = await http.post("/v1/embeddings", json=body, headers=headers)
    assert first.headers["x-cache"] == "MISS" and second.headers["x-cache"] == "HIT"
    assert first.json()["data"] == second.json()["data"]
    rows = await usage_rows(tenant_id, 2)
    assert [(row["cache_hit"], row["endpoint"]) for row in rows] == [(False, "embeddings"), (True, "embeddings")]
    assert float(rows[1]["cost_usd"]) == 0.0
    assert float(rows[1]["saved_cost_usd"]) == pytest.approx(float(rows[0]["cost_usd"]))


async def test_embeddings_are_a_job_rate_limited_and_budgeted(endpoints_gateway: EndpointsGateway,  # noqa: F811
                                                              make_tenant: Callable[..., Any]) -> None:
    """Through the queue (a job a worker ran, readable at /api/v1/jobs), and admitted like a completion: the
    tenant's requests per minute and its budget refuse an embedding before any provider call."""
    _, limited = await make_tenant(rate_limit=1)
    _, spent = await make_tenant(budget_usd=0)
    text = f"limit me {uuid.uuid4().hex}"
    raw = await sdk(endpoints_gateway, limited).embeddings.with_raw_response.create(model="ep-embed", input=text)
    async with httpx.AsyncClient(base_url=endpoints_gateway.base_url, timeout=10) as http:
        job = (await http.get(f"/api/v1/jobs/{raw.headers['x-gateway-job-id']}",
                              headers={"X-API-Key": limited})).json()
    assert job["status"] == "succeeded" and job["served_model"] == "text-embedding-3-small"
    with pytest.raises(openai.RateLimitError) as throttled:
        await sdk(endpoints_gateway, limited).embeddings.create(model="ep-embed", input=text)
    assert throttled.value.code == "requests_limit_exceeded"
    with pytest.raises(openai.APIStatusError) as broke:
        await sdk(endpoints_gateway, spent).embeddings.create(model="ep-embed", input=text)
    assert broke.value.status_code == 402 and broke.value.code == "budget_exceeded"
    sent = [entry for entry in endpoints_gateway.upstream_requests("text-embedding-3-small")
            if entry["body"]["input"] == text]
    assert len(sent) == 1  # neither refusal reached the provider
