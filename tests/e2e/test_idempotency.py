"""`Idempotency-Key` end to end (real API, worker, fake provider, Redis and PostgreSQL): a repeated completion,
sync or streamed, is the same job with the same answer (a stream is replayed from the start), a repeat while
the job runs waits for it, concurrent identical requests make one job, and whatever the repeats, the tenant
is billed once: one usage record in PostgreSQL, one request against its per-minute limit."""

import asyncio
import json
import uuid

import asyncpg
import httpx

from tests.e2e.conftest import E2E_DATABASE


def chat_body(text: str, *, model: str = "fake-openai", stream: bool = False) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}


async def usage_rows(tenant_id: str, *, settle_s: float = 1.0) -> list[tuple[str, float]]:
    """The tenant's usage records once the writer has flushed, waiting `settle_s` for any late extra one."""
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{E2E_DATABASE}")
    try:
        query = "SELECT request_id, cost_usd FROM usage_record WHERE tenant_id = $1"
        for _ in range(100):
            if await conn.fetch(query, tenant_id):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(settle_s)
        return [(row["request_id"], float(row["cost_usd"])) for row in await conn.fetch(query, tenant_id)]
    finally:
        await conn.close()


async def stream_chunks(http: httpx.AsyncClient, headers: dict[str, str], body: dict[str, object]
                        ) -> tuple[str, list[str]]:
    texts: list[str] = []
    async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        assert response.status_code == 200
        job_id = response.headers["x-gateway-job-id"]
        async for line in response.aiter_lines():
            if line.startswith("data:") and line.strip() != "data: [DONE]":
                chunk = json.loads(line[5:])
                assert "error" not in chunk, chunk
                texts += [c["delta"]["content"] for c in chunk["choices"] if c["delta"].get("content")]
    return job_id, texts


async def test_idempotency_sync_repeat_returns_stored_result_billed_once(http: httpx.AsyncClient,
                                                                         make_tenant) -> None:
    tenant_id, key = await make_tenant(rate_limit=2)
    headers = {"X-API-Key": key, "Idempotency-Key": f"sync-{uuid.uuid4().hex}"}
    body = chat_body("remember me", model="priced")
    first = await http.post("/v1/chat/completions", json=body, headers=headers)
    assert first.status_code == 200, first.text
    repeats = [await http.post("/v1/chat/completions", json=body, headers=headers) for _ in range(4)]
    for again in repeats:
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        assert again.headers["x-gateway-job-id"] == first.headers["x-gateway-job-id"]
        assert again.headers["idempotent-replayed"] == "true"
    rows = await usage_rows(tenant_id)
    assert rows == [(first.headers["x-gateway-job-id"], float(first.headers["x-gateway-cost-usd"]))]
    # Four repeats did not count against the limit of 2 requests a minute: one more request still fits.
    assert (await http.post("/v1/chat/completions", json=chat_body("new"), headers={"X-API-Key": key})
            ).status_code == 200


async def test_idempotency_stream_repeat_replays_same_chunks(http: httpx.AsyncClient, make_tenant) -> None:
    tenant_id, key = await make_tenant()
    headers = {"X-API-Key": key, "Idempotency-Key": "stream-1"}
    body = chat_body("stream once", stream=True)
    job_id, chunks = await stream_chunks(http, headers, body)
    again_id, again_chunks = await stream_chunks(http, headers, body)
    assert again_id == job_id and again_chunks == chunks and len(chunks) > 1
    assert [request_id for request_id, _ in await usage_rows(tenant_id)] == [job_id]


async def test_idempotency_repeat_while_running_waits_for_the_same_job(http: httpx.AsyncClient,
                                                                        make_tenant) -> None:
    tenant_id, key = await make_tenant()
    headers = {"X-API-Key": key, "Idempotency-Key": "slow-one"}
    body = chat_body("take your time", model="slow-3000")
    first = asyncio.create_task(http.post("/v1/chat/completions", json=body, headers=headers))
    await asyncio.sleep(0.5)
    assert not first.done()
    again = await http.post("/v1/chat/completions", json=body, headers=headers)
    original = await first
    assert original.status_code == again.status_code == 200
    assert again.json() == original.json()
    assert [request_id for request_id, _ in await usage_rows(tenant_id)] == [original.headers["x-gateway-job-id"]]


async def test_idempotency_concurrent_identical_requests_make_one_job_one_usage_row(
    http: httpx.AsyncClient, make_tenant
) -> None:
    tenant_id, key = await make_tenant()
    headers = {"X-API-Key": key, "Idempotency-Key": "burst"}
    body = chat_body("all at once")
    responses = await asyncio.gather(*(http.post("/v1/chat/completions", json=body, headers=headers)
                                       for _ in range(10)))
    assert {r.status_code for r in responses} == {200}
    job_ids = {r.headers["x-gateway-job-id"] for r in responses}
    assert len(job_ids) == 1
    assert len({json.dumps(r.json(), sort_keys=True) for r in responses}) == 1
    assert [request_id for request_id, _ in await usage_rows(tenant_id)] == list(job_ids)


async def test_idempotency_messages_reuse_with_other_body_is_409_in_anthropic_shape(
    http: httpx.AsyncClient, tenant_key: str
) -> None:
    headers = {"X-API-Key": tenant_key, "Idempotency-Key": "msg-key"}
    body = {"model": "fake-anthropic", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    first = await http.post("/v1/messages", json=body, headers=headers)
    assert first.status_code == 200, first.text
    again = await http.post("/v1/messages", json=body, headers=headers)
    assert again.json() == first.json()
    response = await http.post("/v1/messages", json={**body, "max_tokens": 51}, headers=headers)
    assert response.status_code == 409
    assert response.json()["type"] == "error"
    assert response.json()["error"]["code"] == "idempotency_key_reused"


async def test_idempotency_gateway_completion_repeat_after_failure_returns_same_error(
    http: httpx.AsyncClient, make_tenant
) -> None:
    tenant_id, key = await make_tenant()
    headers = {"X-API-Key": key, "Idempotency-Key": "doomed"}
    body = chat_body("fail me", model="reject-400")
    first = await http.post("/api/v1/completions", json=body, headers=headers)
    again = await http.post("/api/v1/completions", json=body, headers=headers)
    assert first.status_code == again.status_code and first.status_code >= 400
    assert again.json()["error"]["code"] == first.json()["error"]["code"]
    assert len(await usage_rows(tenant_id)) == 1


async def test_idempotency_budget_refusal_is_not_bound(http: httpx.AsyncClient, make_tenant) -> None:
    _, key = await make_tenant(budget_usd=0)
    headers = {"X-API-Key": key, "Idempotency-Key": "broke"}
    for _ in range(2):  # refused each time: the key was released, not bound to a job that never existed
        response = await http.post("/v1/chat/completions", json=chat_body("pay", model="priced"), headers=headers)
        assert response.status_code == 402
        assert "idempotent-replayed" not in response.headers
