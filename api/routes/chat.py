"""OpenAI-compatible chat completions: the official `openai` SDK works unmodified with
`base_url=<gateway>/v1`, stream and non-stream."""

from fastapi import APIRouter, Request, Response

from api.completion_flow import run_completion_request
from api.deps import StateDep, TenantDep, TenantShardDep
from api.routes.schemas import CHAT_REQUEST_BODY
from api.wire_routes import OpenAIRoute
from shared.wire.codec import OPENAI_CODEC

router = APIRouter(route_class=OpenAIRoute, tags=["openai"])


@router.post("/v1/chat/completions", openapi_extra=CHAT_REQUEST_BODY)
async def create_chat_completion(request: Request, state: StateDep, shard: TenantShardDep,
                          tenant: TenantDep) -> Response:
    """Create a chat completion (OpenAI format). Served by whichever target of the model's route answers."""
    return await run_completion_request(request, state, shard, tenant, OPENAI_CODEC)
