"""Admission of a request against its tenant's limits: estimates its tokens and worst-case cost (the most
output each target of its route can answer with, shared/reservation.py), runs the atomic Redis check, seeds a
budget period's spend from the usage records when Redis has no counter for it (shared/budget.py), and turns a
refusal into a 429 or 402 (api/budget_refusal.py says which max_tokens would fit). The rate-limit headers it
computes go on the response, whatever its status.
The same script sheds load: a job whose priority class finds the queue deeper than its bound
(QUEUE_MAX_DEPTH for batch, QUEUE_MAX_DEPTH_INTERACTIVE for interactive) gets 503 `queue_full`, with a
`Retry-After` from the measured drain rate."""

from collections.abc import Callable
from datetime import UTC, datetime

from redis.asyncio import Redis

from api.admission_hold import AdmissionHold
from api.budget_refusal import Reserved, budget_refusal
from api.deps import AppState
from api.shards import ShardHandles
from shared.api_keys import check_model_access
from shared.budget import seed_spend
from shared.config import Settings
from shared.endpoint_requests import JobRequest, estimate_input_tokens, most_output_tokens
from shared.errors import GatewayError, RateLimited, ServiceUnavailable
from shared.fair_queue import Priority
from shared.limits import Admission, AdmissionResult, Budget, KeyLimits, LimitRequest, admit
from shared.metrics import BUDGET_REJECTIONS, BUDGET_USED_RATIO, RATE_LIMIT_REJECTIONS
from shared.models import ChatRequest
from shared.pending_writes import PendingWrites
from shared.pricing import PriceTable
from shared.reservation import WorstCase, bounded_worst_case, worst_case
from shared.routing_table import Target
from shared.tenant_cache import TenantSnapshot

# A request without max_tokens is charged this many completion tokens against its tokens-per-minute limit
# until settlement charges what it really used; its budget reservation assumes the most it can answer.
UNSET_MAX_TOKENS_ESTIMATE = 256
MESSAGES = {
    "requests": "Rate limit reached: {limit} requests per minute",
    "tokens": "Rate limit reached: {limit} tokens per minute",
    "concurrency": "Too many requests in flight for this tenant",
    "tokens_too_large": "This request needs more tokens than the tenant's tokens-per-minute limit allows",
    "key_requests": "Rate limit of this API key reached: {limit} requests per minute",
    "key_tokens": "Rate limit of this API key reached: {limit} tokens per minute",
    "key_concurrency": "Too many requests in flight for this API key",
    "key_tokens_too_large": "This request needs more tokens than this API key's tokens-per-minute limit allows",
}
KEY_REASON_PREFIX = "key_"  # the admission script's reasons for a refusal by the key's own limits (issue 15)


async def admit_request(
    state: AppState, shard: ShardHandles, tenant: TenantSnapshot, request: JobRequest,
    targets: list[Target], job_id: str,
    *, full: bool, priority: Priority | None = None, hold: AdmissionHold | None = None,
    create: Callable[[Admission], PendingWrites] | None = None,
) -> tuple[Admission | None, dict[str, str]]:
    """Admit one request. `full=False` (cache hits and followers) counts the request only: no tokens, no
    concurrency slot, no budget, as no provider is called for it. With `priority`, the request will queue
    a job of that class, and is refused when the queue is too deep for it. `hold` is given what admission
    took the moment Redis grants it, so a failure of any later step gives it back. With `create`, the job's
    writes it returns run in the admission's own script when it admits (shared/lua/admit_create.lua): the
    admitted job then exists, and owns what admission took."""
    check_model_access(tenant, request.model)
    settings = state.settings
    rpm = tenant.rate_limit if tenant.rate_limit is not None else settings.default_rate_limit
    prompt = estimate_input_tokens(request)  # text, tools, images, documents, audio (shared/estimate.py)
    reserved = Reserved(request, prompt, targets, _worst_case(request, prompt, targets, state.prices))
    budget = Budget(tenant.budget_usd, tenant.budget_period) if full and tenant.budget_usd is not None else None
    if full:
        state.prices.check_priced([target.model for target in targets])
    limit_request = LimitRequest(
        tenant_id=tenant.id, job_id=job_id, rpm_limit=rpm, tpm_limit=(tenant.tpm_limit or 0) if full else 0,
        tokens=prompt + _output_estimate(request),
        concurrency_limit=(tenant.max_concurrent or 0) if full else 0,
        concurrency_expiry_s=settings.request_timeout_s + settings.worker_job_timeout_s, budget=budget,
        reserve_usd=reserved.worst.cost_usd if full else 0.0, hold_expiry_s=settings.job_ttl_s,
        queue_keys=(shard.queue.fair.ready[Priority.INTERACTIVE], shard.queue.fair.ready[Priority.BATCH])
        if full and priority is not None else None,
        queue_limit=queue_limit(settings, priority) if full and priority is not None else 0,
        key=key_limits(tenant, full=full),
    )
    now = datetime.now(UTC)
    result = await _admit_seeded(state, shard.redis, limit_request, now, create)
    if hold is not None and full and result.allowed:
        hold.take(result.admission)
    if budget is not None and result.budget_used_usd is not None and budget.limit_usd > 0 \
            and not result.reason.startswith(KEY_REASON_PREFIX):
        BUDGET_USED_RATIO.labels(tenant.id).set(result.budget_used_usd / budget.limit_usd)
    headers = ratelimit_headers(result, rpm, tenant.tpm_limit if full else None)
    if not result.allowed and result.reason == "queue_full" and priority is not None:
        raise await _queue_full(shard, tenant, priority, limit_request.queue_limit, headers)
    if not result.allowed:
        raise _refusal(state, result, rpm, tenant, now, headers, reserved)
    return (result.admission if full else None), headers


