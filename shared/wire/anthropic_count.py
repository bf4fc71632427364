"""Anthropic's token-counting request (`POST /v1/messages/count_tokens`) both ways: a client's body ->
`ChatRequest` (`parse_count_request`) and the answer `{"input_tokens": N}` (`render_count`); and towards
Anthropic, the SDK's `messages.count_tokens` arguments (`render_count_request`, the Messages rendering
without what the count does not take) and its answer (`parse_count`). The body is a
Messages body without the fields that only shape an answer (`max_tokens`, sampling, `stream`, ...): Anthropic
refuses those there, and so does the gateway (400 naming the field), rather than ignore them."""

from collections.abc import Mapping

from shared.errors import UpstreamUnavailable
from shared.models import ChatRequest
from shared.wire._common import invalid, require_object
from shared.wire.anthropic_outbound import render_request
from shared.wire.anthropic_request import parse_request

__all__ = ["ANSWER_ONLY_FIELDS", "COUNT_ARGUMENTS", "parse_count", "parse_count_request", "render_count",
           "render_count_request"]

ANSWER_ONLY_FIELDS = ("max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata",
                      "service_tier")
"""Messages fields the count endpoint does not take (they change the answer, not the prompt)."""
COUNT_ARGUMENTS = frozenset({
    "model", "messages", "cache_control", "output_config", "speed", "system", "thinking", "tool_choice", "tools",
    "user_profile_id", "workspace_id", "extra_body", "extra_headers",
})
"""What `messages.count_tokens` takes as arguments (anthropic 2.17); any other field goes in `extra_body`."""
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


def render_count_request(request: ChatRequest, model: str, *, drop: frozenset[str] = frozenset()) -> dict[str, object]:
    """Keyword arguments for `AsyncAnthropic().messages.count_tokens(**kw)`: the request rendered as for
    `messages.create` (the same refusals and drops), less the limit a Message needs and a count does not."""
    kw = render_request(request, model, drop=drop)
    kw.pop("max_tokens", None)
    moved = {key: kw.pop(key) for key in list(kw) if key not in COUNT_ARGUMENTS}
    if moved:
        extra = kw.get("extra_body")
        kw["extra_body"] = {**(extra if isinstance(extra, dict) else {}), **moved}
    return kw


def parse_count(body: Mapping[str, object], provider: str) -> int:
    """Anthropic's answer; one without a whole `input_tokens` is a broken upstream (retryable, as any)."""
    tokens = body.get("input_tokens")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise UpstreamUnavailable(f"{provider} answered a token count without a whole 'input_tokens'")
    return tokens
