"""Anthropic answers both ways: a provider's `Message` (or its stream events) -> `Completion` / `Delta`s
(`parse_completion`, `StreamParser`), and a `Completion` of any provider -> a client's `message`
(`render_completion`), with the usage translation both share.

Usage: Anthropic counts cache reads and writes apart from `input_tokens`; the gateway's `prompt_tokens` is
all three, with reads in `cached_prompt_tokens` and writes split by lifetime (`cache_creation`'s 5-minute and
1-hour counts, or all of `cache_creation_input_tokens` as 5-minute when the breakdown is absent)."""

import time
from collections.abc import Mapping
from typing import Any

from shared.content import AudioPart, ContentPart, RawPart, TextPart, ThinkingPart, ToolCallPart
from shared.errors import InvalidRequest, UpstreamUnavailable
from shared.models import Completion, Delta, FinishReason, ToolCallDelta, Usage, WireFormat
from shared.wire._common import get_int, get_list, get_mapping, get_str
from shared.wire.anthropic_blocks import ANTHROPIC, parse_block, render_part, tool_input

__all__ = [
    "FINISH_REASONS",
    "STOP_REASONS",
    "StreamParser",
    "parse_completion",
    "parse_usage",
    "render_completion",
    "render_content",
    "render_usage",
]

JSON = Mapping[str, object]

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
    "stop_sequence": FinishReason.STOP_SEQUENCE,
    "pause_turn": FinishReason.PAUSE_TURN,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.REFUSAL,
}

