"""A streamed answer with more than text (thinking, tool calls, a refusal) goes through the job: each kind of
output is its own job event in order, the cache chunks keep them, and the job's Completion has them all."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.cache import ResponseCache
from shared.content import TextPart, ThinkingPart, ToolCallPart
from shared.jobs import JobOptions
from shared.limits import Admission
from shared.models import Delta, FinishReason, ToolCallDelta, Usage, WireFormat
from shared.streams import EventKind, delta_from_event
from tests.factories import make_chat_request
from tests.worker.test_jobs import _context, _events, _held_context
from worker.jobs import run_completion

THINKING_AND_TOOLS = [
    Delta(thinking="Let me "), Delta(thinking="think."), Delta(signature="sig-1"),
    Delta(text="I will "), Delta(text="look it up."),
    Delta(tool_call=ToolCallDelta(index=0, id="call_a", name="lookup")),
    Delta(tool_call=ToolCallDelta(index=0, arguments='{"q": ')),
    Delta(tool_call=ToolCallDelta(index=0, arguments='"x"}')),
    Delta(tool_call=ToolCallDelta(index=1, id="call_b", name="other", arguments="{}")),
    Delta(finish_reason=FinishReason.TOOL_CALLS, usage=Usage(prompt_tokens=20, completion_tokens=9,
                                                              cache_write_tokens=5, reasoning_tokens=3)),
]


@pytest.fixture(autouse=True)
def _slow_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """No flush by time after the first (always at once): entries end only where the output's kind does."""
    monkeypatch.setattr("worker.jobs.FLUSH_INTERVAL_S", 3600.0)


def _scripted(deltas: list[Delta]) -> Any:
    async def stream(request: object, target: object, **_: object) -> AsyncIterator[Delta]:
        for delta in deltas:
            yield delta
    return stream


async def _run(deltas: list[Delta], ctx: dict[str, Any] | None = None, deps: Any = None,
               options: JobOptions | None = None) -> tuple[Any, list[tuple[EventKind, dict[str, object]]]]:
    if ctx is None:
        ctx, deps, _ = _context({})
    deps.router._providers["openai"].stream = _scripted(deltas)
    await deps.store.create("job_1", "ten_1", make_chat_request("gpt-4o", stream=True), WireFormat.OPENAI, options)
    assert await run_completion(ctx, "job_1") == "succeeded"
    record = await deps.store.get("job_1")
    assert record is not None and record.result is not None
    return record.result, await _events(deps, "job_1")


async def test_each_kind_of_output_is_its_own_event_in_order() -> None:
    _, events = await _run(THINKING_AND_TOOLS)
    output = [(kind, data) for kind, data in events if kind.is_output]
    assert output == [
        (EventKind.THINKING, {"text": "Let me "}),  # the first delta goes out at once
        (EventKind.THINKING, {"text": "think.", "signature": "sig-1"}),
        (EventKind.TOKEN, {"text": "I will look it up."}),
        (EventKind.TOOL_CALL, {"index": 0, "id": "call_a", "name": "lookup", "arguments": '{"q": "x"}'}),
        (EventKind.TOOL_CALL, {"index": 1, "id": "call_b", "name": "other", "arguments": "{}"}),
    ]
    assert events[-1][0] is EventKind.DONE


async def test_the_completion_has_its_parts_in_order() -> None:
    completion, _ = await _run(THINKING_AND_TOOLS)
    assert completion.content == "I will look it up."
    assert completion.parts == [
        ThinkingPart(text="Let me think.", signature="sig-1", provider="openai"),
        TextPart(text="I will look it up."),
        ToolCallPart(id="call_a", name="lookup", arguments='{"q": "x"}'),
        ToolCallPart(id="call_b", name="other", arguments="{}"),
    ]
    assert completion.finish_reason is FinishReason.TOOL_CALLS
    assert completion.usage == Usage(prompt_tokens=20, completion_tokens=9, cache_write_tokens=5, reasoning_tokens=3)


async def test_the_done_event_carries_the_structured_completion() -> None:
    _, events = await _run(THINKING_AND_TOOLS)
    done = events[-1][1]["completion"]
    assert isinstance(done, dict)
    assert [part["type"] for part in done["parts"]] == ["thinking", "text", "tool_call", "tool_call"]
    assert done["usage"]["cache_write_tokens"] == 5


