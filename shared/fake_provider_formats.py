"""What the fake provider's two wire formats share: the Dialect protocol, auth, request validation, error
types, SSE framing and the grouping of stream frames into head / paced tokens / tail. The formats themselves
are shared.fake_provider_openai and shared.fake_provider_anthropic. Used only by the fake provider."""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from shared.fake_provider_inputs import Inputs
from shared.fake_provider_reply import Reply, Usage

__all__ = [
    "JSON",
    "Dialect",
    "Frame",
    "Problem",
    "StreamParts",
    "bearer_token",
    "common_problem",
    "error_type",
    "limit_problem",
    "sse_data",
    "sse_event",
    "stream_parts",
]

JSON = dict[str, Any]
Problem = tuple[str, str | None]  # (message, offending parameter)
Frame = tuple[str, bool]  # (SSE text, whether it carries generated output and so counts as a token)

_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class StreamParts:
    """Pre-rendered SSE text: sent before the tokens, one entry per token (paced, and where `cut-after-N`
    cuts), and after the tokens."""

    head: list[str]
    tokens: list[str]
    tail: list[str]


class Dialect(Protocol):
    """What differs between the two provider formats."""

    id_prefix: str
    call_prefix: str

    def authorized(self, headers: Headers) -> bool: ...

    def problem(self, body: JSON | None) -> Problem | None: ...

    def inputs(self, body: JSON) -> Inputs: ...

    def prompt_texts(self, body: JSON) -> list[str]: ...

    def max_tokens(self, body: JSON) -> int | None: ...

    def usage(self, body: JSON, prompt_tokens: int, completion_tokens: int) -> Usage: ...

    def error(
        self, status: int, message: str, param: str | None = None, headers: Mapping[str, str] | None = None
    ) -> JSONResponse: ...

    def completion(self, reply: Reply) -> JSON: ...

    def stream(self, reply: Reply, body: JSON) -> StreamParts: ...


def bearer_token(headers: Headers) -> str:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def error_type(status: int, server_error: str) -> str:
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return server_error if status >= 500 else "invalid_request_error"


def common_problem(body: JSON | None) -> Problem | None:
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


def limit_problem(value: object, name: str) -> Problem | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"'{name}' must be a positive integer.", name
    return None


def sse_data(payload: JSON) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def sse_event(name: str, payload: JSON) -> str:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n"


def stream_parts(frames: list[Frame], tail_from: int) -> StreamParts:
    """Group frames: everything before the first token frame is the head; each token frame takes the
    non-token frames before it (a block's start, the previous block's stop); frames from index `tail_from`
    on (the finish) are the tail, with any non-token frames left over before them."""
    body, tail = frames[:tail_from], [text for text, _ in frames[tail_from:]]
    head: list[str] = []
    tokens: list[str] = []
    pending: list[str] = []
    for text, is_token in body:
        if not is_token:
            pending.append(text)
        elif not tokens and not head:
            head, pending = pending, []
            tokens.append(text)
        else:
            tokens.append("".join([*pending, text]))
            pending = []
    if not tokens:
        return StreamParts(head=pending, tokens=[], tail=tail)
    return StreamParts(head=head, tokens=tokens, tail=[*pending, *tail])
