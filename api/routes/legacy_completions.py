"""OpenAI-compatible legacy text completions (`POST /v1/completions`): the official SDK's `completions.create`
works unmodified, plain or streamed, on routes with a target that serves completions (routes file
`endpoints`); a chat-only route is refused with a 400 before admission."""

from fastapi import APIRouter, Request, Response

from api.deps import StateDep, TenantDep, TenantShardDep
from api.endpoint_flow import run_endpoint_request
from api.text_completion_stream import stream_text_completion
from api.wire_routes import OpenAIRoute
from shared.wire.openai_text_completions import parse_text_completion_request, render_text_completion

router = APIRouter(route_class=OpenAIRoute, tags=["openai"])


@router.post("/v1/completions")
async def create_text_completion(request: Request, state: StateDep, shard: TenantShardDep,
                          tenant: TenantDep) -> Response:
    """Create a legacy text completion (OpenAI format), served by the first target that has the endpoint."""
    return await run_endpoint_request(request, state, shard, tenant, parse_text_completion_request,
                                      render_text_completion, stream_text_completion)
