"""An answer of any provider streamed to an Anthropic client as Messages events (`StreamRenderer`).

Content blocks open lazily, one per run of deltas of one kind: a `thinking` block (`thinking_delta`s, then
its `signature_delta`; a thinking delta after a signature starts a new block), a `redacted_thinking` block
(whole in its start event), a `text` block (`text_delta`s; an OpenAI refusal streams as text too), and a
`tool_use` block per tool call (`input_json_delta`s). `index` counts blocks, as Anthropic numbers them."""

from typing import Any

from shared.errors import GatewayError
from shared.models import Completion, Delta, Usage
from shared.wire._common import SSEEvent, dumps
from shared.wire.anthropic_errors import render_error
from shared.wire.anthropic_response import render_usage, stop_reason

__all__ = ["StreamRenderer"]


def _event(name: str, **fields: object) -> SSEEvent:
    return (name, dumps({"type": name, **fields}))


def _kind(delta: Delta) -> tuple[str, int] | None:
    """The block a delta belongs in: its kind, and for a tool call the call's index."""
    if delta.tool_call is not None:
        return ("tool_use", delta.tool_call.index)
    if delta.redacted_thinking is not None:
        return ("redacted_thinking", 0)
    if delta.thinking or delta.signature is not None:
        return ("thinking", 0)
    if delta.text or delta.refusal:
        return ("text", 0)
    return None


class StreamRenderer:
    """Renders one streamed answer as Anthropic's named events."""

    def __init__(self, completion_id: str, model: str, created: int, include_usage: bool) -> None:
        self.completion_id = completion_id
        self.model = model
        self.created = created
        self.include_usage = include_usage  # Anthropic streams always carry usage
        self._started = False
        self._open: tuple[str, int] | None = None
        self._signed = False
        self._index = -1

    def start(self, prompt_tokens: int = 0) -> list[SSEEvent]:
        self._started = True
        message: dict[str, object] = {
            "id": self.completion_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": render_usage(Usage(prompt_tokens=prompt_tokens)),
        }
        return [_event("message_start", message=message), _event("ping")]

    def delta(self, delta: Delta) -> list[SSEEvent]:
        events = self._ensure_started()
        kind = _kind(delta)
        if kind is None:
            return events
        if kind != self._open or kind[0] == "redacted_thinking" or (self._signed and delta.thinking):
            events += self._close()
            events.append(self._open_block(kind, delta))
        events += self._content(kind[0], delta)
        return events

    def finish(self, completion: Completion) -> list[SSEEvent]:
        events = self._ensure_started() + self._close()
        delta = {"stop_reason": stop_reason(completion), "stop_sequence": completion.stop_sequence}
        events += [
            _event("message_delta", delta=delta, usage=render_usage(completion.usage), provider=completion.provider),
            _event("message_stop"),
        ]
        return events

    def error(self, error: GatewayError) -> list[SSEEvent]:
        return [("error", dumps(render_error(error)))]

    def _ensure_started(self) -> list[SSEEvent]:
        return [] if self._started else self.start()

    def _close(self) -> list[SSEEvent]:
        if self._open is None:
            return []
        self._open = None
        return [_event("content_block_stop", index=self._index)]

    def _open_block(self, kind: tuple[str, int], delta: Delta) -> SSEEvent:
        self._open, self._signed = kind, False
        self._index += 1
        block: dict[str, Any]
        if kind[0] == "tool_use":
            call = delta.tool_call
            block = {"type": "tool_use", "id": call.id if call else "", "name": call.name if call else "",
                     "input": {}}
        elif kind[0] == "redacted_thinking":
            block = {"type": "redacted_thinking", "data": delta.redacted_thinking}
        elif kind[0] == "thinking":
            block = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            block = {"type": "text", "text": ""}
        return _event("content_block_start", index=self._index, content_block=block)

    def _content(self, kind: str, delta: Delta) -> list[SSEEvent]:
        pieces: list[dict[str, Any]] = []
        if kind == "tool_use" and delta.tool_call is not None and delta.tool_call.arguments:
            pieces.append({"type": "input_json_delta", "partial_json": delta.tool_call.arguments})
        elif kind == "thinking":
            if delta.thinking:
                pieces.append({"type": "thinking_delta", "thinking": delta.thinking})
            if delta.signature is not None:
                self._signed = True
                pieces.append({"type": "signature_delta", "signature": delta.signature})
        elif kind == "text":
            pieces.append({"type": "text_delta", "text": delta.text or delta.refusal})
        return [_event("content_block_delta", index=self._index, delta=piece) for piece in pieces]
