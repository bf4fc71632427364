"""The model list and model lookup both SDKs call at `/v1/models`: the public model names this gateway routes
that the caller's tenant and key may call (issue 15; another routed name is 403 `model_not_allowed`).
An OpenAI client (`client.models.list()` / `retrieve(id)`) gets OpenAI's model objects; an Anthropic client,
known by its `anthropic-version` header, gets Anthropic's (`type: model`, `display_name`, cursor pages),
errors included (api.wire_routes.ClientChosenRoute). A model name may contain `/` and `:`; the SDKs send `/`
as `%2F`, which the server decodes, so the id is matched as a path."""

import re

from fastapi import APIRouter, Request

from api.deps import StateDep, TenantDep
from api.wire_routes import ClientChosenRoute
from shared.api_keys import check_model_access, visible_models
from shared.errors import InvalidRequest, ModelNotFound
from shared.models import WireFormat

router = APIRouter(route_class=ClientChosenRoute, tags=["openai", "anthropic"])

EPOCH = "1970-01-01T00:00:00Z"
DEFAULT_PAGE, MAX_PAGE = 20, 1000
LIMIT_DIGITS = re.compile(r"[0-9]{1,4}")  # ASCII digits only, and few: int() never sees 4,300 of them


@router.get("/v1/models")
async def list_models(request: Request, state: StateDep, tenant: TenantDep) -> dict[str, object]:
    """The public model names clients may ask for (Anthropic's clients page through them)."""
    names = visible_models(tenant, state.routing_table.public_models())
    if ClientChosenRoute.format_for(request) is WireFormat.ANTHROPIC:
        return anthropic_page(names, request)
    return {"object": "list", "data": [openai_model(name) for name in names]}


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, request: Request, state: StateDep, tenant: TenantDep) -> dict[str, object]:
    """One routed public model; any other name is 404 `model_not_found`."""
    if model_id not in state.routing_table.public_models() and not state.routing_table.targets_for(model_id):
        raise ModelNotFound(f"The model '{model_id}' does not exist or is not routed by this gateway")
    check_model_access(tenant, model_id)
    if ClientChosenRoute.format_for(request) is WireFormat.ANTHROPIC:
        return anthropic_model(model_id)
    return openai_model(model_id)


def openai_model(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "llm-gateway"}


def anthropic_model(name: str) -> dict[str, object]:
    # The gateway knows no release date: Anthropic's own answer for an unknown one is an epoch value.
    return {"type": "model", "id": name, "display_name": name, "created_at": EPOCH, "lifecycle": "active"}


def anthropic_page(names: list[str], request: Request) -> dict[str, object]:
    """Anthropic's cursor page: `limit` (1 to 1000, default 20) names after `after_id` or before `before_id`."""
    params = request.query_params
    limit = _limit(params.get("limit"))
    start, end = 0, len(names)
    if "after_id" in params:
        start = _position(names, params["after_id"], "after_id") + 1
    if "before_id" in params:
        end = _position(names, params["before_id"], "before_id")
        start = max(start, end - limit) if "after_id" not in params else start
    page = names[start:min(end, start + limit)]
    more = start + len(page) < end if "before_id" not in params else start > 0
    return {"data": [anthropic_model(name) for name in page], "has_more": more,
            "first_id": page[0] if page else None, "last_id": page[-1] if page else None}


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not LIMIT_DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidRequest(f"'limit' must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def _position(names: list[str], name: str, param: str) -> int:
    if name not in names:
        raise InvalidRequest(f"'{param}' names no model of this list: {name!r}")
    return names.index(name)
