"""The completion job: claims its record, streams tokens into the job's stream, and commits the terminal
event, job state and usage record together, exactly once per job."""

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings
from shared.errors import UpstreamRejected
from shared.jobs import JobOptions, JobStore
from shared.keys import USAGE_STREAM
from shared.limits import Admission
from shared.models import Delta, FinishReason, JobStatus, WireFormat
from shared.pricing import load_price_table
from shared.routing_table import RoutingTable, Target
from shared.streams import EventKind, read_events
from tests.factories import ScriptedProvider, make_chat_request, make_fake_redis
from worker.breaker import CircuitBreaker
from worker.deps import WorkerDeps
from worker.jobs import run_completion
from worker.routing import RetryPolicy, Router

ROUTES = {"gpt-4o": [Target(provider="openai", model="gpt-4o", base_url="http://u.invalid")]}


def _context(script: dict[str, list[Exception | str]]) -> tuple[dict[str, Any], WorkerDeps, ScriptedProvider]:
    redis = make_fake_redis()
    settings = Settings(redis_url="redis://unused:6379")
    provider = ScriptedProvider("openai", script)
    router = Router({"openai": provider}, CircuitBreaker(redis, failure_threshold=100, open_s=1),
                    RetryPolicy(1, 0.0, 0.0))
    deps = WorkerDeps(settings=settings, redis=redis, store=JobStore(redis, ttl_s=600, events_maxlen=1000),
                      routing_table=RoutingTable(ROUTES, use_defaults=False), router=router,
                      prices=load_price_table(settings), worker_id="worker-test")
    return {"deps": deps, "job_try": 1, "job_id": "job_1"}, deps, provider


async def _events(deps: WorkerDeps, job_id: str) -> list[tuple[EventKind, dict[str, object]]]:
    events = []
    async for event in read_events(deps.redis, job_id, block_ms=10):
        if event is None:
            break
        events.append((event.kind, event.data))
    return events


async def test_job_success_commits_done_event_state_and_usage() -> None:
    ctx, deps, _ = _context({"gpt-4o": ["the answer is here"]})
    await deps.store.create("job_1", "ten_1", make_chat_request("gpt-4o"), WireFormat.OPENAI)
    assert await run_completion(ctx, "job_1") == "succeeded"
    record = await deps.store.get("job_1")
    assert record is not None and record.status is JobStatus.SUCCEEDED
    assert record.result is not None and record.result.content == "the answer is here"
    kinds = [kind for kind, _ in await _events(deps, "job_1")]
    assert kinds == [EventKind.START, EventKind.DONE]
    usage = await deps.redis.xrange(USAGE_STREAM)
    row = json.loads(usage[0][1][b"row"])
    assert len(usage) == 1 and row["request_id"] == "job_1" and row["status"] == "succeeded"
    # gpt-4o list price: 1 prompt token at $2.50/M + 4 completion tokens at $10/M
    assert row["cost_usd"] == pytest.approx(1 * 2.5e-6 + 4 * 10e-6, abs=1e-12)


async def test_job_stream_writes_tokens_then_done() -> None:
    ctx, deps, _ = _context({"gpt-4o": ["one two three"]})
    await deps.store.create("job_1", "ten_1", make_chat_request("gpt-4o", stream=True), WireFormat.OPENAI)
    await run_completion(ctx, "job_1")
    events = await _events(deps, "job_1")
    text = "".join(str(data["text"]) for kind, data in events if kind is EventKind.TOKEN)
    assert text == "one two three "
    assert events[-1][0] is EventKind.DONE


async def test_job_upstream_rejection_fails_job_with_error_event() -> None:
    ctx, deps, _ = _context({"gpt-4o": [UpstreamRejected("bad prompt", status=400)]})
    await deps.store.create("job_1", "ten_1", make_chat_request("gpt-4o"), WireFormat.OPENAI)
    assert await run_completion(ctx, "job_1") == "failed"
    events = await _events(deps, "job_1")
    assert events[-1][0] is EventKind.ERROR
    error = events[-1][1]["error"]
    assert isinstance(error, dict) and error["status"] == 400 and error["kind"] == "UpstreamRejected"


async def test_job_duplicate_delivery_is_recorded_once() -> None:
    ctx, deps, provider = _context({"gpt-4o": ["first", "second"]})
    await deps.store.create("job_1", "ten_1", make_chat_request("gpt-4o"), WireFormat.OPENAI)
    await run_completion(ctx, "job_1")
    assert await run_completion({**ctx, "job_try": 2}, "job_1") == "skipped"
    assert await deps.redis.xlen(USAGE_STREAM) == 1
    assert provider.calls == ["gpt-4o"]


async def test_job_cancelled_while_queued_never_calls_provider() -> None:
    ctx, deps, provider = _context({"gpt-4o": ["never"]})
    await deps.store.create("job_1", "ten_1", make_chat_request("gpt-4o"), WireFormat.OPENAI)
    outcome = await deps.store.request_cancel("job_1")
    assert outcome.status is JobStatus.CANCELLED and outcome.changed
    assert await run_completion(ctx, "job_1") == "skipped"
    assert provider.calls == []
    assert (await _events(deps, "job_1"))[-1][0] is EventKind.CANCELLED


