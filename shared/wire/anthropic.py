"""The Anthropic Messages wire format, translated once and used both ways. This module is the one name the
rest of the gateway imports; the work is split by direction:

- client -> gateway: `parse_request` (`anthropic_request`), then `render_completion`
  (`anthropic_response`), `StreamRenderer` (`anthropic_stream`) and `render_error` (`anthropic_errors`) for
  what goes back;
- gateway -> Anthropic through the official SDK: `render_request` (`anthropic_outbound`) gives the keyword
  arguments of `AsyncAnthropic().messages.create`, and `parse_completion` / `StreamParser`
  (`anthropic_response`) read the response JSON or its stream events;
- content blocks both ways: `anthropic_blocks`.
"""

from collections.abc import Mapping

from shared.models import Delta
from shared.wire.anthropic_errors import ERROR_TYPES, render_error
from shared.wire.anthropic_outbound import (
    DEFAULT_MAX_TOKENS,
    EFFORT_BUDGETS,
    MID_CONVERSATION_SYSTEM_BETA,
    render_request,
    sent_max_tokens,
)
from shared.wire.anthropic_request import parse_betas, parse_request
from shared.wire.anthropic_response import (
    FINISH_REASONS,
    STOP_REASONS,
    StreamParser,
    parse_completion,
    parse_usage,
    render_completion,
    render_usage,
)
from shared.wire.anthropic_stream import StreamRenderer

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "EFFORT_BUDGETS",
    "ERROR_TYPES",
    "FINISH_REASONS",
    "MID_CONVERSATION_SYSTEM_BETA",
    "STOP_REASONS",
    "StreamParser",
    "StreamRenderer",
    "parse_betas",
    "parse_chunk",
    "parse_completion",
    "parse_request",
    "parse_usage",
    "render_completion",
    "render_error",
    "render_request",
    "render_usage",
    "sent_max_tokens",
]


def parse_chunk(data: Mapping[str, object]) -> list[Delta]:
    """One stream event on its own, for callers without a stream's state: a tool call's deltas are numbered
    as if it were the stream's first (use a `StreamParser` per stream to number them right)."""
    return StreamParser().parse(data)
