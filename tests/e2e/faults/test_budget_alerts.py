"""Budget alerts end to end with real processes (fake provider, API, two workers) and a real HTTP receiver:
an alert registered through the admin API at 25/50/75/100 % of a tenant's budget is POSTed, signed, once per
threshold, while sixteen concurrent requests spread over both workers cross every threshold (the budget admits
ten of them exactly); nothing more arrives afterwards."""

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest

from shared.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature
from tests.e2e.conftest import ADMIN_KEY
from tests.e2e.faults.conftest import StackFactory, new_tenant
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


async def _chat(http: httpx.AsyncClient, key: str) -> httpx.Response:
    body = {"model": "paced", "max_tokens": 8,
            "messages": [{"role": "user", "content": f"spend {uuid.uuid4().hex[:8]}"}]}
    return await http.post("/v1/chat/completions", json=body,
                           headers={"X-API-Key": key, "Cache-Control": "no-cache, no-store"})
