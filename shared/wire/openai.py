"""The OpenAI Chat Completions wire format, translated once and used both ways; this module is its one door.

Inbound (client -> gateway): `parse_request` (shared.wire.openai_request, messages in openai_parts), then
`render_completion`, `StreamRenderer` and `render_error` for what goes back (openai_render). Outbound
(gateway -> OpenAI through the official SDK): `render_request` gives the keyword arguments of
`AsyncOpenAI().chat.completions.create` for a request of any source (openai_outbound), and `parse_completion`
/ `parse_chunk` read the raw JSON of the response or of one streamed chunk (openai_response).
"""

from shared.wire.openai_common import (
    CLIENT_FINISH_REASONS,
    FINISH_REASONS,
    MAX_STOP,
    REASONING_MODEL_PREFIXES,
)
from shared.wire.openai_outbound import BUDGET_EFFORTS, render_request
from shared.wire.openai_render import StreamRenderer, render_completion, render_error
from shared.wire.openai_request import MODELLED_FIELDS, parse_request
from shared.wire.openai_response import parse_chunk, parse_completion

__all__ = [
    "BUDGET_EFFORTS",
    "CLIENT_FINISH_REASONS",
    "FINISH_REASONS",
    "MAX_STOP",
    "MODELLED_FIELDS",
    "REASONING_MODEL_PREFIXES",
    "StreamRenderer",
    "parse_chunk",
    "parse_completion",
    "parse_request",
    "render_completion",
    "render_error",
    "render_request",
]
