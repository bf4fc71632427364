"""Anthropic's token-counting request (`POST /v1/messages/count_tokens`) both ways: a client's body ->
`ChatRequest` (`parse_count_request`), and the answer `{"input_tokens": N}` (`render_count`). The body is a
Messages body without the fields that only shape an answer (`max_tokens`, sampling, `stream`, ...): Anthropic
refuses those there, and so does the gateway (400 naming the field), rather than ignore them."""

from collections.abc import Mapping

from shared.models import ChatRequest
from shared.wire._common import invalid, require_object
from shared.wire.anthropic_request import parse_request

__all__ = ["ANSWER_ONLY_FIELDS", "parse_count_request", "render_count"]

ANSWER_ONLY_FIELDS = ("max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata",
                      "service_tier")
"""Messages fields the count endpoint does not take (they change the answer, not the prompt)."""
PARSE_MAX_TOKENS = 1
"""Given to the Messages parser, which requires a limit; never sent anywhere (the result has none)."""


def parse_count_request(body: Mapping[str, object], headers: Mapping[str, str] | None = None) -> ChatRequest:
    """Validate a count body as the Messages parser does (400 naming the field); the request has no limit."""
    data = require_object(body, "request body")
    for name in ANSWER_ONLY_FIELDS:
        if name in data:
            raise invalid(name, "is not accepted by count_tokens: Extra inputs are not permitted")
    chat = parse_request({**data, "max_tokens": PARSE_MAX_TOKENS}, headers)
    return chat.model_copy(update={"max_tokens": None})


def render_count(input_tokens: int) -> dict[str, object]:
    return {"input_tokens": input_tokens}
