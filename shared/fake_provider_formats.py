"""Wire formats of the fake provider: auth, validation, response bodies, SSE events and error shapes for
OpenAI Chat Completions and Anthropic Messages. Used only by shared.fake_provider."""

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from shared.fake_provider_script import content_text

__all__ = [
    "JSON",
    "AnthropicDialect",
    "Dialect",
    "OpenAIDialect",
    "Problem",
    "Reply",
    "StreamParts",
    "bearer_token",
]

JSON = dict[str, Any]
Problem = tuple[str, str | None]  # (message, offending parameter)

_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_CODES: Mapping[int, str] = {401: "invalid_api_key", 429: "rate_limit_exceeded"}


@dataclass(frozen=True)
class Reply:
    """One generated answer, independent of the wire format."""

    id: str
    model: str
    words: tuple[str, ...]
    prompt_tokens: int
    truncated: bool
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def completion_tokens(self) -> int:
        return len(self.words)

    def token_texts(self) -> list[str]:
        """One streamed piece per word; each after the first carries its leading space."""
        return [word if index == 0 else f" {word}" for index, word in enumerate(self.words)]


@dataclass(frozen=True)
class StreamParts:
    """Pre-rendered SSE frames: sent before the tokens, one per token, and after the tokens."""

    head: list[str]
    tokens: list[str]
    tail: list[str]


class Dialect(Protocol):
    """What differs between the two provider formats."""

    id_prefix: str

    def authorized(self, headers: Headers) -> bool: ...

    def problem(self, body: JSON | None) -> Problem | None: ...

    def prompt_texts(self, body: JSON) -> list[str]: ...

    def max_tokens(self, body: JSON) -> int | None: ...

    def error(
        self, status: int, message: str, param: str | None = None, headers: Mapping[str, str] | None = None
    ) -> JSONResponse: ...

    def completion(self, reply: Reply) -> JSON: ...

    def stream(self, reply: Reply, body: JSON) -> StreamParts: ...


def bearer_token(headers: Headers) -> str:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _error_type(status: int, server_error: str) -> str:
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return server_error if status >= 500 else "invalid_request_error"


def _common_problem(body: JSON | None) -> Problem | None:
    if body is None:
        return "The request body must be a JSON object.", None
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "Missing required parameter: 'model'.", "model"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list.", "messages"
    if not all(isinstance(message, dict) for message in messages):
        return "Each entry of 'messages' must be an object.", "messages"
    return None


def _limit_problem(value: object, name: str) -> Problem | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"'{name}' must be a positive integer.", name
    return None


def _sse_data(payload: JSON) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def _sse_event(name: str, payload: JSON) -> str:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n"


class OpenAIDialect:
    """OpenAI Chat Completions (`POST /v1/chat/completions`)."""

    id_prefix = "chatcmpl-"

    def authorized(self, headers: Headers) -> bool:
        return bool(bearer_token(headers))

    def problem(self, body: JSON | None) -> Problem | None:
        if (problem := _common_problem(body)) is not None or body is None:
            return problem
        for name in ("max_completion_tokens", "max_tokens"):
            if (problem := _limit_problem(body.get(name), name)) is not None:
                return problem
        return None

    def prompt_texts(self, body: JSON) -> list[str]:
        return [content_text(message.get("content")) for message in body["messages"]]

    def max_tokens(self, body: JSON) -> int | None:
        limit = body.get("max_completion_tokens")
        return limit if limit is not None else body.get("max_tokens")

    def error(
        self, status: int, message: str, param: str | None = None, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        error = {
            "message": message,
            "type": _error_type(status, "server_error"),
            "param": param,
            "code": _OPENAI_ERROR_CODES.get(status),
        }
        return JSONResponse({"error": error}, status_code=status, headers=dict(headers or {}))

    def completion(self, reply: Reply) -> JSON:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": reply.text},
            "finish_reason": self._finish_reason(reply),
            "logprobs": None,
        }
        return {**self._envelope(reply, "chat.completion"), "choices": [choice], "usage": self._usage(reply)}

    def stream(self, reply: Reply, body: JSON) -> StreamParts:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        # With include_usage on, OpenAI sends `"usage": null` on every chunk but the last; off, no key at all.
        extra: JSON = {"usage": None} if include_usage else {}

        def chunk(delta: JSON, finish_reason: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _sse_data({**self._envelope(reply, "chat.completion.chunk"), "choices": [choice], **extra})

        tail = [chunk({}, self._finish_reason(reply))]
        if include_usage:
            usage_chunk = {**self._envelope(reply, "chat.completion.chunk"), "choices": []}
            tail.append(_sse_data({**usage_chunk, "usage": self._usage(reply)}))
        return StreamParts(
            head=[chunk({"role": "assistant", "content": ""})],
            tokens=[chunk({"content": text}) for text in reply.token_texts()],
            tail=[*tail, "data: [DONE]\n\n"],
        )

    @staticmethod
    def _envelope(reply: Reply, kind: str) -> JSON:
        return {"id": reply.id, "object": kind, "created": reply.created, "model": reply.model}

    @staticmethod
    def _finish_reason(reply: Reply) -> str:
        return "length" if reply.truncated else "stop"

    @staticmethod
    def _usage(reply: Reply) -> JSON:
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }


