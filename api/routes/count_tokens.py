"""Anthropic's token counting, `POST /v1/messages/count_tokens`, for every route: the official `anthropic`
SDK's `messages.count_tokens` (and Claude Code) work with `base_url=<gateway>`. The route's first eligible
target decides who counts (`x-gateway-token-counter` says which): an OpenAI target is counted here with
tiktoken, as OpenAI would bill the request; an Anthropic target's count comes from Anthropic's own endpoint,
through a worker (the API never calls a provider). Not billed; counted against the tenant's request rate.
Errors are in Anthropic's shape."""

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.admission import admit_request
from api.body import read_json_object
from api.deps import AppState, StateDep, TenantDep
from api.request_context import request_context
from api.submit import DROPPED_HEADER, requested_drop_params
from api.wire_routes import AnthropicRoute
from shared.errors import InvalidRequest, ModelNotFound, UnsupportedParameter
from shared.models import ChatRequest
from shared.routing_table import Target
from shared.wire.anthropic_count import parse_count_request, render_count
from shared.wire.capabilities import Plan, plan_target

router = APIRouter(route_class=AnthropicRoute, tags=["anthropic"])

COUNTER_HEADER = "x-gateway-token-counter"


@router.post("/v1/messages/count_tokens")
async def count_message_tokens(request: Request, state: StateDep, tenant: TenantDep) -> JSONResponse:
    """Count the input tokens of a Messages request (Anthropic format) on the route's first eligible target."""
    body = await read_json_object(request, state.settings.max_body_bytes)
    chat = parse_count_request(body, request.headers)
    request_context(request).model = state.metric_labels.model(chat.model)
    targets = state.routing_table.targets_for(chat.model)
    if not targets:
        raise ModelNotFound(f"The model '{chat.model}' does not exist or is not routed by this gateway")
    target, plan = first_eligible(state, chat, targets, requested_drop_params(request))
    # Only the request is counted (full=False): no tokens, no budget, no concurrency slot, as it is not billed.
    _, headers = await admit_request(state, tenant, chat, targets, f"count_{uuid.uuid4().hex}", full=False)
    request_context(request).headers = headers
    if plan.drop:
        headers = {**headers, DROPPED_HEADER: ",".join(sorted(plan.drop))}
    if target.provider != "openai":
        raise InvalidRequest(f"Counting tokens for '{chat.model}', served by Anthropic, is not available yet",
                             code="unsupported_parameter")
    count = await state.token_counter.count(chat, target.model, state.settings, drop=plan.drop)
    return JSONResponse(render_count(count.input_tokens), headers={
        **headers, COUNTER_HEADER: count.counter, "x-gateway-provider": target.provider,
        "x-gateway-model": target.model})


def first_eligible(state: AppState, chat: ChatRequest, targets: list[Target],
                   client_drops: list[str]) -> tuple[Target, Plan]:
    """The target a Messages request would go to first, and what it would leave out; none: the 400 that
    request would get, naming the first target's first parameter it cannot honour."""
    allowed = state.routing_table.drop_params_for(chat.model) | frozenset(client_drops)
    refused: tuple[str, str] | None = None
    for target in targets:
        plan = plan_target(chat, target, allowed)
        if plan.refused is None:
            return target, plan
        refused = refused or plan.refused
    raise UnsupportedParameter(*(refused or ("model", "its route has no target")))
