"""The response cache through the full stack: a hit after a miss is served without a queue hop or a
provider call, is free and recorded with the cost it saved; no answer crosses tenants or differing
parameters; a streamed hit replays the original chunking; Cache-Control is obeyed; identical concurrent
misses reach the provider once."""

import asyncio
import json
import uuid

import httpx
import pytest

from tests.e2e.conftest import ADMIN_KEY, Gateway


def _body(model: str = "fake-openai", **extra: object) -> dict[str, object]:
    # A unique prompt per test keeps tests independent of each other's cache entries.
    return {"model": model, "messages": [{"role": "user", "content": f"cache me {uuid.uuid4().hex[:8]}"}], **extra}


async def _post(http: httpx.AsyncClient, key: str, body: dict, **headers: str) -> httpx.Response:
    response = await http.post("/v1/chat/completions", json=body, headers={"X-API-Key": key, **headers})
    assert response.status_code == 200, response.text
    return response


async def test_cache_hit_after_miss_skips_the_provider(gateway: Gateway, http: httpx.AsyncClient,
                                                       tenant_key: str) -> None:
    body = _body()
    before = await gateway.fake_stats()
    miss = await _post(http, tenant_key, body)
    hit = await _post(http, tenant_key, body)
    after = await gateway.fake_stats()
    assert miss.headers["x-cache"] == "MISS" and hit.headers["x-cache"] == "HIT"
    assert hit.json()["choices"][0]["message"] == miss.json()["choices"][0]["message"]
    assert "x-gateway-job-id" not in hit.headers  # served by the API, no job, no queue hop
    assert after["fake-model"] - before.get("fake-model", 0) == 1


async def test_cache_never_crosses_tenants(http: httpx.AsyncClient, make_tenant) -> None:
    _, first = await make_tenant()
    _, second = await make_tenant()
    body = _body()
    await _post(http, first, body)
    assert (await _post(http, second, body)).headers["x-cache"] == "MISS"
    assert (await _post(http, second, body)).headers["x-cache"] == "HIT"


@pytest.mark.parametrize("change", [{"temperature": 0.3}, {"top_p": 0.5}, {"max_tokens": 5}, {"stop": ["x"]},
                                    {"seed": 7}, {"model": "fake-anthropic"}, {"presence_penalty": 0.1}])
async def test_cache_misses_when_any_parameter_differs(http: httpx.AsyncClient, tenant_key: str,
                                                       change: dict) -> None:
    body = _body(temperature=0.7)
    await _post(http, tenant_key, body)
    assert (await _post(http, tenant_key, {**body, **change})).headers["x-cache"] == "MISS"


async def test_cache_hit_ignores_stream_flag_and_user(http: httpx.AsyncClient, tenant_key: str) -> None:
    body = _body()
    await _post(http, tenant_key, body)
    assert (await _post(http, tenant_key, {**body, "user": "someone"})).headers["x-cache"] == "HIT"


async def _stream_chunks(http: httpx.AsyncClient, key: str, body: dict) -> tuple[str, list[str]]:
    chunks: list[str] = []
    async with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True},
                           headers={"X-API-Key": key}) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data:") and line != "data: [DONE]":
                choices = json.loads(line[5:])["choices"]
                if choices and choices[0]["delta"].get("content"):
                    chunks.append(choices[0]["delta"]["content"])
    return response.headers["x-cache"], chunks


async def test_cache_stream_hit_replays_original_chunking(http: httpx.AsyncClient, tenant_key: str) -> None:
    body = _body()
    first_status, first = await _stream_chunks(http, tenant_key, body)
    second_status, second = await _stream_chunks(http, tenant_key, body)
    assert (first_status, second_status) == ("MISS", "HIT")
    assert len(first) > 1 and second == first
    plain = await _post(http, tenant_key, body)  # the same entry serves a non-streamed request too
    assert plain.headers["x-cache"] == "HIT"
    assert plain.json()["choices"][0]["message"]["content"] == "".join(first)


