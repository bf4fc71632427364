"""The seed's completion endpoint: OpenAI chat.completion JSON plus `provider` and `cost_usd`; SSE when
`stream` is true."""

from fastapi import APIRouter, Request, Response

from api.completion_flow import run_completion_request
from api.deps import StateDep, TenantDep, TenantShardDep
from api.routes.schemas import CHAT_REQUEST_BODY
from api.wire_routes import OpenAIRoute
from shared.wire.codec import OPENAI_CODEC

router = APIRouter(route_class=OpenAIRoute, prefix="/api/v1", tags=["gateway"])


@router.post("/completions", openapi_extra=CHAT_REQUEST_BODY)
async def create_completion(request: Request, state: StateDep, shard: TenantShardDep,
                          tenant: TenantDep) -> Response:
    """Run a completion and wait for it; the answer says which provider served it and what it cost."""
    return await run_completion_request(request, state, shard, tenant, OPENAI_CODEC, with_cost=True)
