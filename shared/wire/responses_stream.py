"""One answer as Responses stream events (`response.created` ... `response.completed`), for a stream the
client attached to (`stream: true`) and for a replay of a stored job's events (`GET /v1/responses/{id}?
stream=true`): every event carries its `sequence_number`, counted from 0 by this renderer alone, so the same
job events always give the same numbers and a client resumes with `starting_after` without gap or repeat.

A new output item opens whenever the kind of output changes (thinking, text or refusal, a tool call), as the
internal `Delta` stream says; its ids are the ones `render_output` gives a stored response."""

from shared.content import ThinkingPart
from shared.errors import GatewayError
from shared.models import Completion, Delta, ToolCallDelta
from shared.wire._common import SSEEvent, dumps
from shared.wire.responses_response import (
    ResponseShell,
    function_call_item,
    item_id,
    message_item,
    reasoning_item,
    render_response,
    response_status,
)

__all__ = ["ResponsesStreamRenderer"]

CANCELLED = "job_cancelled"


class _Item:
    """The output item being streamed: its kind, position and what it has gathered so far."""

    def __init__(self, kind: str, index: int, identifier: str) -> None:
        self.kind, self.index, self.id = kind, index, identifier
        self.parts: list[list[str]] = []  # message: [kind, text] per content part; reasoning: one text part
        self.call_id: str | None = None
        self.name: str | None = None
        self.signature: str | None = None
        self.redacted: str | None = None
        self.arguments = ""

    @property
    def open_part(self) -> str | None:
        return self.parts[-1][0] if self.parts else None


