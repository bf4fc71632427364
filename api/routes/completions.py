"""The seed's completion endpoint: OpenAI chat.completion JSON plus `provider` and `cost_usd`; SSE when
`stream` is true."""

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

router = APIRouter(prefix="/api/v1", tags=["gateway"])


@router.post("/completions", openapi_extra=CHAT_REQUEST_BODY)
async def create_completion(request: Request, state: StateDep, tenant: TenantDep) -> Response:
    """Run a completion and wait for it; the answer says which provider served it and what it cost."""
    chat = openai_wire.parse_request(await read_json_object(request, state.settings.max_body_bytes))
    record = await submit_job(state, tenant, chat, WireFormat.OPENAI)
    if chat.stream:
        renderer = openai_wire.StreamRenderer(
            f"chatcmpl-{record.id}", chat.model, int(record.created_at), chat.include_usage
        )
        return stream_response(state, record, renderer)
    result = await wait_for_result(state, record.id)
    body = openai_wire.render_completion(result.completion)
    body["cost_usd"] = result.cost_usd
    body["fallback_used"] = result.fallback_used
    return JSONResponse(body, headers=served_headers(record, result))
