"""Anthropic-compatible Messages API: the official `anthropic` SDK works with `base_url=<gateway>`, stream
and non-stream, whichever provider serves the request. Errors here are in Anthropic's shape."""

from fastapi import APIRouter, Request, Response

from api.completion_flow import run_completion_request
from api.deps import StateDep, TenantDep, TenantShardDep
from api.routes.schemas import MESSAGES_REQUEST_BODY
from api.wire_routes import AnthropicRoute
from shared.wire.codec import ANTHROPIC_CODEC

router = APIRouter(route_class=AnthropicRoute, tags=["anthropic"])


@router.post("/v1/messages", openapi_extra=MESSAGES_REQUEST_BODY)
async def create_message(request: Request, state: StateDep, shard: TenantShardDep,
                          tenant: TenantDep) -> Response:
    """Create a message (Anthropic format)."""
    return await run_completion_request(request, state, shard, tenant, ANTHROPIC_CODEC)