MESSAGE_FIELDS = frozenset({"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"})
USAGE_FIELDS = frozenset({"input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                          "cache_creation", "output_tokens_details", "service_tier"})


# --- usage ------------------------------------------------------------------------------------------


def parse_usage(usage: JSON) -> Usage:
    read = get_int(usage, "cache_read_input_tokens")
    written = get_int(usage, "cache_creation_input_tokens")
    breakdown = get_mapping(usage, "cache_creation")
    if breakdown:
        five, hour = get_int(breakdown, "ephemeral_5m_input_tokens"), get_int(breakdown, "ephemeral_1h_input_tokens")
    else:
        five, hour = written, 0
    return Usage(
        prompt_tokens=get_int(usage, "input_tokens") + read + written,
        completion_tokens=get_int(usage, "output_tokens"),
        cached_prompt_tokens=read,
        cache_write_tokens=five,
        cache_write_1h_tokens=hour,
        reasoning_tokens=get_int(get_mapping(usage, "output_tokens_details"), "thinking_tokens"),
    )


def render_usage(usage: Usage) -> dict[str, Any]:
    cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
    written = usage.cache_write_tokens + usage.cache_write_1h_tokens
    rendered: dict[str, Any] = {
        "input_tokens": max(usage.prompt_tokens - cached - written, 0),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": usage.completion_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": usage.cache_write_tokens,
                           "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens},
    }
    if usage.reasoning_tokens:
        rendered["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return rendered


# --- provider -> gateway ----------------------------------------------------------------------------


def parse_completion(data: JSON, provider: str) -> Completion:
    """A Messages response (raw JSON or the SDK's `.model_dump()`) as a Completion. A 200 without a `content`
    list is a broken upstream, not an empty answer: retryable, so the request falls back."""
    if not isinstance(data.get("content"), list):
        raise UpstreamUnavailable(f"{provider} sent a response that is not a message (no content)")
    parts = _parts(get_list(data, "content"), provider)
    text = "".join(part.text for part in parts if isinstance(part, TextPart))
    plain = (len(parts) == 1 and parts[0] == TextPart(text=text)) or not parts
    usage = get_mapping(data, "usage")
    stop_reason = get_str(data, "stop_reason")
    extra = {key: value for key, value in data.items() if key not in MESSAGE_FIELDS and value is not None}
    usage_extra = {key: value for key, value in usage.items() if key not in USAGE_FIELDS and value is not None}
    if usage_extra:
        extra["usage"] = usage_extra
    if stop_reason == "model_context_window_exceeded":
        extra["stop_reason"] = stop_reason  # the gateway's LENGTH, told apart for an Anthropic client
    service_tier = usage.get("service_tier")
    stop_sequence = data.get("stop_sequence")
    return Completion(
        id=get_str(data, "id"),
        model=get_str(data, "model"),
        provider=provider,
        content=text,
        parts=[] if plain else parts,
        finish_reason=FINISH_REASONS.get(stop_reason, FinishReason.STOP),
        stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
        usage=parse_usage(usage),
        service_tier=service_tier if isinstance(service_tier, str) else None,
        created=int(time.time()),
        extra=extra,
        extra_format=WireFormat.ANTHROPIC,
    )


def _parts(blocks: list[object], provider: str) -> list[ContentPart]:
    try:
        return [parse_block(block, f"content[{index}]") for index, block in enumerate(blocks)]
    except InvalidRequest as exc:  # the provider's fault, not the client's
        raise UpstreamUnavailable(f"{provider} sent a malformed content block: {exc.message}") from exc


class StreamParser:
    """One stream's events (`.model_dump()` or raw JSON) -> deltas. Stateful because a tool call's
    `input_json_delta` names its content block, while a Delta names the call's place among the tool calls.

    Not carried (the Delta has no place for them): `citations_delta`, and server-tool blocks
    (`server_tool_use`, `web_search_tool_result`, ...), which only an Anthropic non-streamed answer keeps."""

    def __init__(self) -> None:
        self._tool_of_block: dict[int, int] = {}

    def parse(self, data: JSON) -> list[Delta]:
        kind = data.get("type")
        if kind == "message_start":
            usage = parse_usage(get_mapping(get_mapping(data, "message"), "usage"))
            return [Delta(usage=usage.model_copy(update={"completion_tokens": 0}))]
        if kind == "content_block_start":
            return self._start(get_int(data, "index"), get_mapping(data, "content_block"))
        if kind == "content_block_delta":
            return self._delta(get_int(data, "index"), get_mapping(data, "delta"))
        if kind == "message_delta":
            delta = get_mapping(data, "delta")
            reason = get_str(delta, "stop_reason")
            sequence = delta.get("stop_sequence")
            return [Delta(finish_reason=FINISH_REASONS.get(reason, FinishReason.STOP) if reason else None,
                          stop_sequence=sequence if isinstance(sequence, str) else None,
                          usage=parse_usage(get_mapping(data, "usage")))]
        return []

    def _start(self, index: int, block: JSON) -> list[Delta]:
        kind = block.get("type")
        if kind == "text" and get_str(block, "text"):
            return [Delta(text=get_str(block, "text"))]
        if kind == "thinking" and get_str(block, "thinking"):
            return [Delta(thinking=get_str(block, "thinking"))]
        if kind == "redacted_thinking":
            return [Delta(redacted_thinking=get_str(block, "data"))]
        if kind == "tool_use":
            position = self._tool_of_block[index] = len(self._tool_of_block)
            call = ToolCallDelta(index=position, id=get_str(block, "id"), name=get_str(block, "name"))
            return [Delta(tool_call=call)]
        return []

    def _delta(self, index: int, delta: JSON) -> list[Delta]:
        kind = delta.get("type")
        if kind == "text_delta" and get_str(delta, "text"):
            return [Delta(text=get_str(delta, "text"))]
        if kind == "thinking_delta" and get_str(delta, "thinking"):
            return [Delta(thinking=get_str(delta, "thinking"))]
        if kind == "signature_delta":
            return [Delta(signature=get_str(delta, "signature"))]
        if kind == "input_json_delta" and index in self._tool_of_block and get_str(delta, "partial_json"):
            call = ToolCallDelta(index=self._tool_of_block[index], arguments=get_str(delta, "partial_json"))
            return [Delta(tool_call=call)]
        return []


# --- gateway -> client ------------------------------------------------------------------------------


def render_content(completion: Completion) -> list[dict[str, Any]]:
    """The answer's blocks: its parts in order, or one text block (an OpenAI refusal is its text)."""
    if not completion.parts:
        return [{"type": "text", "text": completion.refusal or completion.content}]
    blocks: list[dict[str, Any]] = []
    for part in completion.parts:
        if isinstance(part, ToolCallPart) and tool_input(part.arguments) is None:
            raise UpstreamUnavailable(f"{completion.provider} wrote tool call arguments that are not a JSON object")
        if isinstance(part, AudioPart) or (isinstance(part, RawPart) and part.source != ANTHROPIC):
            continue  # audio, or another format's own block: nothing a Messages answer can hold
        if isinstance(part, ThinkingPart) and part.redacted is None and part.signature is None:
            blocks.append({"type": "thinking", "thinking": part.text, "signature": ""})
            continue
        blocks.append(render_part(part))
    if completion.refusal:
        blocks.append({"type": "text", "text": completion.refusal})
    return blocks


def stop_reason(completion: Completion) -> str:
    """An OpenAI refusal (a `refusal` message with finish `stop`) is Anthropic's `refusal` stop."""
    if completion.refusal and completion.finish_reason == FinishReason.STOP:
        return "refusal"
    return STOP_REASONS[completion.finish_reason]


def render_completion(completion: Completion) -> dict[str, object]:
    """A `message` object, plus the `provider` that served it; an Anthropic answer's unmodelled fields too."""
    usage = render_usage(completion.usage)
    message: dict[str, Any] = {
        "id": completion.id,
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": render_content(completion),
        "stop_reason": stop_reason(completion),
        "stop_sequence": completion.stop_sequence,
        "usage": usage,
    }
    if completion.extra_format == WireFormat.ANTHROPIC:
        if completion.service_tier is not None:
            usage["service_tier"] = completion.service_tier
        for key, value in completion.extra.items():
            if key == "usage" and isinstance(value, dict):
                usage.update(value)
            else:
                message[key] = value
    message["provider"] = completion.provider
    return message
