"""The OpenAI Responses wire format (`/v1/responses`), client side only; this module is its one door.

`parse_responses_request` reads a body into a `ChatRequest` and the Responses-only fields
(shared.wire.responses_request, input items in responses_items); `render_response` and
`ResponsesStreamRenderer` give the answer back as a `response` object or its stream events
(responses_response, responses_stream); errors are OpenAI's. The upstream call stays Chat Completions or
Messages: the workers' adapters never see this format."""

from shared.wire.responses_items import parse_input
from shared.wire.responses_request import (
    INPUT_ITEM_INCLUDES,
    RESPONSE_INCLUDES,
    ResponsesRequest,
    check_include,
    parse_request,
    parse_responses_request,
    responses_param,
    responses_refusal,
)
from shared.wire.responses_response import (
    ResponseShell,
    render_error,
    render_output,
    render_response,
    response_status,
)
from shared.wire.responses_stream import ResponsesStreamRenderer

__all__ = [
    "INPUT_ITEM_INCLUDES",
    "RESPONSE_INCLUDES",
    "ResponseShell",
    "ResponsesRequest",
    "ResponsesStreamRenderer",
    "check_include",
    "parse_input",
    "parse_request",
    "parse_responses_request",
    "render_error",
    "render_output",
    "render_response",
    "response_status",
    "responses_param",
    "responses_refusal",
]
