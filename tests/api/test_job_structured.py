"""Jobs carry more than text: the job's SSE replays `thinking`, `tool_call` and `refusal` events as the worker
wrote them, the job view has the tool calls, refusal and thinking of its result, and `callback_url` (the
gateway's own field) never reaches the request sent upstream, while any other unknown field does."""

import json

import httpx
import pytest
import redis.asyncio

from shared.content import TextPart, ThinkingPart, ToolCallPart
from shared.jobs import JobOutcome, JobStore, usage_row
from shared.models import Completion, FinishReason, JobStatus
from shared.streams import EventKind, append_event
from tests.api.conftest import app_client, make_tenant_key
from tests.api.test_job_events import _follow

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "use a tool"}]}


@pytest.fixture
async def key(sqlite_url: str) -> str:
    return await make_tenant_key(sqlite_url)


async def _submit(http: httpx.AsyncClient, key: str, body: dict[str, object]) -> str:
    response = await http.post("/api/v1/jobs", json=body, headers={"X-API-Key": key})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def test_callback_url_is_not_forwarded_but_other_unknown_fields_are(
        clean_redis: str, sqlite_url: str, key: str, raw: redis.asyncio.Redis) -> None:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, openai_api_key="sk",
                          webhook_secret="s" * 32, webhook_allow_private=True) as http:
        body = {**BODY, "callback_url": "http://127.0.0.1:9/hook", "verbosity": "low"}
        job_id = await _submit(http, key, body)
        record = await JobStore(raw, ttl_s=600, events_maxlen=1000).get(job_id)
    assert record is not None and record.callback_url == "http://127.0.0.1:9/hook"
    assert "callback_url" not in record.request.extra
    assert "callback_url" not in record.request.model_dump_json()
    assert record.request.extra == {"verbosity": "low"}  # forwarded verbatim (needs the openai wire of issue 13)


async def test_job_events_replay_structured_output_as_their_own_event_types(
        clean_redis: str, sqlite_url: str, key: str, raw: redis.asyncio.Redis) -> None:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, openai_api_key="sk") as http:
        job_id = await _submit(http, key, BODY)
        store = JobStore(raw, ttl_s=600, events_maxlen=1000)
        for kind, data in [
            (EventKind.THINKING, {"text": "I should look.", "signature": "sig"}),
            (EventKind.TOKEN, {"text": "Looking."}),
            (EventKind.TOOL_CALL, {"index": 0, "id": "call_1", "name": "lookup", "arguments": '{"q":"x"}'}),
            (EventKind.REFUSAL, {"text": "Not that part."}),
        ]:
            await append_event(raw, job_id, kind, data, maxlen=1000, ttl_s=600)
        completion = Completion(
            id=f"chatcmpl-{job_id}", model="gpt-4o-mini", provider="openai", content="Looking.",
            finish_reason=FinishReason.TOOL_CALLS, refusal="Not that part.",
            parts=[ThinkingPart(text="I should look.", signature="sig", provider="anthropic"),
                   TextPart(text="Looking."), ToolCallPart(id="call_1", name="lookup", arguments='{"q":"x"}')])
        record = await store.get(job_id)
        outcome = JobOutcome(status=JobStatus.SUCCEEDED, completion=completion, provider="openai",
                             model="gpt-4o-mini")
        assert await store.finish(record, outcome, usage_row(record, outcome, 5))
        status, events = await _follow(http, key, job_id)
        job = (await http.get(f"/api/v1/jobs/{job_id}", headers={"X-API-Key": key})).json()
    assert status == 200
    kinds = [kind for _, kind, _ in events]
    assert kinds == ["thinking", "token", "tool_call", "refusal", "done"]  # (no worker here: no `start`)
    assert events[2][2] == {"index": 0, "id": "call_1", "name": "lookup", "arguments": '{"q":"x"}'}
    assert [part["type"] for part in events[-1][2]["completion"]["parts"]] == ["thinking", "text", "tool_call"]
    assert job["thinking"] == [{"text": "I should look.", "signature": "sig"}]
    message = job["result"]["choices"][0]["message"]
    assert message["refusal"] == "Not that part."  # rendered by the openai wire of issue 13
    assert message["tool_calls"] == [{"id": "call_1", "type": "function",
                                      "function": {"name": "lookup", "arguments": '{"q":"x"}'}}]
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"q": "x"}


async def test_seed_completions_accept_the_chat_completions_body(
        clean_redis: str, sqlite_url: str, key: str, raw: redis.asyncio.Redis) -> None:
    """Tools and an unknown field are accepted on /api/v1/completions as on /v1/chat/completions (the job is
    queued; no worker runs here, so the answer is the REQUEST_TIMEOUT_S one)."""
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, openai_api_key="sk",
                          request_timeout_s=0.5) as http:
        response = await http.post("/api/v1/completions", headers={"X-API-Key": key},
                                   json={**BODY, "tools": tools, "verbosity": "low"})
        assert response.status_code == 504, response.text
        listed = (await http.get("/api/v1/jobs", headers={"X-API-Key": key})).json()["data"]
        job_id = listed[0]["id"]
        record = await JobStore(raw, ttl_s=600, events_maxlen=1000).get(job_id)
    assert record is not None and [tool.name for tool in record.request.tools] == ["lookup"]
    assert record.request.extra == {"verbosity": "low"}
