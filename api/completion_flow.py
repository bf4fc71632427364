"""The request flow every completion route shares: read and parse the body with the route's wire module,
submit (cache, limits, queue), then answer in the same wire format."""

from types import ModuleType

from fastapi import Request, Response

from api.body import read_json_object
from api.deps import AppState
from api.responses import respond
from api.submit import submit
from shared.models import WireFormat
from shared.tenant_cache import TenantSnapshot


async def run_completion_request(request: Request, state: AppState, tenant: TenantSnapshot, wire: ModuleType,
                                 wire_format: WireFormat, *, with_cost: bool = False) -> Response:
    body = await read_json_object(request, state.settings.max_body_bytes)
    chat = wire.parse_request(body, request.headers)  # headers: Anthropic's `anthropic-beta`
    submission = await submit(state, request, tenant, chat, wire_format, body)
    request.state.gateway_headers = submission.headers
    return await respond(state, request, tenant, chat, submission, wire, with_cost=with_cost)
