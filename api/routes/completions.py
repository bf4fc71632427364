"""The seed's completion endpoint: OpenAI chat.completion JSON plus `provider` and `cost_usd`; SSE when
`stream` is true."""

from fastapi import APIRouter, Request, Response

from api.deps import StateDep, TenantDep
from api.openai_flow import run_openai_completion
from api.routes.schemas import CHAT_REQUEST_BODY

router = APIRouter(prefix="/api/v1", tags=["gateway"])


@router.post("/completions", openapi_extra=CHAT_REQUEST_BODY)
async def create_completion(request: Request, state: StateDep, tenant: TenantDep) -> Response:
    """Run a completion and wait for it; the answer says which provider served it and what it cost."""
    return await run_openai_completion(request, state, tenant, with_cost=True)
