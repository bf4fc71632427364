"""Budgets against answers as long as a model allows (issue 12, item 1): a request without `max_tokens` reserves
the model's maximum output, or is refused with 402 saying which `max_tokens` would fit; concurrent requests of
every shape (plain, streamed, the seed's endpoint, submitted jobs, Anthropic's) never spend past the budget,
fallback to a pricier target included. The fake provider answers 10,000 tokens (`tokens-10000` directive).

Its own gateway (API, worker, fake provider without inter-token delay) with its own routes and PRICES_FILE,
on the e2e database and Redis db of the session gateway."""

import asyncio
import re
import uuid
from collections import Counter
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import ADMIN_KEY, E2E_DATABASE, REDIS_URL, Gateway, gateway_env
from tests.support.processes import Process, free_port, wait_http

ROUTES = """
models:
  long-unlisted:
    - {{provider: openai, model: long-tokens-10000, base_url: "{f}/v1"}}
  long-listed:
    - {{provider: openai, model: listed-tokens-10000, base_url: "{f}/v1"}}
  long-fallback:
    - {{provider: openai, model: first-fail-503-tokens-10000, base_url: "{f}/v1"}}
    - {{provider: anthropic, model: second-tokens-10000, base_url: "{f}"}}
  long-understated:
    - {{provider: openai, model: understated-tokens-10000, base_url: "{f}/v1"}}
"""
# Unlisted models are priced at the defaults ($10 input, $30 output per million tokens) and have no known
# maximum output; `understated` claims 1,000 tokens where the fake answers 10,000 (a wrong price table).
PRICES = """
listed-tokens-10000: {input: 10.0, output: 30.0, max_output_tokens: 16384}
first-fail-503-tokens-10000: {input: 1.0, output: 2.0, max_output_tokens: 16384}
understated-tokens-10000: {input: 10.0, output: 30.0, max_output_tokens: 1000}
"""
BUDGET_USD = 0.50
OUTPUT_PRICE = 30.0 / 1_000_000
MESSAGES = [{"role": "user", "content": "Write as much as you can"}]


@pytest.fixture(scope="module")
def stack(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of this module's API (the session gateway has already created and migrated the database)."""
    log_dir = tmp_path_factory.mktemp("budget-logs")
    fake_port, api_port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    routes, prices = log_dir / "routes.yaml", log_dir / "prices.yaml"
    routes.write_text(ROUTES.format(f=fake_url))
    prices.write_text(PRICES)
    env = gateway_env(redis_url=REDIS_URL, database=E2E_DATABASE, routes=routes, queue_prefix="gw:budget",
                      PRICES_FILE=str(prices), MAX_ATTEMPTS_PER_TARGET="1")
    processes = [Process("budget-fake", ["fake-provider", "--port", str(fake_port)], env, log_dir)]
    processes.append(Process("budget-api", ["serve", "--port", str(api_port)], env, log_dir))
    processes.append(Process("budget-worker", ["worker"], env, log_dir))
    try:
        wait_http(f"{fake_url}/_stats", processes[0])
        wait_http(f"http://127.0.0.1:{api_port}/health", processes[1])
        yield f"http://127.0.0.1:{api_port}"
    finally:
        for process in reversed(processes):
            process.stop()


async def _tenant(base_url: str) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.post("/api/v1/admin/tenants", headers={"X-API-Key": ADMIN_KEY}, json={
            "name": f"budget-{uuid.uuid4().hex[:10]}", "rate_limit": 10_000, "budget_usd": BUDGET_USD,
            "budget_period": "daily"})
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["api_key"]


async def _send(client: httpx.AsyncClient, shape: str, key: str, body: dict[str, object]) -> httpx.Response:
    """One request of `shape`; a submitted job is polled to its end (its 202 answer is returned)."""
    headers = {"X-API-Key": key, "Cache-Control": "no-cache, no-store"}
    if shape == "stream":
        async with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True},
                                 headers=headers) as response:
            await response.aread()
            return response
    path = {"chat": "/v1/chat/completions", "completions": "/api/v1/completions", "jobs": "/api/v1/jobs",
            "messages": "/v1/messages"}[shape]
    response = await client.post(path, json=body, headers=headers)
    if shape == "jobs" and response.status_code == 202:
        job_url = f"/api/v1/jobs/{response.json()['id']}"
        for _ in range(600):
            if (await client.get(job_url, headers=headers)).json()["status"] in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.05)
    return response


