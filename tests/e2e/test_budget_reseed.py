"""Budget counters follow budget changes (issue 12, item 8): spend made while a tenant had no budget, or under
another period, and requests still running when the budget is set, all count against the budget an admin
sets, through the real API, worker, Redis and PostgreSQL. An API key's own counter, lost from Redis, is seeded
again from that key's usage records (issue 15), so its budget still holds."""

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import redis.asyncio

from shared.keys import spend_key
from shared.limits import budget_period, spend_keys
from tests.e2e.conftest import ADMIN_KEY, REDIS_URL
from tests.e2e.test_keys import issue_key

ADMIN = {"X-API-Key": ADMIN_KEY}
# 1 prompt token at $2.50/M and the fake provider's 8 answer tokens at $10/M: $0.0000825 a request.
PRICED = {"model": "priced", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


async def _spend(http: httpx.AsyncClient, key: str, count: int) -> float:
    """Send `count` priced requests one after another; what they cost."""
    headers = {"X-API-Key": key, "Cache-Control": "no-cache, no-store"}
    total = 0.0
    for _ in range(count):
        response = await http.post("/v1/chat/completions", json=PRICED, headers=headers)
        assert response.status_code == 200, response.text
        total += float(response.headers["x-gateway-cost-usd"])
    return total


async def _patch(http: httpx.AsyncClient, tenant_id: str, **changes: object) -> None:
    response = await http.patch(f"/api/v1/admin/tenants/{tenant_id}", json=changes, headers=ADMIN)
    assert response.status_code == 200, response.text


async def _next(http: httpx.AsyncClient, key: str) -> httpx.Response:
    return await http.post("/v1/chat/completions", json=PRICED, headers={"X-API-Key": key, "Cache-Control": "no-cache"})


async def test_budget_set_below_spend_made_without_budget_refuses_next_request(
        http: httpx.AsyncClient, make_tenant) -> None:
    tenant_id, key = await make_tenant()
    spent = await _spend(http, key, 6)
    await _patch(http, tenant_id, budget_usd=round(spent * 0.7, 9), budget_period="monthly")
    refused = await _next(http, key)
    assert refused.status_code == 402, refused.text


async def test_budget_removed_and_set_again_counts_spend_made_meanwhile(http: httpx.AsyncClient, make_tenant) -> None:
    # Seen before the fix: the monthly counter, seeded while the budget was set, missed what was spent while
    # it was not ($1.89 spent in a month against a $1.00 monthly budget).
    tenant_id, key = await make_tenant(budget_usd=1.0, budget_period="monthly")
    spent = await _spend(http, key, 1)
    await _patch(http, tenant_id, budget_usd=None)
    spent += await _spend(http, key, 5)
    await _patch(http, tenant_id, budget_usd=round(spent * 0.7, 9))
    refused = await _next(http, key)
    assert refused.status_code == 402, refused.text
    assert refused.json()["error"]["code"] == "budget_exceeded"


async def test_budget_period_changed_and_back_counts_spend_under_the_other_period(
        http: httpx.AsyncClient, make_tenant) -> None:
    tenant_id, key = await make_tenant(budget_usd=1.0, budget_period="monthly")
    spent = await _spend(http, key, 1)
    await _patch(http, tenant_id, budget_period="daily")
    spent += await _spend(http, key, 5)
    await _patch(http, tenant_id, budget_period="monthly", budget_usd=round(spent * 0.7, 9))
    assert (await _next(http, key)).status_code == 402


async def test_budget_set_while_requests_run_counts_their_reservations(http: httpx.AsyncClient, make_tenant) -> None:
    # Three 3-second jobs admitted without a budget each hold their worst case (8 tokens at the default $30/M
    # and the prompt, about $0.0003); a budget of $0.0005 set meanwhile has no room for a fourth request.
    tenant_id, key = await make_tenant()
    body = {"model": "slow-3000", "messages": [{"role": "user", "content": "wait"}], "max_tokens": 8}
    headers = {"X-API-Key": key}
    jobs = [await http.post("/api/v1/jobs", json=body, headers=headers) for _ in range(3)]
    assert [job.status_code for job in jobs] == [202, 202, 202]
    await _patch(http, tenant_id, budget_usd=0.0005, budget_period="monthly")
    refused = await http.post("/api/v1/jobs", json=body, headers=headers)
    assert refused.status_code == 402, refused.text
    for job in jobs:
        for _ in range(200):
            status = (await http.get(f"/api/v1/jobs/{job.json()['id']}", headers=headers)).json()["status"]
            if status == "succeeded":
                break
            await asyncio.sleep(0.05)
        assert status == "succeeded"


async def test_key_budget_holds_after_its_counter_is_lost(http: httpx.AsyncClient, make_tenant) -> None:
    # Seen before the fix: a key's lost counter was seeded at 0, so the key could spend its budget again.
    tenant_id, _ = await make_tenant(budget_usd=10.0)
    small = await issue_key(http, tenant_id, budget_usd=0.0003, budget_period="daily")
    other = await issue_key(http, tenant_id)
    await _spend(http, str(other["api_key"]), 2)  # the tenant's, not the small key's: its seed leaves it out
    small_headers = {"X-API-Key": str(small["api_key"])}
    spent_micros, refused = 0, None
    for _ in range(8):
        response = await http.post("/v1/chat/completions", json=_fresh(), headers=small_headers)
        if response.status_code != 200:
            refused = response
            break
        spent_micros += round(float(response.headers["x-gateway-cost-usd"]) * 1_000_000)
    assert refused is not None and refused.status_code == 402, refused and refused.text
    assert spent_micros > 0
    connection = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        assert await connection.delete(*spend_keys(str(small["id"]), datetime.now(UTC))) >= 1
        again = await http.post("/v1/chat/completions", json=_fresh(), headers=small_headers)
        assert again.status_code == 402, again.text
        error = again.json()["error"]
        assert error["code"] == "budget_exceeded" and "API key" in error["message"], error
        counter = spend_key(str(small["id"]), budget_period("daily", datetime.now(UTC))[0])
        seeded = int(await connection.hget(counter, "spent") or -1)
        assert abs(seeded - spent_micros) <= 8, (seeded, spent_micros)  # each record rounded up to a micro-dollar
    finally:
        await connection.aclose()
    response = await http.post("/v1/chat/completions", json=_fresh(), headers={"X-API-Key": str(other["api_key"])})
    assert response.status_code == 200, response.text


def _fresh() -> dict[str, object]:
    """A priced request with a new prompt each time: a cache hit would cost nothing."""
    return {**PRICED, "messages": [{"role": "user", "content": uuid.uuid4().hex}]}


async def test_key_budget_removed_and_set_again_counts_spend_made_meanwhile(
        http: httpx.AsyncClient, make_tenant) -> None:
    # Without the reset, the key's counter from before kept counting only what was spent under a budget.
    tenant_id, _ = await make_tenant()
    key = await issue_key(http, tenant_id, budget_usd=1.0, budget_period="monthly")
    path = f"/api/v1/admin/tenants/{tenant_id}/keys/{key['id']}"
    spent = await _spend(http, str(key["api_key"]), 1)
    assert (await http.patch(path, json={"budget_usd": None}, headers=ADMIN)).status_code == 200
    spent += await _spend(http, str(key["api_key"]), 5)
    assert (await http.patch(path, json={"budget_usd": round(spent * 0.7, 9)}, headers=ADMIN)).status_code == 200
    refused = await _next(http, str(key["api_key"]))
    assert refused.status_code == 402, refused.text
    assert "API key" in refused.json()["error"]["message"]