async def test_events_turn_back_into_the_deltas_a_renderer_needs() -> None:
    _, events = await _run(THINKING_AND_TOOLS)
    deltas = [delta_from_event(kind, data) for kind, data in events if kind.is_output]
    assert deltas == [
        Delta(thinking="Let me "), Delta(thinking="think.", signature="sig-1"),
        Delta(text="I will look it up."),
        Delta(tool_call=ToolCallDelta(index=0, id="call_a", name="lookup", arguments='{"q": "x"}')),
        Delta(tool_call=ToolCallDelta(index=1, id="call_b", name="other", arguments="{}")),
    ]


async def test_refusal_redacted_thinking_stop_sequence_and_logprobs() -> None:
    logprob = {"token": "No", "logprob": -0.1, "bytes": [78, 111], "top_logprobs": []}
    completion, events = await _run([
        Delta(redacted_thinking="opaque-1"), Delta(redacted_thinking="opaque-2"),
        Delta(refusal="I can't "), Delta(refusal="help."),
        Delta(text="No", logprobs={"content": [logprob]}), Delta(text="pe", logprobs={"content": [logprob]}),
        Delta(finish_reason=FinishReason.STOP_SEQUENCE, stop_sequence="END", usage=Usage(completion_tokens=4)),
    ])
    output = [(kind, data) for kind, data in events if kind.is_output]
    assert output == [
        (EventKind.THINKING, {"redacted": "opaque-1"}), (EventKind.THINKING, {"redacted": "opaque-2"}),
        (EventKind.REFUSAL, {"text": "I can't help."}),
        (EventKind.TOKEN, {"text": "Nope", "logprobs": {"content": [logprob, logprob]}}),
    ]
    assert completion.refusal == "I can't help." and completion.content == "Nope"
    assert completion.stop_sequence == "END" and completion.finish_reason is FinishReason.STOP_SEQUENCE
    assert completion.logprobs == {"content": [logprob, logprob]}
    assert completion.thinking == [ThinkingPart(redacted="opaque-1", provider="openai"),
                                   ThinkingPart(redacted="opaque-2", provider="openai")]


async def test_plain_text_answer_keeps_text_events_and_no_parts() -> None:
    completion, events = await _run([Delta(text="a "), Delta(text="b"), Delta(finish_reason=FinishReason.STOP)])
    assert [data for kind, data in events if kind.is_output] == [{"text": "a "}, {"text": "b"}]
    assert completion.content == "a b" and completion.parts == []


async def test_cache_entry_keeps_structured_chunks() -> None:
    ctx, deps, _ = _context({})
    deps.router._providers["openai"].stream = _scripted(THINKING_AND_TOOLS)
    options = JobOptions(cache_digest="d1", cache_ttl_s=60, cache_leader=True)
    await deps.store.create("job_1", "ten_1", make_chat_request("gpt-4o", stream=True), WireFormat.OPENAI, options)
    assert await run_completion(ctx, "job_1") == "succeeded"
    answer = await ResponseCache(deps.redis).get("d1")
    assert answer is not None
    assert answer.chunks[2] == "I will look it up."
    assert answer.chunks[1] == {"event": "thinking", "data": {"text": "think.", "signature": "sig-1"}}
    assert answer.deltas()[3] == Delta(tool_call=ToolCallDelta(index=0, id="call_a", name="lookup",
                                                               arguments='{"q": "x"}'))


async def test_budget_ceiling_counts_every_output_delta(tmp_path: Path) -> None:
    """The held ceiling (3 tokens here) counts thinking and tool call pieces, not only text."""
    ctx, deps = _held_context(tmp_path, {})
    options = JobOptions(admission=Admission(tenant_id="ten_1", reserved_micros=100, budgeted=True))
    completion, _ = await _run([Delta(thinking="a"), Delta(thinking="b"),
                                Delta(tool_call=ToolCallDelta(index=0, id="c", name="f", arguments="{")),
                                Delta(text="never")] + [Delta(text="x")] * 10, ctx, deps, options)
    assert completion.finish_reason is FinishReason.LENGTH and completion.usage.completion_tokens == 3
    assert completion.content == "" and completion.tool_calls == [ToolCallPart(id="c", name="f", arguments="{")]
