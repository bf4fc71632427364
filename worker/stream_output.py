"""What a streamed answer produces, in two shapes at once: the job events the API relays (deltas of one kind
coalesced into one entry: `token`, `thinking`, `tool_call`, `refusal`, see `shared.streams`) and the final
`Completion` (text, and its output blocks in order when there is more than text).

Plain text is the hot path: a text delta costs a few attribute checks and list appends, no model built;
structured deltas (rare: a handful per answer) take the slower general path. A new entry starts whenever the
kind changes, a tool call's index changes, a thinking block is closed by its signature, or a redacted block
comes, so order across kinds is kept and each entry renders as one piece of one output block."""

import time
from dataclasses import dataclass, field
from typing import Any

from shared.cache import Chunk
from shared.content import ContentPart, TextPart, ThinkingPart, ToolCallPart
from shared.models import Completion, Delta, FinishReason, ToolCallDelta, Usage
from shared.streams import EventKind

__all__ = ["FLUSH_INTERVAL_S", "FLUSH_MAX_CHARS", "OutputEvent", "StreamOutput", "TtlRenewal"]

# A streaming job appends its pending output when this long has passed since its last append, or when this
# much text waits: one Redis entry per few ms instead of one per token (worker.jobs, worker.text_completion_job).
FLUSH_INTERVAL_S = 0.015
FLUSH_MAX_CHARS = 512

# An append renews the stream's TTL this often, in fractions of the TTL (see TtlRenewal).
TTL_RENEW_FRACTION = 4

OutputEvent = tuple[EventKind, dict[str, object]]
_NONE: tuple[OutputEvent, ...] = ()


class TtlRenewal:
    """When an output append also renews the job stream's TTL. The claim set it (pick_jobs.lua) and the job's
    end sets it again, so an append need not: one EXPIRE per append was a third of a streamed chunk's commands.
    Only a job that streams for longer than a fraction of the TTL renews it, so its stream never expires while
    it runs."""

    def __init__(self, ttl_s: int) -> None:
        self.ttl_s = ttl_s
        self._every_s = ttl_s / TTL_RENEW_FRACTION
        self._next = time.monotonic() + self._every_s

    def due(self) -> int | None:
        """The TTL to set with this append, or None."""
        now = time.monotonic()
        if now < self._next:
            return None
        self._next = now + self._every_s
        return self.ttl_s


@dataclass
class _Block:
    """One output block of the answer being assembled."""

    kind: str  # "text", "thinking", "redacted", "tool_call"
    pieces: list[str] = field(default_factory=list)
    signature: str | None = None
    call_id: str | None = None
    name: str | None = None
    index: int = 0


