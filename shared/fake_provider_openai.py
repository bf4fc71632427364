"""The fake provider's OpenAI Chat Completions format (`POST /v1/chat/completions`): validation, the
completion body (content, refusal, tool_calls, usage details) and its chunk stream (`delta.content`,
`delta.refusal`, `delta.tool_calls` with the id and name first, then argument fragments)."""

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
    sse_data,
    stream_parts,
)
from shared.fake_provider_inputs import Inputs, openai_inputs
from shared.fake_provider_reply import Block, Reply, Usage, reasoning_tokens
from shared.fake_provider_script import content_text

__all__ = ["OpenAIDialect"]

_ERROR_CODES: Mapping[int, str] = {401: "invalid_api_key", 429: "rate_limit_exceeded"}
_FINISH = {"max_tokens": "length", "tool_use": "tool_calls"}


class OpenAIDialect:
    """OpenAI Chat Completions. `cache` remembers prompt prefixes for `cached_tokens`."""

    id_prefix = "chatcmpl-"
    call_prefix = "call_"

    def __init__(self, cache: PromptCache | None = None) -> None:
        self.cache = cache or PromptCache()

    def authorized(self, headers: Headers) -> bool:
        return bool(bearer_token(headers))

    def problem(self, body: JSON | None) -> Problem | None:
        if (problem := common_problem(body)) is not None or body is None:
            return problem
        for name in ("max_completion_tokens", "max_tokens"):
            if (problem := limit_problem(body.get(name), name)) is not None:
                return problem
        return None

    def inputs(self, body: JSON) -> Inputs:
        return openai_inputs(body)

    def prompt_texts(self, body: JSON) -> list[str]:
        return [content_text(message.get("content")) for message in body["messages"]]

    def max_tokens(self, body: JSON) -> int | None:
        limit = body.get("max_completion_tokens")
        return limit if limit is not None else body.get("max_tokens")

    def usage(self, body: JSON, prompt_tokens: int, completion_tokens: int) -> Usage:
        effort = body.get("reasoning_effort")
        reasoning = reasoning_tokens(effort if isinstance(effort, str) else None)
        return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens + reasoning,
                     reasoning_tokens=reasoning, cached_tokens=min(prompt_tokens, self.cache.openai(body)))

    def error(
        self, status: int, message: str, param: str | None = None, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        error = {"message": message, "type": error_type(status, "server_error"), "param": param,
                 "code": _ERROR_CODES.get(status)}
        return JSONResponse({"error": error}, status_code=status, headers=dict(headers or {}))

    def completion(self, reply: Reply) -> JSON:
        message: JSON = {"role": "assistant", "content": None, "refusal": None}
        calls = [_tool_call(block, index) for index, block in enumerate(_calls(reply))]
        for block in reply.blocks:
            if block.kind == "text":
                message["content"] = block.text
            elif block.kind == "refusal":
                message["refusal"] = block.text
        if calls:
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "finish_reason": _finish(reply), "logprobs": None}
        return {**_envelope(reply, "chat.completion"), "choices": [choice], "usage": _usage(reply)}

    def stream(self, reply: Reply, body: JSON) -> StreamParts:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        # With include_usage on, OpenAI sends `"usage": null` on every chunk but the last; off, no key at all.
        extra: JSON = {"usage": None} if include_usage else {}

        def chunk(delta: JSON, finish_reason: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return sse_data({**_envelope(reply, "chat.completion.chunk"), "choices": [choice], **extra})

        plain = all(block.kind in ("text", "thinking") for block in reply.blocks)
        first: JSON = {"role": "assistant", "content": ""} if plain else {"role": "assistant", "content": None}
        frames: list[Frame] = [(chunk(first), False)]
        frames += [(chunk(delta), True) for delta in _deltas(reply)]
        tail_from = len(frames)
        frames.append((chunk({}, _finish(reply)), False))
        if include_usage:
            usage_chunk = {**_envelope(reply, "chat.completion.chunk"), "choices": []}
            frames.append((sse_data({**usage_chunk, "usage": _usage(reply)}), False))
        frames.append(("data: [DONE]\n\n", False))
        return stream_parts(frames, tail_from)


def _calls(reply: Reply) -> list[Block]:
    return [block for block in reply.blocks if block.kind == "tool_use"]


def _tool_call(block: Block, index: int) -> JSON:
    del index
    return {"id": block.tool_id, "type": "function", "function": {"name": block.name, "arguments": block.text}}


def _deltas(reply: Reply) -> list[JSON]:
    """One delta per streamed piece. Thinking is never shown to an OpenAI client (its tokens are in usage)."""
    deltas: list[JSON] = []
    for block in reply.blocks:
        if block.kind in ("text", "refusal"):
            key = "content" if block.kind == "text" else "refusal"
            deltas += [{key: piece} for piece in block.pieces]
    for index, block in enumerate(_calls(reply)):
        opening = {"index": index, "id": block.tool_id, "type": "function",
                   "function": {"name": block.name, "arguments": ""}}
        deltas.append({"tool_calls": [opening]})
        deltas += [{"tool_calls": [{"index": index, "function": {"arguments": piece}}]} for piece in block.pieces]
    return deltas


def _envelope(reply: Reply, kind: str) -> JSON:
    return {"id": reply.id, "object": kind, "created": reply.created, "model": reply.model}


def _finish(reply: Reply) -> str:
    return _FINISH.get(reply.finish, "stop")


def _usage(reply: Reply) -> JSON:
    usage = reply.usage
    body: JSON = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.cached_tokens or usage.reasoning_tokens:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens, "audio_tokens": 0}
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens, "audio_tokens": 0,
                                             "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    return body
