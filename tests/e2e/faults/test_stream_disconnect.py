"""A streaming client that disconnects mid-answer. STREAM_DISCONNECT=cancel (the default): its job is cancelled,
which stops the upstream call, and the usage record bills the tokens already produced. STREAM_DISCONNECT=finish:
the job runs to its end and is billed in full. Either way the usage is recorded once."""

import time
import uuid

import httpx
import pytest

from tests.e2e.faults.conftest import StackFactory, finished, new_tenant, poll_job, wait_usage_rows

TOKENS = 40
SLOW_STREAM = ["--tokens", str(TOKENS), "--inter-token-ms", "100"]  # a 4 s answer
READ_CHUNKS = 6


async def _stream_then_leave(http: httpx.AsyncClient, key: str) -> tuple[str, float]:
    """Read a few chunks of a streamed answer, then drop the connection; the job id and when it was dropped."""
    body = {"model": "paced", "stream": True, "messages": [{"role": "user", "content": f"leave {uuid.uuid4()}"}]}
    seen = 0
    async with http.stream("POST", "/v1/chat/completions", json=body, headers={"X-API-Key": key}) as response:
        assert response.status_code == 200
        job_id = response.headers["x-gateway-job-id"]
        async for line in response.aiter_lines():
            seen += line.startswith("data:")
            if seen >= READ_CHUNKS:
                break
    return job_id, time.monotonic()


@pytest.mark.timeout(60)
async def test_stream_disconnect_cancels_upstream_and_bills_tokens_produced(stack: StackFactory) -> None:
    gw = await stack(workers=1, fake_args=SLOW_STREAM)
    _, key = await new_tenant(gw)
    async with gw.client() as http:
        job_id, left_at = await _stream_then_leave(http, key)
        job = await poll_job(http, key, job_id, until=finished, timeout_s=10)
        ended_s = time.monotonic() - left_at
    assert job["status"] == "cancelled"
    assert ended_s < 2.5, f"the job ran on for {ended_s:.1f}s after the client left"
    rows = await wait_usage_rows(job_id)
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "cancelled" and row["provider"] == "openai" and row["model"] == "fake-model"
    assert READ_CHUNKS - 2 <= row["completion_tokens"] < TOKENS, dict(row)
    assert row["prompt_tokens"] > 0  # the fake models are priced at 0 (shared/data/prices.yaml)


@pytest.mark.timeout(60)
async def test_stream_disconnect_finish_setting_bills_whole_answer(stack: StackFactory) -> None:
    gw = await stack(workers=1, fake_args=SLOW_STREAM, env={"STREAM_DISCONNECT": "finish"})
    _, key = await new_tenant(gw)
    async with gw.client() as http:
        job_id, _ = await _stream_then_leave(http, key)
        job = await poll_job(http, key, job_id, until=finished, timeout_s=10)
    assert job["status"] == "succeeded"
    rows = await wait_usage_rows(job_id)
    assert len(rows) == 1 and rows[0]["status"] == "succeeded" and rows[0]["completion_tokens"] == TOKENS
