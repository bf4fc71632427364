"""Budget alerts end to end with real processes (fake provider, API, two workers), real Redis and PostgreSQL,
and a real HTTP receiver: an alert registered through the admin API at 25/50/75/100 % of a tenant's budget is
POSTed, signed, once per threshold, while sixteen concurrent requests spread over both workers cross every
threshold (the budget admits ten of them exactly); nothing more arrives afterwards. A key's alert fires on
that key's own budget and spend only (the tenant's other key spends more than it, unheard), once per
threshold, also after Redis lost the set of thresholds sent (restored from the database)."""

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest
import redis.asyncio

from shared.keys import budget_alerts_fired_key
from shared.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature
from tests.e2e.conftest import ADMIN_KEY
from tests.e2e.faults.conftest import REDIS_URL, StackFactory, new_tenant
from tests.support.webhook_receiver import Receiver

SECRET = "whsec-e2e-budget-0123456789"
ADMIN = {"X-API-Key": ADMIN_KEY}
# 8 answer tokens at $1,000 per million and a free prompt: $0.008 a request, so a $0.08 budget admits ten.
PRICES = "fake-model: {input: 0.0, output: 1000.0, cached_input: 0.0, max_output_tokens: 8}\n"


@pytest.mark.timeout(90)
async def test_budget_alert_e2e_each_threshold_once_under_concurrent_requests(stack: StackFactory,
                                                                               tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES)
    gw = await stack(workers=2, env={"WEBHOOK_SECRET": SECRET, "WEBHOOK_ALLOW_PRIVATE": "true",
                                     "WEBHOOK_RETRY_BASE_S": "0.3", "PRICES_FILE": str(prices)})
    tenant_id, key = await new_tenant(gw)
    async with Receiver() as receiver, gw.client() as http:
        patched = await http.patch(f"/api/v1/admin/tenants/{tenant_id}", json={"budget_usd": 0.08}, headers=ADMIN)
        assert patched.status_code == 200, patched.text
        alert = await http.post(f"/api/v1/admin/tenants/{tenant_id}/budget-alerts",
                                json={"url": receiver.url, "thresholds": [100, 25, 75, 50]}, headers=ADMIN)
        assert alert.status_code == 201, alert.text
        answers = await asyncio.gather(*(_chat(http, key) for _ in range(16)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200] * 10 + [402] * 6, [a.text for a in answers if a.status_code not in (200, 402)]
        calls = await receiver.wait_calls(4, timeout_s=20)
        await asyncio.sleep(2)  # a duplicate would arrive by now
    assert len(receiver.calls) == 4
    bodies = [json.loads(call.body) for call in calls]
    assert sorted(body["threshold_pct"] for body in bodies) == [25, 50, 75, 100]
    for call, body in zip(calls, bodies, strict=True):
        assert verify_signature(SECRET, call.headers[SIGNATURE_HEADER.lower()], call.body)
        assert call.headers[EVENT_ID_HEADER.lower()] == body["id"]
        assert body["object"] == "budget.alert" and body["tenant_id"] == tenant_id
        assert body["alert_id"] == alert.json()["id"] and body["budget_usd"] == 0.08
        assert body["spent_usd"] >= body["threshold_pct"] / 100 * 0.08 - 1e-9


@pytest.mark.timeout(120)
async def test_key_budget_alert_e2e_counts_only_that_key_and_survives_a_lost_fired_set(
        stack: StackFactory, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES)
    gw = await stack(workers=1, env={"WEBHOOK_SECRET": SECRET, "WEBHOOK_ALLOW_PRIVATE": "true",
                                     "WEBHOOK_RETRY_BASE_S": "0.3", "PRICES_FILE": str(prices)})
    tenant_id, _ = await new_tenant(gw)
    async with Receiver() as receiver, gw.client() as http:
        keys = f"/api/v1/admin/tenants/{tenant_id}/keys"
        watched = (await http.post(keys, json={"name": "prod", "budget_usd": 0.08}, headers=ADMIN)).json()
        other = (await http.post(keys, json={"name": "ci"}, headers=ADMIN)).json()
        alert = await http.post(f"/api/v1/admin/tenants/{tenant_id}/budget-alerts", headers=ADMIN,
                                json={"url": receiver.url, "thresholds": [25, 50, 100], "key_id": watched["id"]})
        assert alert.status_code == 201, alert.text
        for _ in range(12):  # $0.096 on the other key: more than the watched key's whole budget
            assert (await _chat(http, other["api_key"])).status_code == 200
        await asyncio.sleep(1.5)
        assert receiver.calls == []
        for _ in range(5):  # $0.04 on the watched key: 25 and 50 %
            assert (await _chat(http, watched["api_key"])).status_code == 200
        await receiver.wait_calls(2, timeout_s=20)
        await _lose_fired_sets(watched["id"])
        answers = [(await _chat(http, watched["api_key"])).status_code for _ in range(6)]
        assert answers == [200] * 5 + [402]  # the key's $0.08 admits ten requests in all
        calls = await receiver.wait_calls(3, timeout_s=20)
        await asyncio.sleep(2)  # a repeat of 25 or 50 % would arrive by now
    assert len(receiver.calls) == 3
    bodies = [json.loads(call.body) for call in calls]
    assert [body["threshold_pct"] for body in bodies] == [25, 50, 100]
    assert [round(body["spent_usd"], 6) for body in bodies] == [0.024, 0.04, 0.08]  # the watched key's spend only
    for call, body in zip(calls, bodies, strict=True):
        assert verify_signature(SECRET, call.headers[SIGNATURE_HEADER.lower()], call.body)
        assert body["key_id"] == watched["id"] and body["tenant_id"] == tenant_id and body["budget_usd"] == 0.08
        assert body["alert_id"] == alert.json()["id"]


async def _lose_fired_sets(owner: str) -> None:
    """Delete the owner's sets of thresholds sent, as a Redis eviction or flush would."""
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        lost = [key async for key in client.scan_iter(match=budget_alerts_fired_key(owner, "*"))]
        assert lost, "no fired set to lose"
        await client.delete(*lost)
    finally:
        await client.aclose()


async def _chat(http: httpx.AsyncClient, key: str) -> httpx.Response:
    body = {"model": "paced", "max_tokens": 8,
            "messages": [{"role": "user", "content": f"spend {uuid.uuid4().hex[:8]}"}]}
    return await http.post("/v1/chat/completions", json=body,
                           headers={"X-API-Key": key, "Cache-Control": "no-cache, no-store"})
