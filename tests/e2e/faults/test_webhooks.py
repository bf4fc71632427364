"""Job webhooks end to end with real processes (fake provider, API, workers) and a real HTTP receiver: a job
submitted with `callback_url` is POSTed, signed, exactly as `GET /api/v1/jobs/{id}` shows it when it ends;
a bad callback URL is 400; a running job cancelled through the API is announced as cancelled; a delivery
still failing when its worker is killed is delivered by the worker that replaces it; and a delivery the
receiver refused for good is dead-lettered, then delivered when an admin redelivers it."""

import asyncio
import json
import uuid

import httpx
import pytest

from shared.webhooks import ATTEMPT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature
from tests.e2e.conftest import ADMIN_KEY
from tests.e2e.faults.conftest import StackFactory, finished, new_tenant, poll_job, worker_id
from tests.support.webhook_receiver import Receiver

SECRET = "whsec-e2e-0123456789abcdef"
WEBHOOK_ENV = {"WEBHOOK_SECRET": SECRET, "WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_RETRY_BASE_S": "0.3",
               "WEBHOOK_TIMEOUT_S": "1"}


async def _submit(http: httpx.AsyncClient, key: str, model: str, callback_url: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": f"hook {uuid.uuid4().hex[:6]}"}],
            "callback_url": callback_url}
    return await http.post("/api/v1/jobs", json=body, headers={"X-API-Key": key})


@pytest.mark.timeout(60)
async def test_webhook_e2e_job_end_posts_signed_job_as_get_shows_it(stack: StackFactory) -> None:
    gw = await stack(workers=1, env=WEBHOOK_ENV)
    _, key = await new_tenant(gw)
    async with Receiver() as receiver, gw.client() as http:
        for bad in ("ftp://example.com/x", "/relative", "http://" + "a" * 2050 + ".com/", 42):
            response = await _submit(http, key, "paced", bad)
            assert response.status_code == 400, (bad, response.text)
        response = await _submit(http, key, "paced", receiver.url)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        [call] = await receiver.wait_calls(1, timeout_s=15)
        shown = (await http.get(f"/api/v1/jobs/{job_id}", headers={"X-API-Key": key})).json()
    assert verify_signature(SECRET, call.headers[SIGNATURE_HEADER.lower()], call.body)
    assert call.headers[EVENT_ID_HEADER.lower()] == job_id
    assert json.loads(call.body) == shown and shown["status"] == "succeeded"


@pytest.mark.timeout(60)
async def test_webhook_e2e_webhooks_off_without_secret(stack: StackFactory) -> None:
    gw = await stack(workers=1)
    _, key = await new_tenant(gw)
    async with gw.client() as http:
        response = await _submit(http, key, "paced", "https://example.com/hook")
    assert response.status_code == 400 and "WEBHOOK_SECRET" in response.text


@pytest.mark.timeout(60)
async def test_webhook_e2e_cancelled_running_job_is_notified(stack: StackFactory) -> None:
    gw = await stack(workers=1, env=WEBHOOK_ENV, fake_args=["--tokens", "200", "--inter-token-ms", "20"])
    _, key = await new_tenant(gw)
    async with Receiver() as receiver, gw.client() as http:
        job_id = (await _submit(http, key, "paced", receiver.url)).json()["id"]
        await poll_job(http, key, job_id, until=lambda job: job["status"] == "running", timeout_s=10)
        response = await http.post(f"/api/v1/jobs/{job_id}/cancel", headers={"X-API-Key": key})
        assert response.status_code == 200
        [call] = await receiver.wait_calls(1, timeout_s=15)
    payload = json.loads(call.body)
    assert payload["id"] == job_id and payload["status"] == "cancelled"


@pytest.mark.timeout(90)
async def test_webhook_e2e_delivery_survives_worker_kill(stack: StackFactory) -> None:
    gw = await stack(workers=1, env=WEBHOOK_ENV)
    _, key = await new_tenant(gw)
    async with Receiver(default=500) as receiver, gw.client() as http:
        job_id = (await _submit(http, key, "paced", receiver.url)).json()["id"]
        await poll_job(http, key, job_id, until=finished, timeout_s=15)
        await receiver.wait_calls(2, timeout_s=15)  # failed, retried, failed: a retry is scheduled
        gw.named("worker-1").kill()
        failed = len(receiver.calls)
        receiver.default = 200
        worker_id(gw.start_worker("worker-2"))
        calls = await receiver.wait_calls(failed + 1, timeout_s=30)
        await asyncio.sleep(1.0)  # nothing more arrives once delivered
    assert {call.headers[EVENT_ID_HEADER.lower()] for call in calls} == {job_id}
    assert int(calls[-1].headers[ATTEMPT_HEADER.lower()]) >= 2
    assert len(receiver.calls) == failed + 1


async def _dead_letter_of(http: httpx.AsyncClient, job_id: str, timeout_s: float = 10) -> dict[str, object]:
    for _ in range(int(timeout_s / 0.1)):
        listed = await http.get("/api/v1/admin/webhooks/dead", headers={"X-API-Key": ADMIN_KEY})
        for entry in listed.json()["data"]:
            if entry["job_id"] == job_id:
                return dict(entry)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no dead letter for {job_id} within {timeout_s}s")


@pytest.mark.timeout(60)
async def test_webhook_e2e_dead_letter_is_delivered_when_an_admin_redelivers_it(stack: StackFactory) -> None:
    gw = await stack(workers=1, env=WEBHOOK_ENV)
    _, key = await new_tenant(gw)
    async with Receiver(default=410) as receiver, gw.client() as http:
        job_id = (await _submit(http, key, "paced", receiver.url)).json()["id"]
        await receiver.wait_calls(1, timeout_s=15)  # 410: refused for good, not retried
        entry = await _dead_letter_of(http, job_id)
        assert entry["reason"] == "rejected" and entry["attempts"] == 1 and "410" in str(entry["detail"])
        receiver.default = 200
        response = await http.post("/api/v1/admin/webhooks/dead/redeliver", json={"ids": [entry["id"]]},
                                   headers={"X-API-Key": ADMIN_KEY})
        assert response.json() == {"redelivered": [entry["id"]], "not_found": []}
        calls = await receiver.wait_calls(2, timeout_s=15)
        await asyncio.sleep(0.5)  # delivered once
    redelivered = calls[1]
    assert len(receiver.calls) == 2 and redelivered.headers[ATTEMPT_HEADER.lower()] == "1"
    assert verify_signature(SECRET, redelivered.headers[SIGNATURE_HEADER.lower()], redelivered.body)
    assert json.loads(redelivered.body)["id"] == job_id
