"""Builds the answer to a completion request in its wire format: JSON or SSE, from a job's result, a job
shared with an identical request, or a cached answer. Every answer says which job, provider and model
served it, and carries the rate-limit and cache headers decided at submission."""

import time
import uuid

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from api.deps import AppState
from api.relay import Result, wait_for_result
from api.request_context import request_context
from api.shards import ShardHandles
from api.streaming import stream_cached, stream_job
from api.submit import Submission, record_cache_hit
from shared.cache import CachedAnswer
from shared.errors import GatewayError, JobCancelled, error_from_dict
from shared.models import ChatRequest, Completion, JobStatus
from shared.tenant_cache import TenantSnapshot
from shared.wire.codec import WireCodec


async def respond(state: AppState, shard: ShardHandles, http: Request, tenant: TenantSnapshot, chat: ChatRequest,
                  submission: Submission, codec: WireCodec, *, with_cost: bool = False) -> Response:
    """Answers in `codec`'s wire format; `with_cost` adds cost fields (seed API)."""
    renderer = codec.stream_renderer(f"{codec.id_prefix}{submission.job_id or uuid.uuid4().hex}", chat.model,
                                     int(time.time()), chat.include_usage)
    context = request_context(http)
    if submission.job_id:
        context.job_id = submission.job_id
    if submission.hit is not None:
        context.provider, context.provider_s = submission.hit.completion.provider, 0.0
        headers = {**submission.headers, **hit_headers(submission.hit)}
        if chat.stream:
            return stream_cached(submission.hit, renderer, headers)
        return _json(codec, submission.hit.completion, 0.0, False, headers, with_cost)

    async def record_shared(result: Result) -> None:
        context.provider, context.provider_s = result.completion.provider, result.provider_s
        if submission.shared:
            await record_cache_hit(shard, tenant, chat, CachedAnswer(
                completion=result.completion, chunks=[], cost_usd=result.cost_usd), submission.attribution)

    owns_job = not (submission.shared or submission.replayed)
    if chat.stream:
        return stream_job(state, shard, submission.job_id, renderer, submission.headers, owns_job=owns_job,
                          on_done=record_shared)
    result = await stored_result(state, shard, submission.job_id) if submission.replayed else None
    result = result or await wait_for_result(state, shard, submission.job_id, owns_job=owns_job)
    await record_shared(result)
    cost = 0.0 if submission.shared else result.cost_usd
    headers = {**submission.headers, **served_headers(submission.job_id, result, cost)}
    return _json(codec, result.completion, cost, result.fallback_used, headers, with_cost)


async def stored_result(state: AppState, shard: ShardHandles, job_id: str) -> Result | None:
    """An ended job's outcome from its record (an idempotent repeat); None while it runs: wait for it then."""
    record = await shard.store.get(job_id)
    if record is None or not record.status.is_terminal:
        return None
    if record.status is JobStatus.SUCCEEDED and record.result is not None:
        return Result(completion=record.result, cost_usd=record.cost_usd or 0.0, fallback_used=record.fallback_used)
    if record.status is JobStatus.CANCELLED:
        raise JobCancelled("The job was cancelled")
    raise error_from_dict(record.error) if record.error else GatewayError("The job failed")


def served_headers(job_id: str, result: Result, cost_usd: float) -> dict[str, str]:
    return {
        "x-gateway-job-id": job_id,
        "x-gateway-provider": result.completion.provider,
        "x-gateway-model": result.completion.model,
        "x-gateway-fallback": "true" if result.fallback_used else "false",
        "x-gateway-cost-usd": f"{cost_usd:.9f}",
    }


def hit_headers(answer: CachedAnswer) -> dict[str, str]:
    return {
        "x-gateway-provider": answer.completion.provider, "x-gateway-model": answer.completion.model,
        "x-gateway-fallback": "false", "x-gateway-cost-usd": "0.000000000",
        "x-gateway-saved-cost-usd": f"{answer.cost_usd:.9f}",
    }


def _json(codec: WireCodec, completion: Completion, cost: float, fallback: bool, headers: dict[str, str],
          with_cost: bool) -> JSONResponse:
    body = codec.render_completion(completion)
    if with_cost:
        body["cost_usd"] = cost
        body["fallback_used"] = fallback
    return JSONResponse(body, headers=headers)
