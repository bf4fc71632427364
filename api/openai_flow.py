"""The request flow both OpenAI-format completion routes share: parse, submit, then stream or wait. The
seed's `/api/v1/completions` adds cost and fallback fields to the same answer."""

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from api.body import read_json_object
from api.deps import AppState
from api.relay import wait_for_result
from api.responses import served_headers
from api.streaming import stream_response
from api.submit import submit_job
from shared.models import WireFormat
from shared.tenant_cache import TenantSnapshot
from shared.wire import openai as openai_wire


async def run_openai_completion(
    request: Request, state: AppState, tenant: TenantSnapshot, *, with_cost: bool
) -> Response:
    chat = openai_wire.parse_request(await read_json_object(request, state.settings.max_body_bytes))
    record = await submit_job(state, tenant, chat, WireFormat.OPENAI)
    if chat.stream:
        renderer = openai_wire.StreamRenderer(
            f"chatcmpl-{record.id}", chat.model, int(record.created_at), chat.include_usage
        )
        return stream_response(state, record, renderer)
    result = await wait_for_result(state, record.id)
    body = openai_wire.render_completion(result.completion)
    if with_cost:
        body["cost_usd"] = result.cost_usd
        body["fallback_used"] = result.fallback_used
    return JSONResponse(body, headers=served_headers(record, result))