class AnthropicDialect:
    """Anthropic Messages (`POST /v1/messages`)."""

    id_prefix = "msg_"

    def authorized(self, headers: Headers) -> bool:
        return bool(headers.get("x-api-key", "").strip() or bearer_token(headers))

    def problem(self, body: JSON | None) -> Problem | None:
        if (problem := _common_problem(body)) is not None or body is None:
            return problem
        if body.get("max_tokens") is None:
            return "max_tokens: Field required", "max_tokens"
        return _limit_problem(body.get("max_tokens"), "max_tokens")

    def prompt_texts(self, body: JSON) -> list[str]:
        texts = [content_text(message.get("content")) for message in body["messages"]]
        return [content_text(body.get("system")), *texts]

    def max_tokens(self, body: JSON) -> int | None:
        return body.get("max_tokens")

    def error(
        self, status: int, message: str, param: str | None = None, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        text = f"{param}: {message}" if param and param not in message else message
        body = {"type": "error", "error": {"type": _error_type(status, "api_error"), "message": text}}
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))

    def completion(self, reply: Reply) -> JSON:
        return {
            **self._message(reply, content=[{"type": "text", "text": reply.text}]),
            "stop_reason": self._stop_reason(reply),
            "usage": {"input_tokens": reply.prompt_tokens, "output_tokens": reply.completion_tokens},
        }

    def stream(self, reply: Reply, body: JSON) -> StreamParts:
        # Anthropic reports output_tokens=1 in message_start and the real count in message_delta.
        start = {
            **self._message(reply, content=[]),
            "stop_reason": None,
            "usage": {"input_tokens": reply.prompt_tokens, "output_tokens": 1},
        }
        delta = {"stop_reason": self._stop_reason(reply), "stop_sequence": None}
        block_start = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        return StreamParts(
            head=[
                _sse_event("message_start", {"type": "message_start", "message": start}),
                _sse_event("content_block_start", block_start),
                _sse_event("ping", {"type": "ping"}),
            ],
            tokens=[self._text_delta(text) for text in reply.token_texts()],
            tail=[
                _sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
                _sse_event(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": delta,
                        "usage": {"output_tokens": reply.completion_tokens},
                    },
                ),
                _sse_event("message_stop", {"type": "message_stop"}),
            ],
        )

    @staticmethod
    def _message(reply: Reply, content: list[JSON]) -> JSON:
        return {
            "id": reply.id,
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": content,
            "stop_sequence": None,
        }

    @staticmethod
    def _text_delta(text: str) -> str:
        payload = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
        return _sse_event("content_block_delta", payload)

    @staticmethod
    def _stop_reason(reply: Reply) -> str:
        return "max_tokens" if reply.truncated else "end_turn"
