"""OpenAI-compatible model list: the public model names this gateway routes."""

from fastapi import APIRouter

from api.deps import StateDep, TenantDep

router = APIRouter(tags=["openai"])


@router.get("/v1/models")
async def list_models(state: StateDep, tenant: TenantDep) -> dict[str, object]:
    """The public model names clients may ask for."""
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "llm-gateway"}
            for name in state.routing_table.public_models()]
    return {"object": "list", "data": data}
