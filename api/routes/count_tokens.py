"""Anthropic's token counting, `POST /v1/messages/count_tokens`, for every route: the official `anthropic`
SDK's `messages.count_tokens` (and Claude Code) work with `base_url=<gateway>`. The route's first eligible
target decides who counts (`x-gateway-token-counter` says which): an OpenAI target is counted here with
tiktoken, as OpenAI would bill the request; an Anthropic target's count comes from Anthropic's own endpoint,
through a worker (the API never calls a provider). Not billed; counted against the tenant's request rate.
Errors are in Anthropic's shape."""

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from api.admission import admit_request
from api.body import read_json_object
from api.deps import AppState, StateDep, TenantDep, TenantShardDep
from api.relay import wait_for_result
from api.request_context import request_context
from api.shards import ShardHandles
from api.submit import DROPPED_HEADER, first_eligible, requested_drop_params
from api.wire_routes import AnthropicRoute
from shared.api_keys import check_model_access
from shared.attribution import build_attribution
from shared.endpoint import TokenCountOutput
from shared.endpoint_requests import CountTokensRequest
from shared.errors import GatewayError, ModelNotFound, RedisUnavailable
from shared.fair_queue import Priority, TenantShare
from shared.jobs import JobOptions
from shared.models import ChatRequest, WireFormat
from shared.tenant_cache import TenantSnapshot
from shared.wire.anthropic_count import parse_count_request, render_count

router = APIRouter(route_class=AnthropicRoute, tags=["anthropic"])

COUNTER_HEADER = "x-gateway-token-counter"


@router.post("/v1/messages/count_tokens")
async def count_message_tokens(request: Request, state: StateDep, shard: TenantShardDep,
                               tenant: TenantDep) -> JSONResponse:
    """Count the input tokens of a Messages request (Anthropic format) on the route's first eligible target."""
    body = await read_json_object(request, state.settings.max_body_bytes)
    chat = parse_count_request(body, request.headers)
    check_model_access(tenant, chat.model)
    request_context(request).model = state.metric_labels.model(chat.model)
    targets = state.routing_table.targets_for(chat.model)
    if not targets:
        raise ModelNotFound(f"The model '{chat.model}' does not exist or is not routed by this gateway")
    client_drops = requested_drop_params(request)
    target, plan = first_eligible(state, chat, targets, client_drops)
    # Only the request is counted (full=False): no tokens, no budget, no concurrency slot, as it is not billed.
    _, headers = await admit_request(state, shard, tenant, chat, targets, f"count_{uuid.uuid4().hex}", full=False)
    request_context(request).headers = headers
    if plan.drop:
        headers = {**headers, DROPPED_HEADER: ",".join(sorted(plan.drop))}
    if target.provider == "anthropic":
        return await count_by_worker(state, shard, request, tenant, chat, client_drops, headers)
    count = await state.token_counter.count(chat, target.model, state.settings, drop=plan.drop)
    return JSONResponse(render_count(count.input_tokens), headers={
        **headers, COUNTER_HEADER: count.counter, "x-gateway-provider": target.provider,
        "x-gateway-model": target.model})


async def count_by_worker(state: AppState, shard: ShardHandles, http: Request, tenant: TenantSnapshot,
                          chat: ChatRequest,
                          client_drops: list[str], headers: dict[str, str]) -> JSONResponse:
    """Anthropic's count, as a job a worker runs (worker/count_tokens_job.py), waited for like a completion:
    the same queue, fairness, retries and fallback (across the route's Anthropic targets); no admission
    hold, as it holds no tokens, budget or slot."""
    job_id = f"job_{uuid.uuid4().hex}"
    # The key and the two attribution headers; a count request has no `user` (Anthropic refuses `metadata`).
    attribution = build_attribution(http.headers, tenant.key_id, None, None)
    options = JobOptions(request_id=request_context(http).request_id, priority=Priority.INTERACTIVE,
                         drop_params=client_drops, **attribution.model_dump())
    share = TenantShare(weight=tenant.weight or 1, max_running=tenant.max_running or 0)
    try:
        await shard.store.create(job_id, tenant.id, CountTokensRequest(request=chat), WireFormat.ANTHROPIC, options,
                                 enqueue=lambda pipe, record: shard.queue.enqueue_on(pipe, record, share=share))
    except RedisError as exc:
        raise RedisUnavailable() from exc
    request_context(http).job_id = job_id
    result = await wait_for_result(state, shard, job_id)
    output = result.completion.output
    if not isinstance(output, TokenCountOutput):
        raise GatewayError(f"internal error: job {job_id} ended without a token count")
    request_context(http).provider, request_context(http).provider_s = result.completion.provider, result.provider_s
    return JSONResponse(render_count(output.input_tokens), headers={
        **headers, COUNTER_HEADER: "anthropic", "x-gateway-job-id": job_id,
        "x-gateway-provider": result.completion.provider, "x-gateway-model": result.completion.model,
        "x-gateway-fallback": "true" if result.fallback_used else "false"})
