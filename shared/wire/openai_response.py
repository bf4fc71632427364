"""What OpenAI answers, read into the internal model: a `chat.completion` body (`parse_completion`) and one
streamed `chat.completion.chunk` (`parse_chunk`, giving a list of one-kind deltas). Both read the raw JSON (or
the SDK's `.model_dump()`, whose null fields are the same as absent ones)."""

from collections.abc import Mapping

from shared.content import ContentPart, TextPart, ToolCallPart
from shared.errors import UpstreamUnavailable
from shared.models import Completion, Delta, FinishReason, ToolCallDelta, WireFormat
from shared.wire._common import get_int, get_list, get_mapping, get_str
from shared.wire.openai_common import FINISH_REASONS, parse_usage

__all__ = ["parse_chunk", "parse_completion"]

JSON = Mapping[str, object]

TOP_LEVEL = frozenset({"id", "object", "created", "model", "choices", "usage", "system_fingerprint", "service_tier"})
MESSAGE = frozenset({"role", "content", "refusal", "tool_calls", "function_call"})


def parse_completion(data: Mapping[str, object], provider: str) -> Completion:
    """The first choice as the Completion; everything else OpenAI sent is kept verbatim in `extra`: unmodelled
    top-level fields by name, the message's own (`annotations`, `audio`) under `message`, the other choices
    (`n` > 1) under `choices`, and the raw `usage` (its audio and prediction details) under `usage`.

    A 200 without a `choices` list is a broken upstream, not an empty answer: retryable, so the request falls
    back instead of billing nothing. A refusal is `FinishReason.REFUSAL` (rendered back to an OpenAI client as
    `stop` with the `refusal` field, as OpenAI sent it)."""
    if not isinstance(data.get("choices"), list):
        raise UpstreamUnavailable(f"{provider} sent a response that is not a chat completion (no choices)")
    choices = get_list(data, "choices")
    choice = choices[0] if choices and isinstance(choices[0], Mapping) else {}
    message = get_mapping(choice, "message")
    text = get_str(message, "content")
    calls = _tool_calls(message)
    refusal = message.get("refusal")
    refusal = refusal if isinstance(refusal, str) else None
    finish = FINISH_REASONS.get(get_str(choice, "finish_reason"), FinishReason.STOP)
    if refusal is not None and finish == FinishReason.STOP:
        finish = FinishReason.REFUSAL
    logprobs = choice.get("logprobs")
    return Completion(
        id=get_str(data, "id"),
        model=get_str(data, "model"),
        provider=provider,
        content=text,
        finish_reason=finish,
        usage=parse_usage(get_mapping(data, "usage")),
        created=get_int(data, "created"),
        parts=([TextPart(text=text)] if text else []) + calls if calls else [],
        refusal=refusal,
        logprobs=dict(logprobs) if isinstance(logprobs, Mapping) else None,
        system_fingerprint=_optional(data, "system_fingerprint"),
        service_tier=_optional(data, "service_tier"),
        extra=_extra(data, message, choices),
        extra_format=WireFormat.OPENAI,
    )


def _optional(data: JSON, key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _tool_calls(message: JSON) -> list[ContentPart]:
    calls: list[ContentPart] = []
    for item in get_list(message, "tool_calls"):
        call = item if isinstance(item, Mapping) else {}
        function = get_mapping(call, "function")
        calls.append(ToolCallPart(id=get_str(call, "id"), name=get_str(function, "name"),
                                  arguments=get_str(function, "arguments")))
    legacy = get_mapping(message, "function_call")
    if legacy:
        name = get_str(legacy, "name")
        calls.append(ToolCallPart(id=f"call_{name}", name=name, arguments=get_str(legacy, "arguments")))
    return calls


def _extra(data: JSON, message: JSON, choices: list[object]) -> dict[str, object]:
    extra: dict[str, object] = {key: value for key, value in data.items() if key not in TOP_LEVEL and value is not None}
    message_extra = {key: value for key, value in message.items() if key not in MESSAGE and value is not None}
    if message_extra:
        extra["message"] = message_extra
    if len(choices) > 1:
        extra["choices"] = choices[1:]
    usage = get_mapping(data, "usage")
    if _has_more_usage(usage):
        extra["usage"] = {key: _without_nulls(value) for key, value in usage.items() if value is not None}
    return extra


def _without_nulls(value: object) -> object:
    """An SDK dump's nulls are absent fields: kept out, so what is rendered back is what OpenAI sent."""
    if isinstance(value, Mapping):
        return {key: item for key, item in value.items() if item is not None}
    return value


def _has_more_usage(usage: JSON) -> bool:
    """Whether OpenAI's usage says more than the Usage model keeps (non-zero audio or prediction tokens)."""
    details = [get_mapping(usage, "prompt_tokens_details"), get_mapping(usage, "completion_tokens_details")]
    modelled = {"cached_tokens", "reasoning_tokens"}
    return any(value for part in details for key, value in part.items() if key not in modelled)


def parse_chunk(data: Mapping[str, object]) -> list[Delta]:
    """One chunk as deltas of one kind each, in the chunk's order: refusal, text, tool-call pieces, then one
    with the finish reason and/or usage. Logprobs ride on the chunk's first delta. A role-only chunk gives []."""
    choices = get_list(data, "choices")
    choice = choices[0] if choices and isinstance(choices[0], Mapping) else {}
    delta = get_mapping(choice, "delta")
    deltas: list[Delta] = []
    refusal = get_str(delta, "refusal")
    if refusal:
        deltas.append(Delta(refusal=refusal))
    text = get_str(delta, "content")
    if text:
        deltas.append(Delta(text=text))
    for item in get_list(delta, "tool_calls"):
        call = item if isinstance(item, Mapping) else {}
        function = get_mapping(call, "function")
        piece = ToolCallDelta(index=get_int(call, "index"), id=get_str(call, "id") or None,
                              name=get_str(function, "name") or None, arguments=get_str(function, "arguments"))
        deltas.append(Delta(tool_call=piece))
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, Mapping):
        if deltas:
            deltas[0] = deltas[0].model_copy(update={"logprobs": dict(logprobs)})
        else:
            deltas.append(Delta(logprobs=dict(logprobs)))
    finish = get_str(choice, "finish_reason")
    usage = get_mapping(data, "usage")
    if finish or usage:
        deltas.append(Delta(finish_reason=FINISH_REASONS.get(finish, FinishReason.STOP) if finish else None,
                            usage=parse_usage(usage) if usage else None,
                            system_fingerprint=get_str(data, "system_fingerprint") or None,
                            service_tier=get_str(data, "service_tier") or None))
    return deltas
