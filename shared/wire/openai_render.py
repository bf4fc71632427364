"""What goes back to a Chat Completions client: the `chat.completion` body (`render_completion`), the
`chat.completion.chunk` stream (`StreamRenderer`) and errors, whichever provider served the answer.

An answer Anthropic served reads as OpenAI would have written it: `tool_use` blocks are `tool_calls`, thinking
is not shown (OpenAI never shows reasoning text; its tokens are in `completion_tokens_details`), and a refusal
stop reason is the message's `refusal` with finish `stop`. An answer OpenAI served comes back with every field
OpenAI gave, including those kept verbatim in `Completion.extra`."""

import time
from collections.abc import Mapping

from shared.errors import GatewayError
from shared.models import Completion, Delta, FinishReason, ToolCallDelta, WireFormat
from shared.wire._common import SSEEvent, dumps
from shared.wire.openai_common import CLIENT_FINISH_REASONS, render_usage

__all__ = ["StreamRenderer", "render_completion", "render_error"]


def _openai_extra(completion: Completion) -> dict[str, object]:
    return dict(completion.extra) if completion.extra_format == WireFormat.OPENAI else {}


def render_completion(completion: Completion) -> dict[str, object]:
    """A `chat.completion` object, plus the `provider` that served it."""
    extra = _openai_extra(completion)
    message_extra = extra.pop("message", None)
    other_choices = extra.pop("choices", None)
    raw_usage = extra.pop("usage", None)
    refusal, text = completion.refusal, completion.content
    if refusal is None and completion.finish_reason == FinishReason.REFUSAL and text:
        refusal, text = text, ""
    calls = completion.tool_calls
    # OpenAI's content is null beside tool calls or a refusal when there is no text.
    content = (text or None) if calls or refusal is not None else text
    message: dict[str, object] = {**(message_extra if isinstance(message_extra, Mapping) else {}),
                                  "role": "assistant", "content": content, "refusal": refusal}
    if calls:
        message["tool_calls"] = [{"id": call.id, "type": "function",
                                  "function": {"name": call.name, "arguments": call.arguments}} for call in calls]
    choice = {"index": 0, "message": message, "logprobs": completion.logprobs,
              "finish_reason": CLIENT_FINISH_REASONS[completion.finish_reason]}
    body: dict[str, object] = {
        **extra,
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created or int(time.time()),
        "model": completion.model,
        "choices": [choice, *(other_choices if isinstance(other_choices, list) else [])],
        "usage": render_usage(completion.usage, raw_usage),
        "provider": completion.provider,
    }
    _add_service_fields(body, completion)
    return body


def _add_service_fields(body: dict[str, object], completion: Completion) -> None:
    if completion.system_fingerprint is not None:
        body["system_fingerprint"] = completion.system_fingerprint
    if completion.service_tier is not None:
        body["service_tier"] = completion.service_tier


def render_error(error: GatewayError) -> dict[str, object]:
    return {"error": {"message": error.message, "type": error.type, "code": error.code, "param": None}}


class StreamRenderer:
    """Renders one streamed answer as `chat.completion.chunk` events ending in `[DONE]`.

    Tool calls are numbered 0, 1, ... in the order they first appear, whatever index the serving provider gave
    them (Anthropic counts content blocks); a call's first piece carries its id, type, name and empty
    arguments, as OpenAI's own first piece does, and its argument fragments follow."""

    def __init__(self, completion_id: str, model: str, created: int, include_usage: bool) -> None:
        self.completion_id = completion_id
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self._started = False
        self._calls: dict[int, int] = {}
        self._refusal_sent = False

    def start(self, prompt_tokens: int = 0) -> list[SSEEvent]:
        """The role chunk. `prompt_tokens` is accepted for parity with the Anthropic renderer."""
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def delta(self, delta: Delta) -> list[SSEEvent]:
        """Text, refusal and tool-call pieces; thinking (text, signature, redacted) is not shown."""
        events = self._ensure_started()
        pieces: list[dict[str, object]] = []
        if delta.refusal:
            self._refusal_sent = True
            pieces.append({"refusal": delta.refusal})
        if delta.text:
            pieces.append({"content": delta.text})
        if delta.tool_call is not None:
            pieces += self._tool_call(delta.tool_call)
        if delta.logprobs is not None and not pieces:
            pieces.append({})
        for position, piece in enumerate(pieces):
            events.append(self._chunk(piece, logprobs=delta.logprobs if position == 0 else None))
        return events

    def _tool_call(self, piece: ToolCallDelta) -> list[dict[str, object]]:
        pieces: list[dict[str, object]] = []
        index = self._calls.get(piece.index)
        if index is None:
            index = self._calls[piece.index] = len(self._calls)
            function = {"name": piece.name or "", "arguments": ""}
            call = {"index": index, "id": piece.id or f"call_{self.completion_id}_{index}", "type": "function",
                    "function": function}
            pieces.append({"tool_calls": [call]})
        if piece.arguments:
            pieces.append({"tool_calls": [{"index": index, "function": {"arguments": piece.arguments}}]})
        return pieces

    def finish(self, completion: Completion) -> list[SSEEvent]:
        events = self._ensure_started()
        finish_reason, provider = CLIENT_FINISH_REASONS[completion.finish_reason], completion.provider
        if completion.finish_reason is FinishReason.REFUSAL and not self._refusal_sent:
            # Anthropic says it refused only at the end, after its text went out as content: the client is told
            # with OpenAI's own signal for withheld output rather than a plain `stop`.
            finish_reason = "content_filter"
        fields: dict[str, object] = {"provider": provider}
        _add_service_fields(fields, completion)
        events.append(self._chunk({}, finish_reason=finish_reason, extra=fields))
        if self.include_usage:
            chunk = self._base(fields)
            chunk.update(choices=[], usage=render_usage(completion.usage, _openai_extra(completion).get("usage")))
            events.append((None, dumps(chunk)))
        events.append((None, "[DONE]"))
        return events

    def error(self, error: GatewayError) -> list[SSEEvent]:
        """What OpenAI itself sends mid-stream: a bare error object (the SDK raises on it)."""
        return [(None, dumps(render_error(error)))]

    def _ensure_started(self) -> list[SSEEvent]:
        return [] if self._started else self.start()

    def _base(self, extra: Mapping[str, object] | None = None) -> dict[str, object]:
        chunk: dict[str, object] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }
        chunk.update(extra or {})
        return chunk

    def _chunk(self, delta: dict[str, object], *, finish_reason: str | None = None,
               logprobs: dict[str, object] | None = None, extra: Mapping[str, object] | None = None) -> SSEEvent:
        chunk = self._base(extra)
        chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}]
        if self.include_usage:
            chunk["usage"] = None
        return (None, dumps(chunk))
