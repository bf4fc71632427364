"""The Anthropic Messages wire format, translated once and used both ways.

Inbound (client -> gateway): `parse_request`, then `render_completion`, `StreamRenderer` and `render_error`
for what goes back. Outbound (gateway -> Anthropic through the official SDK): `render_request` gives the
keyword arguments of `AsyncAnthropic().messages.create`, and `parse_completion` / `parse_chunk` read the
SDK's `.model_dump()` of the response or of one streamed event.
"""

import time
from collections.abc import Mapping
from typing import cast

from shared.errors import GatewayError, UpstreamUnavailable
from shared.models import ChatRequest, Completion, Delta, FinishReason, Message, Role, Usage
from shared.wire._common import (
    MAX_COUNT,
    NumberBounds,
    SSEEvent,
    build_chat_request,
    check_numbers,
    dumps,
    get_int,
    get_list,
    get_mapping,
    get_str,
    invalid,
    optional_bool,
    optional_int,
    optional_number,
    optional_str,
    reject_present,
    require_list,
    require_object,
    require_str,
    string_list,
    text_of,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "StreamRenderer",
    "parse_chunk",
    "parse_completion",
    "parse_request",
    "render_completion",
    "render_error",
    "render_request",
]

JSON = Mapping[str, object]

DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires `max_tokens`; used when a request (e.g. from an OpenAI client) has none."""

ROLES = ("user", "assistant")
# Accepted and not forwarded yet; range-checked all the same.
IGNORED_NUMBERS: dict[str, NumberBounds] = {"top_k": (0, MAX_COUNT, True)}

STOP_REASONS: dict[FinishReason, str] = {
    FinishReason.STOP: "end_turn",
    FinishReason.LENGTH: "max_tokens",
    FinishReason.TOOL_CALLS: "tool_use",
    FinishReason.CONTENT_FILTER: "refusal",
    FinishReason.STOP_SEQUENCE: "stop_sequence",
    FinishReason.REFUSAL: "refusal",
    FinishReason.PAUSE_TURN: "pause_turn",
}

FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "pause_turn": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
}

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",  # the SDK's ErrorResponse has no request_too_large type
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


# --- inbound ----------------------------------------------------------------------------------------


def parse_request(body: Mapping[str, object]) -> ChatRequest:
    """Validate a client's Messages body; anything wrong raises InvalidRequest naming the field."""
    data = require_object(body, "request body")
    reject_present(data, "tools")
    check_numbers(data, IGNORED_NUMBERS)
    thinking = data.get("thinking")
    if thinking is not None:
        check_numbers(require_object(thinking, "thinking"), {"budget_tokens": (1, MAX_COUNT, True)}, "thinking.")
    model = require_str(data, "model")
    messages = _parse_messages(require_list(data, "messages"))
    max_tokens = optional_int(data, "max_tokens")
    if max_tokens is None:
        raise invalid("max_tokens", f"is required and must be an integer from 1 to {MAX_COUNT}")
    stop_sequences = data.get("stop_sequences")
    if isinstance(stop_sequences, str):
        raise invalid("stop_sequences", "must be an array of strings")
    metadata = data.get("metadata")
    meta = require_object(metadata, "metadata") if metadata is not None else {}
    stream = optional_bool(data, "stream")
    return build_chat_request(
        model=model,
        messages=messages,
        system=_parse_system(data.get("system")),
        max_tokens=max_tokens,
        temperature=optional_number(data, "temperature", 0, 1),
        top_p=optional_number(data, "top_p", 0, 1),
        stop=string_list(stop_sequences, "stop_sequences"),
        stream=stream,
        include_usage=stream,  # Anthropic streams always report usage
        user=optional_str(meta, "user_id", "metadata.user_id"),
    )


def _parse_system(value: object) -> str | None:
    if value is None:
        return None
    return text_of(value, "system") or None


def _parse_messages(items: list[object]) -> list[Message]:
    messages: list[Message] = []
    for index, item in enumerate(items):
        field = f"messages[{index}]"
        message = require_object(item, field)
        role = message.get("role")
        if role not in ROLES:
            raise invalid(f"{field}.role", f"must be 'user' or 'assistant' (got {role!r})")
        content = text_of(message.get("content"), f"{field}.content")
        messages.append(Message(role=cast(Role, role), content=content))
    return messages


def render_completion(completion: Completion) -> dict[str, object]:
    """A `message` object, plus the `provider` that served it."""
    return {
        "id": completion.id,
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": [{"type": "text", "text": completion.content}],
        "stop_reason": STOP_REASONS[completion.finish_reason],
        "stop_sequence": None,
        "usage": _render_usage(completion.usage),
        "provider": completion.provider,
    }


def _render_usage(usage: Usage) -> dict[str, object]:
    """Anthropic counts cache reads apart from `input_tokens`; ours are part of `prompt_tokens`."""
    cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
    return {
        "input_tokens": usage.prompt_tokens - cached,
        "cache_read_input_tokens": cached,
        "output_tokens": usage.completion_tokens,
    }


def _error_type(error: GatewayError) -> str:
    """Anthropic's error type for one of ours, by HTTP status (timeouts and the rest are api_error)."""
    return ERROR_TYPES.get(error.status, "api_error")