async def test_job_cancelled_while_running_ends_cancelled() -> None:
    ctx, deps, _ = _context({"gpt-4o": ["x"]})
    gate = asyncio.Event()

    async def hang(request: object, target: object, **_: object) -> object:
        await gate.wait()
        raise AssertionError("the cancelled call must not complete")

    deps.router._providers["openai"].complete = hang  # type: ignore[method-assign]
    await deps.store.create("job_1", "ten_1", make_chat_request("gpt-4o"), WireFormat.OPENAI)
    task = asyncio.create_task(run_completion(ctx, "job_1"))
    await asyncio.sleep(0.05)
    assert (await deps.store.request_cancel("job_1")).changed
    task.cancel()  # what arq does when it sees the job in arq:abort
    await asyncio.gather(task, return_exceptions=True)
    record = await deps.store.get("job_1")
    assert record is not None and record.status is JobStatus.CANCELLED
    assert (await _events(deps, "job_1"))[-1][0] is EventKind.CANCELLED


async def test_job_retry_after_crash_writes_reset_event() -> None:
    ctx, deps, _ = _context({"gpt-4o": ["again"]})
    await deps.store.create("job_1", "ten_1", make_chat_request("gpt-4o"), WireFormat.OPENAI)
    await deps.store.mark_running("job_1", 1, "worker-dead")  # a worker claimed it, then died
    await run_completion({**ctx, "job_try": 2}, "job_1")
    kinds = [kind for kind, _ in await _events(deps, "job_1")]
    assert kinds == [EventKind.START, EventKind.RESET, EventKind.DONE]


def _held_context(tmp_path: Path, script: dict[str, list[Exception | str]]) -> tuple[dict[str, Any], WorkerDeps]:
    """A worker whose price table says gpt-4o answers at most 3 tokens: a table that understates the model."""
    ctx, deps, _ = _context(script)
    prices = tmp_path / "prices.yaml"
    prices.write_text("gpt-4o: {input: 2.5, output: 10.0, max_output_tokens: 3}\n")
    deps.prices = load_price_table(Settings(redis_url="redis://unused:6379", prices_file=prices))
    return ctx, deps


def _budgeted(budgeted: bool = True) -> JobOptions:
    return JobOptions(admission=Admission(tenant_id="ten_1", reserved_micros=100, budgeted=budgeted))


async def test_job_budgeted_stream_ends_at_the_reserved_output(tmp_path: Path) -> None:
    ctx, deps = _held_context(tmp_path, {})
    closed = asyncio.Event()

    async def endless(request: object, target: object, **_: object) -> AsyncIterator[Delta]:
        try:
            for index in range(1000):
                yield Delta(text=f"w{index} ")
        finally:
            closed.set()

    deps.router._providers["openai"].stream = endless  # type: ignore[method-assign]
    await deps.store.create("job_1", "ten_1", make_chat_request("gpt-4o", stream=True), WireFormat.OPENAI,
                            _budgeted())
    assert await run_completion(ctx, "job_1") == "succeeded"
    record = await deps.store.get("job_1")
    assert record is not None and record.result is not None
    assert record.result.content == "w0 w1 w2 " and record.result.finish_reason is FinishReason.LENGTH
    assert record.result.usage.completion_tokens == 3 and closed.is_set()
    row = json.loads((await deps.redis.xrange(USAGE_STREAM))[0][1][b"row"])
    assert row["completion_tokens"] == 3  # billed what was produced


async def test_job_stream_without_budget_or_with_max_tokens_is_not_held(tmp_path: Path) -> None:
    ctx, deps = _held_context(tmp_path, {"gpt-4o": ["a b c d e", "a b c d e"]})
    await deps.store.create("job_1", "ten_1", make_chat_request("gpt-4o", stream=True), WireFormat.OPENAI,
                            _budgeted(False))
    limited = make_chat_request("gpt-4o", stream=True).model_copy(update={"max_tokens": 10})
    await deps.store.create("job_2", "ten_1", limited, WireFormat.OPENAI, _budgeted())
    for job_id in ("job_1", "job_2"):
        assert await run_completion({**ctx, "job_id": job_id}, job_id) == "succeeded"
        record = await deps.store.get(job_id)
        assert record is not None and record.result is not None and record.result.content == "a b c d e "


async def test_job_non_streamed_answer_past_the_table_maximum_is_billed_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ctx, deps = _held_context(tmp_path, {"gpt-4o": ["a b c d e"]})
    await deps.store.create("job_1", "ten_1", make_chat_request("gpt-4o"), WireFormat.OPENAI, _budgeted())
    assert await run_completion(ctx, "job_1") == "succeeded"
    row = json.loads((await deps.redis.xrange(USAGE_STREAM))[0][1][b"row"])
    assert row["completion_tokens"] == 5
    assert "more than the 3 of its max_output_tokens" in caplog.text