async def test_cache_no_cache_skips_read_but_stores(gateway: Gateway, http: httpx.AsyncClient,
                                                    tenant_key: str) -> None:
    body = _body()
    await _post(http, tenant_key, body)
    before = await gateway.fake_stats()
    forced = await _post(http, tenant_key, body, **{"Cache-Control": "no-cache"})
    assert forced.headers["x-cache"] == "MISS"
    assert (await gateway.fake_stats())["fake-model"] - before.get("fake-model", 0) == 1


async def test_cache_no_store_skips_write(http: httpx.AsyncClient, tenant_key: str) -> None:
    body = _body()
    await _post(http, tenant_key, body, **{"Cache-Control": "no-store"})
    assert (await _post(http, tenant_key, body)).headers["x-cache"] == "MISS"


async def test_cache_custom_ttl_expires(http: httpx.AsyncClient, tenant_key: str) -> None:
    body = _body()
    await _post(http, tenant_key, body, **{"x-cache-ttl": "1"})
    assert (await _post(http, tenant_key, body)).headers["x-cache"] == "HIT"
    await asyncio.sleep(1.2)
    assert (await _post(http, tenant_key, body)).headers["x-cache"] == "MISS"


async def test_cache_rejects_bad_ttl_header(http: httpx.AsyncClient, tenant_key: str) -> None:
    response = await http.post("/v1/chat/completions", json=_body(),
                               headers={"X-API-Key": tenant_key, "x-cache-ttl": "soon"})
    assert response.status_code == 400 and "x-cache-ttl" in response.json()["error"]["message"]


async def test_cache_failed_answers_are_not_stored(http: httpx.AsyncClient, tenant_key: str) -> None:
    body = _body("reject-400")
    for _ in range(2):
        response = await http.post("/v1/chat/completions", json=body, headers={"X-API-Key": tenant_key})
        assert response.status_code == 400 and response.headers.get("x-cache") != "HIT"


async def test_cache_concurrent_identical_misses_call_provider_once(gateway: Gateway, http: httpx.AsyncClient,
                                                                    tenant_key: str) -> None:
    body = _body("slow-300")
    before = await gateway.fake_stats()
    responses = await asyncio.gather(*(
        http.post("/v1/chat/completions", json=body, headers={"X-API-Key": tenant_key}) for _ in range(10)
    ))
    after = await gateway.fake_stats()
    assert all(r.status_code == 200 for r in responses)
    assert len({r.json()["choices"][0]["message"]["content"] for r in responses}) == 1
    assert after["paced-slow-300"] - before.get("paced-slow-300", 0) == 1


async def test_cache_hit_is_free_and_recorded_with_saved_cost(http: httpx.AsyncClient, make_tenant) -> None:
    tenant_id, key = await make_tenant()
    body = _body("priced")
    miss = await http.post("/api/v1/completions", json=body, headers={"X-API-Key": key})
    hit = await http.post("/api/v1/completions", json=body, headers={"X-API-Key": key})
    assert miss.json()["cost_usd"] > 0 and hit.json()["cost_usd"] == 0
    assert float(hit.headers["x-gateway-saved-cost-usd"]) == pytest.approx(miss.json()["cost_usd"])
    report: dict = {}
    for _ in range(50):
        report = (await http.get(f"/api/v1/admin/tenants/{tenant_id}/usage", headers={"X-API-Key": ADMIN_KEY})).json()
        if report["totals"]["requests"] == 2:
            break
        await asyncio.sleep(0.1)
    totals = report["totals"]
    assert totals["requests"] == 2 and totals["cache_hits"] == 1
    assert totals["cost_usd"] == pytest.approx(miss.json()["cost_usd"])
    assert totals["saved_cost_usd"] == pytest.approx(miss.json()["cost_usd"])


async def test_cost_of_known_request_matches_price_table(http: httpx.AsyncClient, tenant_key: str) -> None:
    # "hello" is 1 prompt token at the fake; it answers 8 tokens. gpt-4o: $2.50/M in, $10/M out.
    body = {"model": "priced", "messages": [{"role": "user", "content": "hello"}]}
    response = await http.post("/api/v1/completions", json=body, headers={"X-API-Key": tenant_key,
                                                                          "Cache-Control": "no-cache"})
    usage = response.json()["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (1, 8)
    assert response.json()["cost_usd"] == pytest.approx(1 * 2.50e-6 + 8 * 10.00e-6, abs=1e-12)