def render_error(error: GatewayError) -> dict[str, object]:
    return {
        "type": "error",
        "error": {"type": _error_type(error), "message": error.message, "code": error.code},
    }


class StreamRenderer:
    """Renders one streamed answer as Anthropic's named events with a single text content block."""

    def __init__(self, completion_id: str, model: str, created: int, include_usage: bool) -> None:
        self.completion_id = completion_id
        self.model = model
        self.created = created
        self.include_usage = include_usage  # Anthropic streams always carry usage
        self._started = False

    def start(self, prompt_tokens: int = 0) -> list[SSEEvent]:
        self._started = True
        message = {
            "id": self.completion_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _render_usage(Usage(prompt_tokens=prompt_tokens)),
        }
        return [
            _event("message_start", message=message),
            _event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
            _event("ping"),
        ]

    def delta(self, delta: Delta) -> list[SSEEvent]:
        events = self._ensure_started()
        text = delta.text
        if text:
            events.append(_event("content_block_delta", index=0, delta={"type": "text_delta", "text": text}))
        return events

    def finish(self, completion: Completion) -> list[SSEEvent]:
        events = self._ensure_started()
        provider = completion.provider
        delta = {"stop_reason": STOP_REASONS[completion.finish_reason], "stop_sequence": completion.stop_sequence}
        totals = _render_usage(completion.usage)
        events += [
            _event("content_block_stop", index=0),
            _event("message_delta", delta=delta, usage=totals, provider=provider),
            _event("message_stop"),
        ]
        return events

    def error(self, error: GatewayError) -> list[SSEEvent]:
        return [("error", dumps(render_error(error)))]

    def _ensure_started(self) -> list[SSEEvent]:
        return [] if self._started else self.start()


def _event(name: str, **fields: object) -> SSEEvent:
    return (name, dumps({"type": name, **fields}))


# --- outbound ---------------------------------------------------------------------------------------


def render_request(request: ChatRequest, model: str) -> dict[str, object]:
    """Keyword arguments for `AsyncAnthropic().messages.create(**kw)`; None fields are omitted.

    The SDK no longer takes sampling parameters as arguments, so they travel in `extra_body`.
    Temperature is clamped to Anthropic's 0..1, and `top_p` is sent only without a temperature
    (current Claude models refuse both together)."""
    kw: dict[str, object] = {
        "model": model,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": [{"role": m.role, "content": m.text} for m in request.messages],
    }
    if request.system:
        kw["system"] = request.system_text
    if request.stop:
        kw["stop_sequences"] = list(request.stop)
    if request.user is not None:
        kw["metadata"] = {"user_id": request.user}
    if request.stream:
        kw["stream"] = True
    sampling: dict[str, object] = {}
    if request.temperature is not None:
        sampling["temperature"] = min(request.temperature, 1.0)
    elif request.top_p is not None:
        sampling["top_p"] = request.top_p
    if sampling:
        kw["extra_body"] = sampling
    return kw


def parse_completion(data: Mapping[str, object], provider: str) -> Completion:
    """A `Message.model_dump()` as a Completion (text blocks concatenated). A 200 without a `content` list is
    a broken upstream, not an empty answer: retryable, so the request falls back instead of billing nothing."""
    if not isinstance(data.get("content"), list):
        raise UpstreamUnavailable(f"{provider} sent a response that is not a message (no content)")
    texts = [
        get_str(block, "text")
        for block in get_list(data, "content")
        if isinstance(block, Mapping) and block.get("type") == "text"
    ]
    return Completion(
        id=get_str(data, "id"),
        model=get_str(data, "model"),
        provider=provider,
        content="".join(texts),
        finish_reason=FINISH_REASONS.get(get_str(data, "stop_reason"), FinishReason.STOP),
        usage=_usage(get_mapping(data, "usage")),
        created=int(time.time()),
    )


def parse_chunk(data: Mapping[str, object]) -> Delta | None:
    """One streamed event's `.model_dump()`: message_start gives prompt tokens, text deltas give text,
    message_delta gives the stop reason and output tokens; every other event gives None."""
    kind = data.get("type")
    if kind == "message_start":
        usage = _usage(get_mapping(get_mapping(data, "message"), "usage"))
        return Delta(usage=usage.model_copy(update={"completion_tokens": 0}))
    if kind == "content_block_delta":
        delta = get_mapping(data, "delta")
        if delta.get("type") == "text_delta":
            return Delta(text=get_str(delta, "text"))
        return None
    if kind == "message_delta":
        reason = get_str(get_mapping(data, "delta"), "stop_reason")
        return Delta(
            finish_reason=FINISH_REASONS.get(reason, FinishReason.STOP) if reason else None,
            usage=_usage(get_mapping(data, "usage")),
        )
    return None


def _usage(usage: JSON) -> Usage:
    """Anthropic reports cache reads and writes apart from `input_tokens`; the prompt is all three."""
    return Usage(
        prompt_tokens=sum(
            get_int(usage, key) for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        ),
        completion_tokens=get_int(usage, "output_tokens"),
        cached_prompt_tokens=get_int(usage, "cache_read_input_tokens"),
    )
