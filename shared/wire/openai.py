"""The OpenAI Chat Completions wire format, translated once and used both ways.

Inbound (client -> gateway): `parse_request`, then `render_completion`, `StreamRenderer` and `render_error`
for what goes back. Outbound (gateway -> OpenAI through the official SDK): `render_request` gives the
keyword arguments of `AsyncOpenAI().chat.completions.create`, and `parse_completion` / `parse_chunk` read
the SDK's `.model_dump()` of the response or of one streamed chunk.
"""

import time
from collections.abc import Mapping
from typing import cast

from shared.errors import GatewayError, UpstreamUnavailable
from shared.models import ChatRequest, Completion, Delta, FinishReason, Message, Role, Usage
from shared.wire._common import (
    INT64,
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
    usage_total,
)

__all__ = [
    "StreamRenderer",
    "parse_chunk",
    "parse_completion",
    "parse_request",
    "render_completion",
    "render_error",
    "render_request",
]

JSON = Mapping[str, object]

SYSTEM_ROLES = ("system", "developer")
CHAT_ROLES = ("user", "assistant")
MAX_STOP = 4
# Accepted and not forwarded yet; checked against OpenAI's documented ranges all the same.
IGNORED_NUMBERS: dict[str, NumberBounds] = {
    "frequency_penalty": (-2, 2, False), "presence_penalty": (-2, 2, False), "top_logprobs": (0, 20, True),
    "seed": (*INT64, True),
}

# OpenAI's reasoning models refuse `max_tokens`; everything else (and OpenAI-compatible servers) takes it.
REASONING_MODEL_PREFIXES = ("o1", "o3", "o4", "gpt-5")

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
}

# What an OpenAI client is told: its API has no stop-sequence, refusal or pause reasons (a refusal is the
# message's `refusal` text with finish `stop`, as OpenAI itself answers).
CLIENT_FINISH_REASONS: dict[FinishReason, str] = {
    **{reason: reason.value for reason in FinishReason},
    FinishReason.STOP_SEQUENCE: "stop", FinishReason.REFUSAL: "stop", FinishReason.PAUSE_TURN: "stop",
}


# --- inbound ----------------------------------------------------------------------------------------


def parse_request(body: Mapping[str, object]) -> ChatRequest:
    """Validate a client's Chat Completions body; anything wrong raises InvalidRequest naming the field."""
    data = require_object(body, "request body")
    reject_present(data, "tools", "functions")
    check_numbers(data, IGNORED_NUMBERS)
    n = optional_int(data, "n")
    if n is not None and n != 1:
        raise invalid("n", "other than 1 is not supported by this gateway yet")
    model = require_str(data, "model")
    system, messages = _parse_messages(require_list(data, "messages"))
    max_tokens = optional_int(data, "max_tokens")
    max_completion_tokens = optional_int(data, "max_completion_tokens")
    stream_options = data.get("stream_options")
    options = require_object(stream_options, "stream_options") if stream_options is not None else {}
    return build_chat_request(
        model=model,
        messages=messages,
        system=system,
        max_tokens=max_completion_tokens if max_completion_tokens is not None else max_tokens,
        temperature=optional_number(data, "temperature", 0, 2),
        top_p=optional_number(data, "top_p", 0, 1),
        stop=string_list(data.get("stop"), "stop", max_items=MAX_STOP),
        stream=optional_bool(data, "stream"),
        include_usage=optional_bool(options, "include_usage", "stream_options.include_usage"),
        user=optional_str(data, "user"),
    )


def _parse_messages(items: list[object]) -> tuple[str | None, list[Message]]:
    """System/developer turns are joined into the system prompt; the rest become messages."""
    system: list[str] = []
    messages: list[Message] = []
    for index, item in enumerate(items):
        field = f"messages[{index}]"
        message = require_object(item, field)
        role = message.get("role")
        if role not in SYSTEM_ROLES + CHAT_ROLES:
            allowed = ", ".join(repr(r) for r in SYSTEM_ROLES + CHAT_ROLES)
            raise invalid(f"{field}.role", f"must be one of {allowed} (got {role!r})")
        reject_present(message, "tool_calls", "function_call", prefix=f"{field}.")
        content = text_of(message.get("content"), f"{field}.content")
        if role in SYSTEM_ROLES:
            system.append(content)
        else:
            messages.append(Message(role=cast(Role, role), content=content))
    if not messages:
        raise invalid("messages", "must contain at least one user or assistant message")
    return ("\n\n".join(system) if system else None), messages


def render_completion(completion: Completion) -> dict[str, object]:
    """A `chat.completion` object, plus the `provider` that served it."""
    return {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created or int(time.time()),
        "model": completion.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.content, "refusal": None},
                "logprobs": None,
                "finish_reason": CLIENT_FINISH_REASONS[completion.finish_reason],
            }
        ],
        "usage": usage_total(completion.usage),
        "provider": completion.provider,
    }


