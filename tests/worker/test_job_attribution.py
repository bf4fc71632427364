"""Attribution carried by a job (issue 15): the key, end user and tags the API put in `JobOptions` survive the
job record in Redis and land on the usage row the worker writes, for a success and for a failure."""

import json
from typing import Any

import pytest

from shared.config import Settings
from shared.jobs import JobOptions, JobStore
from shared.keys import USAGE_STREAM
from shared.models import ChatRequest, Message, WireFormat
from shared.pricing import load_price_table
from shared.routing_table import RoutingTable, Target
from tests.factories import ScriptedProvider, make_fake_redis
from worker.breaker import CircuitBreaker
from worker.deps import WorkerDeps
from worker.jobs import run_completion
from worker.routing import RetryPolicy, Router

ROUTES = {"smart": [Target(provider="openai", model="gpt-4o", base_url="http://u.invalid")]}
ASK = ChatRequest(model="smart", messages=[Message(role="user", content="hi")])
ATTRIBUTED = JobOptions(key_id="key_ci", end_user="alice", tags={"team": "search", "env": "prod"})


def _context() -> tuple[dict[str, Any], WorkerDeps]:
    redis = make_fake_redis()
    settings = Settings(redis_url="redis://unused:6379")
    provider = ScriptedProvider("openai", {"gpt-4o": ["an answer"]})
    router = Router({"openai": provider}, CircuitBreaker(redis, failure_threshold=100, open_s=1),
                    RetryPolicy(1, 0.0, 0.0))
    deps = WorkerDeps(settings=settings, redis=redis, store=JobStore(redis, ttl_s=600, events_maxlen=1000),
                      routing_table=RoutingTable(ROUTES, use_defaults=False), router=router,
                      prices=load_price_table(settings), worker_id="w")
    return {"deps": deps, "job_try": 1, "job_id": "job_1"}, deps


async def _usage_row(deps: WorkerDeps) -> dict[str, object]:
    entries = await deps.redis.xrange(USAGE_STREAM)
    assert len(entries) == 1
    row: dict[str, object] = json.loads(entries[0][1][b"row"])
    return row


async def test_job_record_keeps_attribution_through_redis() -> None:
    _, deps = _context()
    await deps.store.create("job_1", "ten_1", ASK, WireFormat.OPENAI, ATTRIBUTED)
    record = await deps.store.get("job_1")
    assert record is not None
    assert (record.key_id, record.end_user, record.tags) == ("key_ci", "alice", {"team": "search", "env": "prod"})


async def test_job_record_without_attribution_reads_back_empty() -> None:
    _, deps = _context()
    await deps.store.create("job_1", "ten_1", ASK, WireFormat.OPENAI)
    record = await deps.store.get("job_1")
    assert record is not None and (record.key_id, record.end_user, record.tags) == (None, None, {})


async def test_usage_row_of_a_finished_job_carries_attribution() -> None:
    ctx, deps = _context()
    await deps.store.create("job_1", "ten_1", ASK, WireFormat.OPENAI, ATTRIBUTED)
    assert await run_completion(ctx, "job_1") == "succeeded"
    row = await _usage_row(deps)
    assert (row["key_id"], row["end_user"], row["tags"]) == ("key_ci", "alice", {"team": "search", "env": "prod"})


async def test_usage_row_of_a_failed_job_carries_attribution() -> None:
    ctx, deps = _context()
    await deps.store.create("job_1", "ten_1", ASK.model_copy(update={"model": "unrouted"}), WireFormat.OPENAI,
                            ATTRIBUTED)
    assert await run_completion(ctx, "job_1") == "failed"
    row = await _usage_row(deps)
    assert (row["status"], row["key_id"], row["tags"]) == ("failed", "key_ci", {"team": "search", "env": "prod"})


async def test_usage_row_carries_no_text_unless_the_tenant_opted_in() -> None:
    ctx, deps = _context()
    await deps.store.create("job_1", "ten_1", ASK, WireFormat.OPENAI, ATTRIBUTED)
    assert await run_completion(ctx, "job_1") == "succeeded"
    assert "content" not in await _usage_row(deps)


async def test_usage_row_carries_prompt_and_answer_for_a_tenant_that_opted_in() -> None:
    ctx, deps = _context()
    await deps.store.create("job_1", "ten_1", ASK, WireFormat.OPENAI,
                            ATTRIBUTED.model_copy(update={"content_days": 7}))
    assert await run_completion(ctx, "job_1") == "succeeded"
    row = await _usage_row(deps)
    content = row["content"]
    assert isinstance(content, dict)
    assert content["request"]["messages"][0]["content"] == [{"type": "text", "text": "hi"}]
    assert content["answer"] == "an answer"
    assert content["expires_at"] == pytest.approx(float(str(row["created_at"])) + 7 * 86_400)