class ResponsesStreamRenderer:
    """Stateful, one per stream. `initial_status` is `in_progress`, or `queued` for a background response."""

    def __init__(self, shell: ResponseShell, initial_status: str = "in_progress") -> None:
        self.shell = shell
        self.initial_status = initial_status
        self.sequence = 0
        self.items: list[dict[str, object]] = []
        self._current: _Item | None = None
        self._calls: dict[int, _Item] = {}

    def start(self, prompt_tokens: int = 0) -> list[SSEEvent]:
        """`response.created` and `response.in_progress` (`prompt_tokens` is for parity with other formats)."""
        created = self._event("response.created", response=render_response(self.shell, status=self.initial_status))
        progress = self._event("response.in_progress", response=render_response(self.shell, status="in_progress"))
        return [created, progress]

    def delta(self, delta: Delta) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if delta.thinking or delta.signature is not None or delta.redacted_thinking is not None:
            events += self._thinking(delta)
        if delta.text:
            events += self._message_text("output_text", delta.text)
        if delta.refusal:
            events += self._message_text("refusal", delta.refusal)
        if delta.tool_call is not None:
            events += self._tool_call(delta.tool_call)
        return events

    def finish(self, completion: Completion) -> list[SSEEvent]:
        events = self._close()
        if not self.items:  # an empty answer is still one (empty) message, as a stored response renders it
            events += self._open("message", "output_text") + self._close()
        self._seal_reasoning(completion)
        status, _ = response_status(completion)
        name = "response.completed" if status == "completed" else "response.incomplete"
        response = render_response(self.shell, status=status, completion=completion, output=self.items)
        return [*events, self._event(name, response=response)]

    def error(self, error: GatewayError) -> list[SSEEvent]:
        """`response.failed` (status `cancelled` when the job was cancelled), with the items streamed so far."""
        events = self._close()
        cancelled = error.code == CANCELLED
        response = render_response(self.shell, status="cancelled" if cancelled else "failed", output=self.items,
                                   error=None if cancelled else error)
        return [*events, self._event("response.failed", response=response)]

    def _seal_reasoning(self, completion: Completion) -> None:
        """The final reasoning items seal the thinking as the completion holds it, with the provider that made
        it (which the deltas do not say): what a client sends back must reach that provider again."""
        reasoning = [index for index, item in enumerate(self.items) if item.get("type") == "reasoning"]
        if len(reasoning) == len(completion.thinking):
            for index, part in zip(reasoning, completion.thinking, strict=True):
                self.items[index] = reasoning_item(str(self.items[index]["id"]), part)

    # --- items ---------------------------------------------------------------------------------------

    def _thinking(self, delta: Delta) -> list[SSEEvent]:
        current = self._current
        events: list[SSEEvent] = []
        if current is None or current.kind != "reasoning" or current.signature or current.redacted:
            events += self._close() + self._open("reasoning", None)
        item = self._require_current()
        if delta.thinking:
            if not item.parts:
                item.parts.append(["reasoning_text", ""])
                events.append(self._part_event("response.content_part.added", item, 0, ""))
            item.parts[0][1] += delta.thinking
            events.append(self._event("response.reasoning_text.delta", item_id=item.id, output_index=item.index,
                                      content_index=0, delta=delta.thinking))
        item.signature = delta.signature or item.signature
        item.redacted = delta.redacted_thinking or item.redacted
        return events

    def _message_text(self, kind: str, text: str) -> list[SSEEvent]:
        current = self._current
        events: list[SSEEvent] = []
        if current is None or current.kind != "message":
            events += self._close() + self._open("message", kind)
        elif current.open_part != kind:
            events += self._close_part(current) + self._open_part(current, kind)
        item = self._require_current()
        item.parts[-1][1] += text
        name = "response.output_text.delta" if kind == "output_text" else "response.refusal.delta"
        extra: dict[str, object] = {"logprobs": []} if kind == "output_text" else {}
        events.append(self._event(name, item_id=item.id, output_index=item.index,
                                  content_index=len(item.parts) - 1, delta=text, **extra))
        return events

    def _tool_call(self, piece: ToolCallDelta) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        item = self._calls.get(piece.index)
        if item is None:
            events += self._close() + self._open("function_call", None, piece)
            item = self._calls[piece.index] = self._require_current()
        if piece.arguments:
            item.arguments += piece.arguments
            events.append(self._event("response.function_call_arguments.delta", item_id=item.id,
                                      output_index=item.index, delta=piece.arguments))
        return events

    def _open(self, kind: str, part: str | None, call: ToolCallDelta | None = None) -> list[SSEEvent]:
        index = len(self.items)
        item = self._current = _Item(kind, index, item_id(self.shell.id, kind, index))
        self.items.append({})  # its place, filled when it is done
        placeholder: dict[str, object] = {"id": item.id, "type": kind, "status": "in_progress"}
        if call is not None:
            item.call_id, item.name = call.id or f"call_{item.id}", call.name or ""
            placeholder = self._function_call(item, "in_progress")
        elif kind == "message":
            placeholder = message_item(item.id, "", None, "in_progress")
            placeholder["content"] = []
        elif kind == "reasoning":
            placeholder.update(summary=[], content=[])
        events = [self._event("response.output_item.added", output_index=index, item=placeholder)]
        return events + (self._open_part(item, part) if part is not None else [])

    def _open_part(self, item: _Item, kind: str) -> list[SSEEvent]:
        item.parts.append([kind, ""])
        return [self._part_event("response.content_part.added", item, len(item.parts) - 1, "")]

    def _close_part(self, item: _Item) -> list[SSEEvent]:
        kind, text = item.parts[-1]
        index = len(item.parts) - 1
        names = {"output_text": ("response.output_text.done", "text"), "refusal": ("response.refusal.done", "refusal"),
                 "reasoning_text": ("response.reasoning_text.done", "text")}
        name, field = names[kind]
        extra: dict[str, object] = {"logprobs": []} if kind == "output_text" else {}
        done = self._event(name, item_id=item.id, output_index=item.index, content_index=index,
                           **{field: text}, **extra)
        return [done, self._part_event("response.content_part.done", item, index, text)]

    def _close(self) -> list[SSEEvent]:
        item, self._current = self._current, None
        if item is None:
            return []
        events = self._close_part(item) if item.parts else []
        if item.kind == "function_call":
            events.append(self._event("response.function_call_arguments.done", item_id=item.id,
                                      output_index=item.index, name=item.name or "", arguments=item.arguments))
        done = self._finished(item)
        self.items[item.index] = done
        return [*events, self._event("response.output_item.done", output_index=item.index, item=done)]

    def _finished(self, item: _Item) -> dict[str, object]:
        if item.kind == "function_call":
            return self._function_call(item, "completed")
        if item.kind == "reasoning":
            thinking = "".join(text for _, text in item.parts)
            return reasoning_item(item.id, ThinkingPart(text=thinking, signature=item.signature,
                                                        redacted=item.redacted))
        text = "".join(part for kind, part in item.parts if kind == "output_text")
        refusal = "".join(part for kind, part in item.parts if kind == "refusal") or None
        return message_item(item.id, text, refusal)

    def _function_call(self, item: _Item, status: str) -> dict[str, object]:
        return function_call_item(item.id, item.call_id or "", item.name or "", item.arguments, status)

    def _require_current(self) -> _Item:
        """The item just opened; callers open one first, so None is a bug in this renderer."""
        if self._current is None:
            raise GatewayError("internal error: the Responses stream renderer has no open item")
        return self._current

    def _part_event(self, name: str, item: _Item, index: int, text: str) -> SSEEvent:
        kind = item.parts[index][0]
        part: dict[str, object] = {"type": kind, "refusal" if kind == "refusal" else "text": text}
        if kind == "output_text":
            part.update(annotations=[], logprobs=[])
        return self._event(name, item_id=item.id, output_index=item.index, content_index=index, part=part)

    def _event(self, kind: str, /, **fields: object) -> SSEEvent:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return kind, dumps(event)

