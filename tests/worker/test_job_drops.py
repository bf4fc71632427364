"""A job whose request a target cannot fully honour: served with the drops the route (`drop_params`) or the
client (`x-gateway-drop-params`, carried in the job) allowed, and every dropped parameter named in the job's
result, its `done` event and its usage record; refused, naming the parameter, when dropping is not allowed."""

import json
from typing import Any

import pytest

from shared.config import Settings
from shared.jobs import JobOptions, JobStore
from shared.keys import USAGE_STREAM
from shared.models import ChatRequest, JobStatus, Message, WireFormat
from shared.pricing import load_price_table
from shared.routing_table import RoutingTable, Target
from shared.streams import EventKind, read_events
from tests.factories import ScriptedProvider, make_fake_redis
from worker.breaker import CircuitBreaker
from worker.deps import WorkerDeps
from worker.jobs import run_completion
from worker.routing import RetryPolicy, Router

ROUTES = {"smart": [Target(provider="anthropic", model="claude-sonnet-4-5", base_url="http://u.invalid")]}
HOT = ChatRequest(model="smart", messages=[Message(role="user", content="hi")], temperature=1.5)


def _context(route_drops: frozenset[str] = frozenset()) -> tuple[dict[str, Any], WorkerDeps, ScriptedProvider]:
    redis = make_fake_redis()
    settings = Settings(redis_url="redis://unused:6379")
    provider = ScriptedProvider("anthropic", {"claude-sonnet-4-5": ["cool answer"]})
    router = Router({"anthropic": provider}, CircuitBreaker(redis, failure_threshold=100, open_s=1),
                    RetryPolicy(1, 0.0, 0.0))
    table = RoutingTable(ROUTES, use_defaults=False, drop_params={"smart": route_drops} if route_drops else None)
    deps = WorkerDeps(settings=settings, redis=redis, store=JobStore(redis, ttl_s=600, events_maxlen=1000),
                      routing_table=table, router=router, prices=load_price_table(settings), worker_id="w")
    return {"deps": deps, "job_try": 1, "job_id": "job_1"}, deps, provider


async def _usage_row(deps: WorkerDeps) -> dict[str, object]:
    entries = await deps.redis.xrange(USAGE_STREAM)
    assert len(entries) == 1
    row: dict[str, object] = json.loads(entries[0][1][b"row"])
    return row


async def _last_event(deps: WorkerDeps) -> tuple[EventKind, dict[str, object]]:
    last = None
    async for event in read_events(deps.redis, "job_1", block_ms=10):
        if event is None:
            break
        last = (event.kind, event.data)
    assert last is not None
    return last


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("who", ["route", "client"])
async def test_allowed_drop_is_named_in_result_event_and_usage(stream: bool, who: str) -> None:
    ctx, deps, provider = _context(frozenset({"temperature"}) if who == "route" else frozenset())
    options = JobOptions(drop_params=["temperature"] if who == "client" else [])
    await deps.store.create("job_1", "ten_1", HOT.model_copy(update={"stream": stream}), WireFormat.OPENAI, options)
    assert await run_completion(ctx, "job_1") == "succeeded"
    assert provider.drops == [frozenset({"temperature"})]
    record = await deps.store.get("job_1")
    assert record is not None and record.result is not None and record.result.dropped_params == ["temperature"]
    kind, data = await _last_event(deps)
    assert kind is EventKind.DONE
    completion = data["completion"]
    assert isinstance(completion, dict) and completion["dropped_params"] == ["temperature"]
    assert (await _usage_row(deps))["dropped_params"] == "temperature"


async def test_not_allowed_fails_naming_the_parameter_and_calls_nobody() -> None:
    ctx, deps, provider = _context()
    await deps.store.create("job_1", "ten_1", HOT, WireFormat.OPENAI)
    assert await run_completion(ctx, "job_1") == "failed"
    assert provider.calls == []
    record = await deps.store.get("job_1")
    assert record is not None and record.status is JobStatus.FAILED
    assert record.error is not None and record.error["code"] == "unsupported_parameter"
    assert "'temperature'" in str(record.error["message"])
    row = await _usage_row(deps)
    assert row["error_code"] == "unsupported_parameter" and row["dropped_params"] == ""


async def test_nothing_to_drop_leaves_the_usage_column_empty() -> None:
    ctx, deps, provider = _context(frozenset({"*"}))
    await deps.store.create("job_1", "ten_1", HOT.model_copy(update={"temperature": 0.5}), WireFormat.OPENAI)
    assert await run_completion(ctx, "job_1") == "succeeded"
    assert provider.drops == [frozenset()]
    assert (await _usage_row(deps))["dropped_params"] == ""
