"""The fake provider's Anthropic Messages format (`POST /v1/messages`): validation (including the thinking
signatures sent back in history), the message body (thinking, text and tool_use blocks, stop reasons,
stop_sequence, cache usage) and its named-event stream (content_block_start / *_delta / content_block_stop
per block: thinking_delta then signature_delta, text_delta, input_json_delta)."""

import json
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from shared.fake_provider_cache import PromptCache
from shared.fake_provider_formats import (
    JSON,
    Frame,
    Problem,
    StreamParts,
    bearer_token,
    common_problem,
    error_type,
    limit_problem,
    sse_event,
    stream_parts,
)
from shared.fake_provider_inputs import Inputs, anthropic_inputs
from shared.fake_provider_reply import Block, Reply, Usage, bad_signature
from shared.fake_provider_script import content_text

__all__ = ["AnthropicDialect"]


class AnthropicDialect:
    """Anthropic Messages. `cache` remembers the prefixes ending at `cache_control` breakpoints."""

    id_prefix = "msg_"
    call_prefix = "toolu_"

    def __init__(self, cache: PromptCache | None = None) -> None:
        self.cache = cache or PromptCache()

    def authorized(self, headers: Headers) -> bool:
        return bool(headers.get("x-api-key", "").strip() or bearer_token(headers))

    def problem(self, body: JSON | None) -> Problem | None:
        if (problem := common_problem(body)) is not None or body is None:
            return problem
        if body.get("max_tokens") is None:
            return "max_tokens: Field required", "max_tokens"
        if (problem := limit_problem(body.get("max_tokens"), "max_tokens")) is not None:
            return problem
        if (where := bad_signature(body["messages"])) is not None:
            return f"{where}: Invalid `signature` in `thinking` block", None
        return None

    def inputs(self, body: JSON) -> Inputs:
        return anthropic_inputs(body)

    def prompt_texts(self, body: JSON) -> list[str]:
        texts = [content_text(message.get("content")) for message in body["messages"]]
        return [content_text(body.get("system")), *texts]

    def max_tokens(self, body: JSON) -> int | None:
        return body.get("max_tokens")

    def usage(self, body: JSON, prompt_tokens: int, completion_tokens: int) -> Usage:
        cached = self.cache.anthropic(body)
        uncached = max(0, prompt_tokens - cached.read - cached.write_5m - cached.write_1h)
        return Usage(prompt_tokens=uncached, completion_tokens=completion_tokens, cache_read=cached.read,
                     cache_write_5m=cached.write_5m, cache_write_1h=cached.write_1h)

    def error(
        self, status: int, message: str, param: str | None = None, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        text = f"{param}: {message}" if param and param not in message else message
        body = {"type": "error", "error": {"type": error_type(status, "api_error"), "message": text}}
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))

    def completion(self, reply: Reply) -> JSON:
        return {
            **_message(reply, content=[_block(block) for block in reply.blocks]),
            "stop_reason": reply.finish,
            "stop_sequence": reply.stop_sequence,
            "usage": {**_input_usage(reply.usage), "output_tokens": reply.completion_tokens},
        }

    def stream(self, reply: Reply, body: JSON) -> StreamParts:
        # Anthropic reports output_tokens=1 in message_start and the real count in message_delta.
        start = {**_message(reply, content=[]), "stop_reason": None, "stop_sequence": None,
                 "usage": {**_input_usage(reply.usage), "output_tokens": 1}}
        frames: list[Frame] = [(sse_event("message_start", {"type": "message_start", "message": start}), False)]
        for index, block in enumerate(reply.blocks):
            frames += _block_frames(index, block)
            if index == 0:
                frames.insert(2, (sse_event("ping", {"type": "ping"}), False))
        tail_from = len(frames)
        delta = {"stop_reason": reply.finish, "stop_sequence": reply.stop_sequence}
        usage = {"output_tokens": reply.completion_tokens}
        frames.append((sse_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}), False))
        frames.append((sse_event("message_stop", {"type": "message_stop"}), False))
        return stream_parts(frames, tail_from)


def _message(reply: Reply, content: list[JSON]) -> JSON:
    return {"id": reply.id, "type": "message", "role": "assistant", "model": reply.model, "content": content}


def _input_usage(usage: Usage) -> JSON:
    body: JSON = {"input_tokens": usage.prompt_tokens}
    if usage.cache_read or usage.cache_write_5m or usage.cache_write_1h:
        body["cache_creation_input_tokens"] = usage.cache_write_5m + usage.cache_write_1h
        body["cache_read_input_tokens"] = usage.cache_read
        body["cache_creation"] = {"ephemeral_5m_input_tokens": usage.cache_write_5m,
                                  "ephemeral_1h_input_tokens": usage.cache_write_1h}
    return body


def _block(block: Block) -> JSON:
    if block.kind == "thinking":
        return {"type": "thinking", "thinking": block.text, "signature": block.signature}
    if block.kind == "tool_use":
        return {"type": "tool_use", "id": block.tool_id, "name": block.name, "input": json.loads(block.text)}
    return {"type": "text", "text": block.text}


def _opening(block: Block) -> JSON:
    if block.kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if block.kind == "tool_use":
        return {"type": "tool_use", "id": block.tool_id, "name": block.name, "input": {}}
    return {"type": "text", "text": ""}


def _delta(block: Block, piece: str) -> JSON:
    if block.kind == "thinking":
        return {"type": "thinking_delta", "thinking": piece}
    if block.kind == "tool_use":
        return {"type": "input_json_delta", "partial_json": piece}
    return {"type": "text_delta", "text": piece}


def _block_frames(index: int, block: Block) -> list[Frame]:
    def event(name: str, payload: JSON) -> str:
        return sse_event(name, {"type": name, "index": index, **payload})

    frames: list[Frame] = [(event("content_block_start", {"content_block": _opening(block)}), False)]
    frames += [(event("content_block_delta", {"delta": _delta(block, piece)}), True) for piece in block.pieces]
    if block.kind == "thinking":
        frames.append((event("content_block_delta", {"delta": {"type": "signature_delta",
                                                               "signature": block.signature}}), False))
    frames.append((event("content_block_stop", {}), False))
    return frames