class StreamOutput:
    """Feed it every delta (`add`); flush its pending entry when the caller's timer says (`flush`); build the
    Completion at the end (`completion`). `deltas` counts output deltas (about one token each)."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.deltas = 0
        self.finish_reason = FinishReason.STOP
        self.stop_sequence: str | None = None
        self.system_fingerprint: str | None = None
        self.service_tier: str | None = None
        self.usage = Usage()
        self.pending_chars = 0
        self._blocks: list[_Block] = []
        self._text_block: _Block | None = None  # the block text deltas extend now
        self._thinking: _Block | None = None  # an open thinking block (no signature yet)
        self._calls: dict[int, _Block] = {}
        self._refusal: list[str] = []
        self._logprobs: dict[str, list[Any]] | None = None
        # the pending entry
        self._kind: EventKind | None = None
        self._pieces: list[str] = []
        self._head: dict[str, object] = {}
        self._closed = False  # the pending entry takes no more pieces (signed or redacted thinking)
        self._entry_logprobs: dict[str, list[Any]] | None = None

    @property
    def has_pending(self) -> bool:
        return self._kind is not None

    def add(self, delta: Delta) -> tuple[OutputEvent, ...]:
        """Take one delta; returns the entries to append now (the previous run, when the kind changed)."""
        text = delta.text
        kind = self._kind
        if (text and (kind is EventKind.TOKEN or kind is None) and delta.logprobs is None and delta.tool_call is None
                and not delta.thinking and not delta.refusal and delta.signature is None
                and delta.redacted_thinking is None):
            # Hot path: plain text after text (or after a flush). No model built, no flush decided here.
            self.deltas += 1
            self._kind = EventKind.TOKEN
            self._pieces.append(text)
            self.pending_chars += len(text)
            block = self._text_block
            if block is not None:
                block.pieces.append(text)
            else:
                self._text_block = _Block("text", [text])
                self._blocks.append(self._text_block)
            if delta.finish_reason is not None or delta.usage is not None or delta.stop_sequence is not None:
                self._end_of_answer(delta)
            return _NONE
        ready = self._structured(delta)
        self._end_of_answer(delta)
        return ready

    def flush(self) -> OutputEvent | None:
        """The pending entry, which then starts afresh; None when nothing is pending."""
        kind = self._kind
        if kind is None:
            return None
        data: dict[str, object] = dict(self._head)
        joined = "".join(self._pieces)
        if kind is EventKind.TOOL_CALL:
            data["arguments"] = joined
        elif "redacted" not in data:
            data = {"text": joined, **data}
        if self._entry_logprobs is not None:
            data["logprobs"] = self._entry_logprobs
        self._kind, self._pieces, self._head, self._closed = None, [], {}, False
        self._entry_logprobs, self.pending_chars = None, 0
        return kind, data

    def completion(self, completion_id: str, model: str) -> Completion:
        text = "".join(piece for block in self._blocks if block.kind == "text" for piece in block.pieces)
        parts: list[ContentPart] = []
        if any(block.kind != "text" for block in self._blocks):
            parts = [self._part(block) for block in self._blocks]
        logprobs: dict[str, Any] | None = dict(self._logprobs) if self._logprobs is not None else None
        return Completion(id=completion_id, model=model, provider=self.provider, content=text,
                          finish_reason=self.finish_reason, usage=self.usage, parts=parts,
                          refusal="".join(self._refusal) or None, stop_sequence=self.stop_sequence,
                          logprobs=logprobs, system_fingerprint=self.system_fingerprint,
                          service_tier=self.service_tier)

    # --- the general path ---------------------------------------------------------------------------

    def _structured(self, delta: Delta) -> tuple[OutputEvent, ...]:
        ready: list[OutputEvent] = []
        if delta.thinking or delta.signature is not None:
            self._add_thinking(delta, ready)
        if delta.redacted_thinking is not None:
            self._add_redacted(delta.redacted_thinking, ready)
        if delta.text:
            self._start(EventKind.TOKEN, None, ready)
            self._pieces.append(delta.text)
            self.pending_chars += len(delta.text)
            if self._text_block is None:
                self._text_block = _Block("text")
                self._blocks.append(self._text_block)
            self._text_block.pieces.append(delta.text)
        if delta.refusal:
            self._start(EventKind.REFUSAL, None, ready)
            self._pieces.append(delta.refusal)
            self.pending_chars += len(delta.refusal)
            self._refusal.append(delta.refusal)
        if delta.tool_call is not None:
            self._add_tool_call(delta.tool_call, ready)
        if delta.logprobs is not None:
            self._add_logprobs(delta.logprobs)
        if (delta.text or delta.thinking or delta.refusal or delta.tool_call is not None
                or delta.signature is not None or delta.redacted_thinking is not None):
            self.deltas += 1  # an output delta (a finish- or usage-only delta is not)
        return tuple(ready)

    def _start(self, kind: EventKind, key: object, ready: list[OutputEvent]) -> None:
        """Make the pending entry one of `kind` (and tool call `key`), flushing a different one first."""
        if self._kind is kind and not self._closed and (key is None or self._head.get("index") == key):
            return
        previous = self.flush()
        if previous is not None:
            ready.append(previous)
        self._kind = kind
        if kind is not EventKind.TOKEN:
            self._text_block = None  # text after another kind of output is a new text block
        if kind is not EventKind.THINKING:
            self._thinking = None  # likewise thinking (a provider that sends no signature)

    def _add_thinking(self, delta: Delta, ready: list[OutputEvent]) -> None:
        self._start(EventKind.THINKING, None, ready)
        block = self._thinking
        if block is None:
            block = self._thinking = _Block("thinking")
            self._blocks.append(block)
        if delta.thinking:
            self._pieces.append(delta.thinking)
            self.pending_chars += len(delta.thinking)
            block.pieces.append(delta.thinking)
        if delta.signature is not None:
            block.signature = delta.signature
            self._head["signature"] = delta.signature
            self._closed, self._thinking = True, None

    def _add_redacted(self, data: str, ready: list[OutputEvent]) -> None:
        self._closed = True  # never joined to the entry before it
        self._start(EventKind.THINKING, None, ready)
        self._head["redacted"] = data
        self._closed = True
        self._thinking = None
        self._blocks.append(_Block("redacted", [data]))

    def _add_tool_call(self, piece: ToolCallDelta, ready: list[OutputEvent]) -> None:
        self._start(EventKind.TOOL_CALL, piece.index, ready)
        self._head.setdefault("index", piece.index)
        block = self._calls.get(piece.index)
        if block is None:
            block = self._calls[piece.index] = _Block("tool_call", index=piece.index)
            self._blocks.append(block)
        for name, value in (("id", piece.id), ("name", piece.name)):
            if value is not None:
                self._head.setdefault(name, value)
        block.call_id = block.call_id or piece.id
        block.name = block.name or piece.name
        if piece.arguments:
            self._pieces.append(piece.arguments)
            self.pending_chars += len(piece.arguments)
            block.pieces.append(piece.arguments)

    def _add_logprobs(self, logprobs: dict[str, Any]) -> None:
        """OpenAI's logprobs (`content` and `refusal` token lists) are concatenated, per entry and in all."""
        self._entry_logprobs = _merged(self._entry_logprobs, logprobs)
        self._logprobs = _merged(self._logprobs, logprobs)

    def _end_of_answer(self, delta: Delta) -> None:
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason
        if delta.stop_sequence is not None:
            self.stop_sequence = delta.stop_sequence
        if delta.usage is not None:
            self.usage = delta.usage
        self.system_fingerprint = delta.system_fingerprint or self.system_fingerprint
        self.service_tier = delta.service_tier or self.service_tier

    def _part(self, block: _Block) -> ContentPart:
        joined = "".join(block.pieces)
        if block.kind == "thinking":
            return ThinkingPart(text=joined, signature=block.signature, provider=self.provider)
        if block.kind == "redacted":
            return ThinkingPart(redacted=joined, provider=self.provider)
        if block.kind == "tool_call":
            return ToolCallPart(id=block.call_id or f"call_{block.index}", name=block.name or "", arguments=joined)
        return TextPart(text=joined)


def chunk_of(event: OutputEvent) -> Chunk:
    """How a cache entry keeps an output entry: plain text as its string (as before), anything else whole."""
    kind, data = event
    if kind is EventKind.TOKEN and len(data) == 1:
        return str(data["text"])
    return {"event": kind.value, "data": data}


def _merged(into: dict[str, list[Any]] | None, more: dict[str, Any]) -> dict[str, list[Any]]:
    merged = dict(into or {})
    for name, items in more.items():
        if isinstance(items, list):
            merged[name] = [*merged.get(name, []), *items]
    return merged