async def _burst(base_url: str, shape: str, key: str, body: dict[str, object], count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        return await asyncio.gather(*(_send(client, shape, key, body) for _ in range(count)))


async def _spent(tenant_id: str, rows: int) -> float:
    """The tenant's recorded cost, once `rows` usage records have reached PostgreSQL."""
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{E2E_DATABASE}")
    try:
        for _ in range(200):
            count, spent = await conn.fetchrow(
                "SELECT count(*), coalesce(sum(cost_usd), 0) FROM usage_record WHERE tenant_id = $1", tenant_id)
            if count >= rows:
                return float(spent)
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    raise AssertionError(f"{rows} usage records did not arrive")


def _fitting_max_tokens(response: httpx.Response) -> int:
    """The `max_tokens` a 402 says would fit."""
    found = re.search(r"max_tokens <= (\d+)", response.json()["error"]["message"])
    assert found is not None, response.text
    return int(found.group(1))


@pytest.mark.parametrize("shape", ["chat", "stream", "completions", "jobs"])
async def test_budget_not_overspent_by_six_concurrent_requests_without_max_tokens(stack: str, shape: str) -> None:
    # The case: before, each request reserved 4,096 output tokens ($0.12), four were admitted and
    # each answered 10,000 tokens ($0.30): $1.20 spent of $0.50. The model's maximum is unknown here, so the
    # worst case of a request without a limit is unbounded: every one is refused, saying what would fit.
    tenant_id, key = await _tenant(stack)
    responses = await _burst(stack, shape, key, {"model": "long-unlisted", "messages": MESSAGES}, 6)
    admitted = sum(r.status_code in (200, 202) for r in responses)
    assert await _spent(tenant_id, admitted) <= BUDGET_USD
    assert Counter(r.status_code for r in responses) == {402: 6}
    refusal = responses[0].json()["error"]
    assert refusal["type"] == "budget_exceeded" and "is unknown to this gateway" in refusal["message"]
    fits = _fitting_max_tokens(responses[0])
    assert fits == pytest.approx(BUDGET_USD / OUTPUT_PRICE, rel=0.01)
    followed = await _burst(stack, shape, key, {"model": "long-unlisted", "messages": MESSAGES, "max_tokens": fits}, 1)
    assert followed[0].status_code in (200, 202), followed[0].text
    assert await _spent(tenant_id, 1) <= BUDGET_USD


@pytest.mark.parametrize("shape", ["chat", "stream", "jobs"])
async def test_budget_reserves_listed_maximum_output_without_max_tokens(stack: str, shape: str) -> None:
    # 16,384 output tokens at $30/M reserve $0.49 of $0.50: one of six runs; it answers 10,000 tokens ($0.30).
    tenant_id, key = await _tenant(stack)
    responses = await _burst(stack, shape, key, {"model": "long-listed", "messages": MESSAGES}, 6)
    statuses = Counter(r.status_code for r in responses)
    assert statuses[402] == 5 and statuses[200] + statuses[202] == 1, statuses
    spent = await _spent(tenant_id, 1)
    assert spent == pytest.approx(10_000 * OUTPUT_PRICE, rel=0.01) and spent <= BUDGET_USD
    refused = next(r for r in responses if r.status_code == 402)
    assert "16384 output tokens" in refused.json()["error"]["message"]
    fits = _fitting_max_tokens(refused)
    assert fits < 16_384
    # What the refusal advised, now that the first answer is paid for: fits the rest of the budget.
    left = (await _burst(stack, "chat", key, {"model": "long-listed", "messages": MESSAGES}, 1))[0]
    fits = _fitting_max_tokens(left)
    body = {"model": "long-listed", "messages": MESSAGES, "max_tokens": fits}
    assert (await _burst(stack, "chat", key, body, 1))[0].status_code == 200
    assert await _spent(tenant_id, 2) <= BUDGET_USD


async def test_budget_reserves_fallback_targets_worst_case(stack: str) -> None:
    # The first target fails (503) and is cheap; the fallback is an Anthropic target sent 4,096 tokens (its
    # required limit) at $30/M, $0.12: four fit the budget, and the fallback answers cost what was reserved.
    tenant_id, key = await _tenant(stack)
    responses = await _burst(stack, "chat", key, {"model": "long-fallback", "messages": MESSAGES}, 6)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 4, 402: 2}, statuses
    assert all(r.headers["x-gateway-fallback"] == "true" for r in responses if r.status_code == 200)
    assert await _spent(tenant_id, 4) <= BUDGET_USD


async def test_budget_refusal_on_messages_says_which_max_tokens_fits(stack: str) -> None:
    _, key = await _tenant(stack)
    body = {"model": "long-unlisted", "max_tokens": 20_000, "messages": MESSAGES}
    refused = (await _burst(stack, "messages", key, body, 1))[0]
    assert refused.status_code == 402
    assert refused.json()["type"] == "error" and refused.json()["error"]["type"] == "billing_error"
    fits = _fitting_max_tokens(refused)
    assert (await _burst(stack, "messages", key, {**body, "max_tokens": fits}, 1))[0].status_code == 200


async def test_budget_stream_stops_at_reserved_output_when_price_table_understates(stack: str) -> None:
    # The table says 1,000 tokens at most; the model writes 10,000. The reservation covered 1,000, so the
    # worker ends the stream there (finish_reason length) and bills what was produced.
    tenant_id, key = await _tenant(stack)
    responses = await _burst(stack, "stream", key, {"model": "long-understated", "messages": MESSAGES}, 1)
    assert responses[0].status_code == 200
    text = responses[0].text
    assert '"finish_reason":"length"' in text
    produced = len(re.findall(r"tok\d+", text))
    assert 990 <= produced <= 1000
    assert await _spent(tenant_id, 1) <= 1000 * OUTPUT_PRICE + 0.001
