"""A background Responses API response with the gateway's `callback_url`, end to end with real processes and a
real HTTP receiver: its job's webhook is POSTed, signed, as `GET /api/v1/jobs/{id}` shows the job, and the
response reads back with the same answer; `callback_url` without `background` is refused by name."""

import json
import uuid

import pytest

from shared.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature
from tests.e2e.faults.conftest import StackFactory, new_tenant
from tests.support.webhook_receiver import Receiver

SECRET = "whsec-e2e-responses-0123456789"
WEBHOOK_ENV = {"WEBHOOK_SECRET": SECRET, "WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_RETRY_BASE_S": "0.3",
               "WEBHOOK_TIMEOUT_S": "1"}


@pytest.mark.timeout(60)
async def test_responses_background_callback_url_webhook_is_delivered(stack: StackFactory) -> None:
    gw = await stack(workers=1, env=WEBHOOK_ENV)
    _, key = await new_tenant(gw)
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "paced", "input": f"hook {uuid.uuid4().hex[:6]}", "background": True}
    async with Receiver() as receiver, gw.client() as http:
        refused = await http.post("/v1/responses", json={**body, "background": False, "callback_url": receiver.url},
                                  headers=headers)
        assert refused.status_code == 400 and "'callback_url'" in refused.json()["error"]["message"]
        created = await http.post("/v1/responses", json={**body, "callback_url": receiver.url}, headers=headers)
        assert created.status_code == 200, created.text
        assert created.json()["status"] == "queued"
        job_id = created.headers["x-gateway-job-id"]
        [call] = await receiver.wait_calls(1, timeout_s=15)
        job = (await http.get(f"/api/v1/jobs/{job_id}", headers=headers)).json()
        response = (await http.get(f"/v1/responses/{created.json()['id']}", headers=headers)).json()
    assert verify_signature(SECRET, call.headers[SIGNATURE_HEADER.lower()], call.body)
    assert call.headers[EVENT_ID_HEADER.lower()] == job_id
    assert json.loads(call.body) == job and job["status"] == "succeeded"
    answer = job["result"]["choices"][0]["message"]["content"]
    assert response["status"] == "completed" and response["output"][0]["content"][0]["text"] == answer
