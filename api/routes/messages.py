"""Anthropic-compatible Messages API: the official `anthropic` SDK works with `base_url=<gateway>`, stream
and non-stream, whichever provider serves the request. Errors here are in Anthropic's shape."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.body import read_json_object
from api.deps import StateDep, TenantDep
from api.relay import wait_for_result
from api.responses import served_headers
from api.routes.schemas import MESSAGES_REQUEST_BODY
from api.streaming import stream_response
from api.submit import submit_job
from shared.models import WireFormat
from shared.wire import anthropic as anthropic_wire

router = APIRouter(tags=["anthropic"])


@router.post("/v1/messages", openapi_extra=MESSAGES_REQUEST_BODY)
async def create_message(request: Request, state: StateDep, tenant: TenantDep) -> Response:
    """Create a message (Anthropic format)."""
    chat = anthropic_wire.parse_request(await read_json_object(request, state.settings.max_body_bytes))
    record = await submit_job(state, tenant, chat, WireFormat.ANTHROPIC)
    if chat.stream:
        renderer = anthropic_wire.StreamRenderer(f"msg_{record.id}", chat.model, int(record.created_at), True)
        return stream_response(state, record, renderer)
    result = await wait_for_result(state, record.id)
    return JSONResponse(anthropic_wire.render_completion(result.completion), headers=served_headers(record, result))
