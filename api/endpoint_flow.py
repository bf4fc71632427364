"""The request flow of the non-chat OpenAI endpoints (embeddings, legacy completions): read the body with the
endpoint's wire parser, submit it as a chat request is submitted (cache, limits, budget, queue:
api/submit.py), then answer from the cache or the job's result, rendered by the endpoint's wire module, with
the same served, cache and rate-limit headers as chat."""

from collections.abc import Awaitable, Callable, Mapping

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from api.body import read_json_object
from api.deps import AppState
from api.relay import Result, wait_for_result
from api.request_context import request_context
from api.responses import hit_headers, served_headers, stored_result
from api.shards import ShardHandles
from api.submit import Submission, record_cache_hit, submit
from shared.cache import CachedAnswer
from shared.endpoint_requests import EmbeddingRequest, TextCompletionRequest
from shared.models import Completion, WireFormat
from shared.tenant_cache import TenantSnapshot

EndpointRequest = EmbeddingRequest | TextCompletionRequest
Parse = Callable[[Mapping[str, object]], EndpointRequest]
Render = Callable[[Completion], dict[str, object]]
Stream = Callable[[AppState, ShardHandles, Request, TenantSnapshot, EndpointRequest, Submission, bool],
                  Awaitable[Response]]
"""Answers a streamed request from its job's events (`owns_job` last)."""


async def run_endpoint_request(http: Request, state: AppState, shard: ShardHandles, tenant: TenantSnapshot,
                               parse: Parse,
                               render: Render, stream: Stream | None = None) -> Response:
    body = await read_json_object(http, state.settings.max_body_bytes)
    call = parse(body)
    submission = await submit(state, shard, http, tenant, call, WireFormat.OPENAI, body)
    # An error after this point (the job failed) still carries the rate-limit headers: see api.errors.
    context = request_context(http)
    context.headers = submission.headers
    if submission.job_id:
        context.job_id = submission.job_id
    if submission.hit is not None:
        context.provider, context.provider_s = submission.hit.completion.provider, 0.0
        if stream is not None and call.stream:
            return await stream(state, shard, http, tenant, call, submission, False)
        return JSONResponse(render(submission.hit.completion),
                            headers={**submission.headers, **hit_headers(submission.hit)})
    owns_job = not (submission.shared or submission.replayed)
    if stream is not None and call.stream:
        return await stream(state, shard, http, tenant, call, submission, owns_job)
    result = await stored_result(state, shard, submission.job_id) if submission.replayed else None
    result = result or await wait_for_result(state, shard, submission.job_id, owns_job=owns_job)
    await record_shared(state, shard, http, tenant, call, submission, result)
    cost = 0.0 if submission.shared else result.cost_usd
    headers = {**submission.headers, **served_headers(submission.job_id, result, cost)}
    return JSONResponse(render(result.completion), headers=headers)


async def record_shared(state: AppState, shard: ShardHandles, http: Request, tenant: TenantSnapshot,
                        call: EndpointRequest,
                        submission: Submission, result: Result) -> None:
    """Note who served the answer; a request that joined an identical one's job is recorded as a cache hit."""
    context = request_context(http)
    context.provider, context.provider_s = result.completion.provider, result.provider_s
    if submission.shared:
        await record_cache_hit(shard, tenant, call, CachedAnswer(completion=result.completion, chunks=[],
                                                                 cost_usd=result.cost_usd),
                               submission.attribution)
