"""OpenAI-compatible embeddings (`POST /v1/embeddings`): the official SDK's `embeddings.create` works unmodified,
float or base64, through the queue like every provider call."""

from fastapi import APIRouter, Request, Response

from api.deps import StateDep, TenantDep, TenantShardDep
from api.endpoint_flow import run_endpoint_request
from api.wire_routes import OpenAIRoute
from shared.wire.openai_embeddings import parse_embedding_request, render_embeddings

router = APIRouter(route_class=OpenAIRoute, tags=["openai"])


@router.post("/v1/embeddings")
async def create_embedding(request: Request, state: StateDep, shard: TenantShardDep,
                          tenant: TenantDep) -> Response:
    """Create embeddings (OpenAI format), served by the first target of the model's route that has them."""
    return await run_endpoint_request(request, state, shard, tenant, parse_embedding_request, render_embeddings)