def key_limits(tenant: TenantSnapshot, *, full: bool) -> KeyLimits | None:
    """The authenticating key's own limits, when it has any (issue 15). As for the tenant, a request that calls
    no provider (`full=False`) counts as a request only."""
    scope = tenant.key
    if tenant.key_id is None or not scope.limited:
        return None
    budget = Budget(scope.budget_usd, scope.budget_period) if full and scope.budget_usd is not None else None
    return KeyLimits(key_id=tenant.key_id, rpm_limit=scope.rate_limit or 0,
                     tpm_limit=(scope.tpm_limit or 0) if full else 0,
                     concurrency_limit=(scope.max_concurrent or 0) if full else 0, budget=budget)


async def _admit_seeded(state: AppState, redis: Redis, request: LimitRequest, now: datetime,
                        create: Callable[[Admission], PendingWrites] | None) -> AdmissionResult:
    """Admission, seeding the tenant's and then the key's spend counter of the period first when missing, each
    from its own usage records (the key's carry its id)."""
    result = await admit(redis, request, now, create)
    for _ in range(2):
        if result.budget_unseeded and request.budget is not None:
            await seed_spend(redis, state.sessions, request.tenant_id, request.budget.period, now)
        elif result.key_budget_unseeded and request.key is not None and request.key.budget is not None:
            await seed_spend(redis, state.sessions, request.tenant_id, request.key.budget.period, now,
                             key_id=request.key.key_id)
        else:
            return result
        result = await admit(redis, request, now, create)
    return result


def _worst_case(request: JobRequest, prompt: int,
                targets: list[Target], prices: PriceTable) -> WorstCase:
    if isinstance(request, ChatRequest):
        return worst_case(request, prompt, targets, prices)
    return bounded_worst_case(prompt, most_output_tokens(request), targets, prices)


def _output_estimate(request: JobRequest) -> int:
    """The output tokens charged against the tokens-per-minute limit until settlement: a non-chat request's
    own bound (0 for embeddings)."""
    if isinstance(request, ChatRequest):
        return request.max_tokens or UNSET_MAX_TOKENS_ESTIMATE
    return most_output_tokens(request)


def queue_limit(settings: Settings, priority: Priority) -> int:
    """The depth of waiting jobs at which a new job of `priority` is refused (0: never)."""
    if priority is Priority.BATCH:
        return settings.queue_max_depth
    if settings.queue_max_depth_interactive is not None:
        return settings.queue_max_depth_interactive
    return 2 * settings.queue_max_depth


async def _queue_full(shard: ShardHandles, tenant: TenantSnapshot, priority: Priority, limit: int,
                      headers: dict[str, str]) -> ServiceUnavailable:
    """The 503 for a full queue; only refusals pay the extra round trip that reads the drain rate."""
    RATE_LIMIT_REJECTIONS.labels(tenant.id, "queue_full").inc()
    wait_s, rate = await shard.queue.fair.retry_after_s(shard.redis, limit)
    drained = f"draining {rate:.1f} jobs/s" if rate > 0 else "not draining"
    error = ServiceUnavailable(f"The job queue is full for {priority.value} jobs ({drained}); retry in {wait_s} s",
                               code="queue_full")
    error.retry_after_s = float(wait_s)
    error.headers = headers
    return error


def ratelimit_headers(result: AdmissionResult, rpm: int, tpm: int | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if rpm > 0:
        headers.update({"x-ratelimit-limit-requests": str(rpm),
                        "x-ratelimit-remaining-requests": str(result.rpm_remaining),
                        "x-ratelimit-reset-requests": f"{result.rpm_reset_s:.3f}s"})
    if tpm:
        headers.update({"x-ratelimit-limit-tokens": str(tpm),
                        "x-ratelimit-remaining-tokens": str(result.tpm_remaining),
                        "x-ratelimit-reset-tokens": f"{result.tpm_reset_s:.3f}s"})
    return headers


def _refusal(state: AppState, result: AdmissionResult, rpm: int, tenant: TenantSnapshot, now: datetime,
             headers: dict[str, str], reserved: Reserved) -> GatewayError:
    reason = result.reason.removeprefix(KEY_REASON_PREFIX)
    by_key = reason != result.reason
    if reason == "budget":
        BUDGET_REJECTIONS.labels(tenant.id).inc()
        owner = tenant.model_copy(update={"budget_usd": tenant.key.budget_usd,
                                          "budget_period": tenant.key.budget_period}) if by_key else tenant
        error: GatewayError = budget_refusal(owner, reserved, state.prices, result.budget_used_micros, now,
                                             whose="API key's" if by_key else "tenant's")
    else:
        RATE_LIMIT_REJECTIONS.labels(tenant.id, result.reason).inc()
        limits = {"requests": tenant.key.rate_limit, "tokens": tenant.key.tpm_limit} if by_key else {
            "requests": rpm, "tokens": tenant.tpm_limit}
        message = MESSAGES.get(result.reason, "Rate limit reached").format(limit=limits.get(reason))
        retry_after = result.retry_after_s if reason != "tokens_too_large" else None
        error = RateLimited(message, retry_after_s=retry_after, code=f"{reason}_limit_exceeded")
    error.headers = headers
    return error
