"""Tenant limits across several API processes: exactly N admitted per minute (requests and tokens), and
fifty concurrent requests against a budget that fits ten never overspend it."""

import asyncio
from collections import Counter
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import E2E_DATABASE, Gateway

JOB = {"model": "fake-openai", "messages": [{"role": "user", "content": "x"}], "max_tokens": 100}


@pytest.fixture(scope="module")
def api_urls(gateway: Gateway) -> Iterator[list[str]]:
    """The session's API process plus two more: limits must hold across all of them."""
    started = [gateway.start_api(f"api-{index}") for index in (2, 3)]
    try:
        yield [gateway.base_url, *(url for _, url in started)]
    finally:
        for process, _ in started:
            process.stop()


async def _burst(urls: list[str], key: str, path: str, body: dict, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=150)
    # Identical requests would share one answer through the cache; here each must be a request of its own.
    headers = {"X-API-Key": key, "Cache-Control": "no-cache, no-store"}
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(*(
            client.post(f"{urls[i % len(urls)]}{path}", json=body, headers=headers) for i in range(count)
        ))


async def test_rate_limit_admits_exactly_rpm_across_api_processes(api_urls: list[str], make_tenant) -> None:
    _, key = await make_tenant(rate_limit=100)
    responses = await _burst(api_urls, key, "/api/v1/jobs", JOB, 500)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {202: 100, 429: 400}
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.headers["x-ratelimit-limit-requests"] == "100"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    admitted = next(r for r in responses if r.status_code == 202)
    assert admitted.headers["x-ratelimit-limit-requests"] == "100"
    assert "x-ratelimit-reset-requests" in admitted.headers


async def test_token_limit_admits_exactly_tpm_across_api_processes(api_urls: list[str], make_tenant) -> None:
    # Each request is charged 5 estimated prompt tokens + max_tokens 100 = 105 at admission. The jobs take 3 s,
    # so none settles (and refunds its unused tokens) during the burst.
    _, key = await make_tenant(rate_limit=10_000, tpm_limit=1000)
    responses = await _burst(api_urls, key, "/api/v1/jobs", {**JOB, "model": "slow-3000"}, 60)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {202: 9, 429: 51}
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "tokens_limit_exceeded"
    assert refused.headers["x-ratelimit-limit-tokens"] == "1000"


async def test_concurrency_limit_caps_jobs_in_flight(http: httpx.AsyncClient, make_tenant) -> None:
    _, key = await make_tenant(max_concurrent=2)
    body = {"model": "slow-300", "messages": [{"role": "user", "content": "wait"}]}
    responses = [await http.post("/api/v1/jobs", json=body, headers={"X-API-Key": key}) for _ in range(3)]
    assert [r.status_code for r in responses] == [202, 202, 429]
    assert responses[2].json()["error"]["code"] == "concurrency_limit_exceeded"


async def test_budget_is_never_overspent_by_fifty_concurrent_requests(api_urls: list[str], make_tenant) -> None:
    # Worst case at admission: 5 estimated prompt tokens x $2.50/M + 8 max tokens x $10/M = $0.0000925,
    # reserved rounded up to whole micro-dollars (93). The budget fits ten reservations, not eleven.
    budget = 10.5 * 0.0000925
    tenant_id, key = await make_tenant(rate_limit=10_000, budget_usd=budget, budget_period="monthly")
    body = {"model": "priced", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    responses = await _burst(api_urls, key, "/v1/chat/completions", body, 50)
    statuses = Counter(r.status_code for r in responses)
    assert statuses[200] >= 10 and statuses[200] + statuses[402] == 50, statuses
    refused = next(r for r in responses if r.status_code == 402)
    assert refused.json()["error"]["type"] == "budget_exceeded"
    assert "resets at" in refused.json()["error"]["message"]
    spent = sum(float(r.headers["x-gateway-cost-usd"]) for r in responses if r.status_code == 200)
    assert spent <= budget
    assert await _recorded_spend(tenant_id, expected_rows=statuses[200]) <= budget


async def _recorded_spend(tenant_id: str, expected_rows: int) -> float:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{E2E_DATABASE}")
    try:
        for _ in range(100):
            rows, spent = await conn.fetchrow(
                "SELECT count(*), coalesce(sum(cost_usd), 0) FROM usage_record WHERE tenant_id = $1", tenant_id)
            if rows >= expected_rows:
                return float(spent)
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise AssertionError("usage records did not arrive")
