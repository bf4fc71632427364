"""OpenAI-compatible chat completions: the official `openai` SDK works unmodified with
`base_url=<gateway>/v1`, stream and non-stream."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from api.body import read_json_object
from api.deps import StateDep, TenantDep
from api.relay import wait_for_result
from api.responses import served_headers
from api.routes.schemas import CHAT_REQUEST_BODY
from api.streaming import stream_response
from api.submit import submit_job
from shared.models import WireFormat
from shared.wire import openai as openai_wire

router = APIRouter(tags=["openai"])


@router.post("/v1/chat/completions", openapi_extra=CHAT_REQUEST_BODY)
async def create_chat_completion(request: Request, state: StateDep, tenant: TenantDep) -> Response:
    """Create a chat completion (OpenAI format). Served by whichever target of the model's route answers."""
    chat = openai_wire.parse_request(await read_json_object(request, state.settings.max_body_bytes))
    record = await submit_job(state, tenant, chat, WireFormat.OPENAI)
    if chat.stream:
        renderer = openai_wire.StreamRenderer(
            f"chatcmpl-{record.id}", chat.model, int(record.created_at), chat.include_usage
        )
        return stream_response(state, record, renderer)
    result = await wait_for_result(state, record.id)
    return JSONResponse(openai_wire.render_completion(result.completion), headers=served_headers(record, result))
