"""The API side of structured output, at the Delta level (no Redis, no wire format): job events of every
output kind become the deltas a renderer is given, a restart after any output ends the stream, and a cached
answer replays its thinking, tool calls and refusal, streamed or not."""

import json

from api.streaming import _replay, render_event
from shared.cache import CachedAnswer
from shared.content import TextPart, ThinkingPart, ToolCallPart
from shared.errors import GatewayError
from shared.models import Completion, Delta, FinishReason, ToolCallDelta
from shared.streams import Event, EventKind

SSEvents = list[tuple[str | None, str]]


class Recorder:
    """A renderer that records what it is given."""

    def __init__(self) -> None:
        self.deltas: list[Delta] = []
        self.finished: Completion | None = None
        self.errors: list[GatewayError] = []

    def start(self, prompt_tokens: int = 0) -> SSEvents:
        return [("start", "{}")]

    def delta(self, delta: Delta) -> SSEvents:
        self.deltas.append(delta)
        return [("delta", delta.model_dump_json(exclude_defaults=True))]

    def finish(self, completion: Completion) -> SSEvents:
        self.finished = completion
        return [("finish", "{}")]

    def error(self, error: GatewayError) -> SSEvents:
        self.errors.append(error)
        return [("error", json.dumps(error.to_dict()))]


def _event(kind: EventKind, data: dict[str, object], n: int = 1) -> Event:
    return Event(id=f"1-{n}", kind=kind, data=data)


def test_every_output_event_becomes_its_delta() -> None:
    renderer = Recorder()
    events = [
        _event(EventKind.THINKING, {"text": "hmm", "signature": "s"}),
        _event(EventKind.THINKING, {"redacted": "xyz"}),
        _event(EventKind.TOKEN, {"text": "Hi"}),
        _event(EventKind.TOKEN, {"text": "!", "logprobs": {"content": [{"token": "!", "logprob": 0.0}]}}),
        _event(EventKind.TOOL_CALL, {"index": 0, "id": "call_1", "name": "f", "arguments": "{}"}),
        _event(EventKind.REFUSAL, {"text": "no"}),
    ]
    for event in events:
        _, done = render_event(event, renderer, sent_tokens=False)
        assert not done
    assert renderer.deltas == [
        Delta(thinking="hmm", signature="s"), Delta(redacted_thinking="xyz"), Delta(text="Hi"),
        Delta(text="!", logprobs={"content": [{"token": "!", "logprob": 0.0}]}),
        Delta(tool_call=ToolCallDelta(index=0, id="call_1", name="f", arguments="{}")), Delta(refusal="no"),
    ]


def test_a_restart_after_a_tool_call_was_sent_ends_the_stream() -> None:
    renderer = Recorder()
    assert EventKind.TOOL_CALL.is_output and EventKind.THINKING.is_output and not EventKind.START.is_output
    _, done = render_event(_event(EventKind.RESET, {"attempt": 2}), renderer, sent_tokens=True)
    assert done and renderer.errors and renderer.errors[0].code == "stream_interrupted"


async def _replayed(answer: CachedAnswer) -> Recorder:
    renderer = Recorder()
    async for _ in _replay(answer, renderer):
        pass
    return renderer


async def test_a_cached_streamed_answer_replays_its_structured_chunks_in_order() -> None:
    completion = Completion(id="c", model="m", provider="anthropic", content="ok",
                            finish_reason=FinishReason.TOOL_CALLS)
    answer = CachedAnswer(completion=completion, cost_usd=0.1, chunks=[
        {"event": "thinking", "data": {"text": "t", "signature": "s"}}, "ok",
        {"event": "tool_call", "data": {"index": 0, "id": "toolu_1", "name": "get", "arguments": '{"a":1}'}},
    ])
    renderer = await _replayed(answer)
    assert renderer.deltas == [Delta(thinking="t", signature="s"), Delta(text="ok"),
                               Delta(tool_call=ToolCallDelta(index=0, id="toolu_1", name="get", arguments='{"a":1}'))]
    assert renderer.finished == completion


async def test_a_cached_answer_that_was_not_streamed_replays_from_its_parts() -> None:
    """A non-streamed answer is cached with one text chunk; streamed back, its tool calls must not be lost."""
    completion = Completion(id="c", model="m", provider="openai", content="Let me check.", refusal=None, parts=[
        ThinkingPart(text="plan", signature="sig", provider="anthropic"), TextPart(text="Let me check."),
        ToolCallPart(id="call_1", name="lookup", arguments='{"q":"x"}'),
        ToolCallPart(id="call_2", name="other", arguments="{}")])
    renderer = await _replayed(CachedAnswer(completion=completion, chunks=["Let me check."], cost_usd=0.0))
    assert renderer.deltas == [
        Delta(thinking="plan", signature="sig"), Delta(text="Let me check."),
        Delta(tool_call=ToolCallDelta(index=0, id="call_1", name="lookup", arguments='{"q":"x"}')),
        Delta(tool_call=ToolCallDelta(index=1, id="call_2", name="other", arguments="{}")),
    ]


async def test_a_cached_refusal_and_plain_text_replay() -> None:
    refused = Completion(id="c", model="m", provider="openai", content="", refusal="I can't help with that.")
    assert (await _replayed(CachedAnswer(completion=refused, chunks=[""], cost_usd=0))).deltas == [
        Delta(refusal="I can't help with that.")]
    plain = Completion(id="c", model="m", provider="openai", content="a b")
    assert (await _replayed(CachedAnswer(completion=plain, chunks=["a ", "b"], cost_usd=0))).deltas == [
        Delta(text="a "), Delta(text="b")]