def render_error(error: GatewayError) -> dict[str, object]:
    return {"error": {"message": error.message, "type": error.type, "code": error.code, "param": None}}


class StreamRenderer:
    """Renders one streamed answer as `chat.completion.chunk` events ending in `[DONE]`."""

    def __init__(self, completion_id: str, model: str, created: int, include_usage: bool) -> None:
        self.completion_id = completion_id
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self._started = False

    def start(self, prompt_tokens: int = 0) -> list[SSEEvent]:
        """The role chunk. `prompt_tokens` is accepted for parity with the Anthropic renderer."""
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def delta(self, delta: Delta) -> list[SSEEvent]:
        events = self._ensure_started()
        text = delta.text
        if text:
            events.append(self._chunk({"content": text}))
        return events

    def finish(self, completion: Completion) -> list[SSEEvent]:
        events = self._ensure_started()
        finish_reason, usage, provider = completion.finish_reason, completion.usage, completion.provider
        events.append(self._chunk({}, finish_reason=CLIENT_FINISH_REASONS[finish_reason], provider=provider))
        if self.include_usage:
            chunk = self._base(provider=provider)
            chunk.update(choices=[], usage=usage_total(usage))
            events.append((None, dumps(chunk)))
        events.append((None, "[DONE]"))
        return events

    def error(self, error: GatewayError) -> list[SSEEvent]:
        """What OpenAI itself sends mid-stream: a bare error object (the SDK raises on it)."""
        return [(None, dumps(render_error(error)))]

    def _ensure_started(self) -> list[SSEEvent]:
        return [] if self._started else self.start()

    def _base(self, **extra: object) -> dict[str, object]:
        chunk: dict[str, object] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }
        chunk.update(extra)
        return chunk

    def _chunk(self, delta: dict[str, object], **extra: object) -> SSEEvent:
        finish_reason = extra.pop("finish_reason", None)
        chunk = self._base(**extra)
        chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        if self.include_usage:
            chunk["usage"] = None
        return (None, dumps(chunk))


# --- outbound ---------------------------------------------------------------------------------------


def render_request(request: ChatRequest, model: str) -> dict[str, object]:
    """Keyword arguments for `AsyncOpenAI().chat.completions.create(**kw)`; None fields are omitted.
    The limit goes as `max_tokens`, except for reasoning models, which only take `max_completion_tokens`."""
    messages: list[dict[str, object]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system_text})
    messages += [{"role": m.role, "content": m.text} for m in request.messages]
    kw: dict[str, object] = {"model": model, "messages": messages}
    limit = "max_completion_tokens" if model.startswith(REASONING_MODEL_PREFIXES) else "max_tokens"
    optional: dict[str, object] = {
        limit: request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": list(request.stop) or None,
        "user": request.user,
    }
    kw.update({key: value for key, value in optional.items() if value is not None})
    if request.stream:
        kw["stream"] = True
        kw["stream_options"] = {"include_usage": True}
    return kw


def parse_completion(data: Mapping[str, object], provider: str) -> Completion:
    """A `ChatCompletion.model_dump()` as a Completion (first choice only). A 200 without a `choices` list is
    a broken upstream, not an empty answer: retryable, so the request falls back instead of billing nothing."""
    if not isinstance(data.get("choices"), list):
        raise UpstreamUnavailable(f"{provider} sent a response that is not a chat completion (no choices)")
    choices = get_list(data, "choices")
    choice = choices[0] if choices and isinstance(choices[0], Mapping) else {}
    message = get_mapping(choice, "message")
    return Completion(
        id=get_str(data, "id"),
        model=get_str(data, "model"),
        provider=provider,
        content=get_str(message, "content"),
        finish_reason=FINISH_REASONS.get(get_str(choice, "finish_reason"), FinishReason.STOP),
        usage=_usage(get_mapping(data, "usage")),
        created=get_int(data, "created"),
    )


def parse_chunk(data: Mapping[str, object]) -> Delta | None:
    """One `ChatCompletionChunk.model_dump()`: text, finish reason and/or usage; None if it has none."""
    choices = get_list(data, "choices")
    choice = choices[0] if choices and isinstance(choices[0], Mapping) else {}
    text = get_str(get_mapping(choice, "delta"), "content")
    finish = get_str(choice, "finish_reason")
    finish_reason = FINISH_REASONS.get(finish, FinishReason.STOP) if finish else None
    usage_data = get_mapping(data, "usage")
    usage = _usage(usage_data) if usage_data else None
    if not text and finish_reason is None and usage is None:
        return None
    return Delta(text=text, finish_reason=finish_reason, usage=usage)


def _usage(data: JSON) -> Usage:
    return Usage(
        prompt_tokens=get_int(data, "prompt_tokens"),
        completion_tokens=get_int(data, "completion_tokens"),
        cached_prompt_tokens=get_int(get_mapping(data, "prompt_tokens_details"), "cached_tokens"),
    )
