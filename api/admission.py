"""Admission of a request against its tenant's limits: estimates its tokens and worst-case cost, runs the
atomic Redis check, seeds a budget period from the database when Redis has no counters for it, and turns
a refusal into a 429 or 402. The rate-limit headers it computes go on the response, whatever its status.
The same script sheds load: a job whose priority class finds the queue deeper than its bound
(QUEUE_MAX_DEPTH for batch, QUEUE_MAX_DEPTH_INTERACTIVE for interactive) gets 503 `queue_full`, with a
`Retry-After` from the measured drain rate."""

import math
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlmodel import col

from api.deps import AppState
from shared.config import Settings
from shared.db.tables import UsageRecord
from shared.errors import BudgetExceeded, RateLimited, ServiceUnavailable
from shared.fair_queue import Priority
from shared.limits import Admission, AdmissionResult, Budget, LimitRequest, admit, budget_period, period_start
from shared.limits import seed_budget as seed_budget_counters
from shared.metrics import BUDGET_REJECTIONS, BUDGET_USED_RATIO, RATE_LIMIT_REJECTIONS
from shared.models import ChatRequest
from shared.routing_table import Target
from shared.tenant_cache import TenantSnapshot

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
# A request without max_tokens is charged this many completion tokens against its tokens-per-minute limit
# until settlement charges what it really used; its budget reservation still assumes DEFAULT_MAX_TOKENS.
UNSET_MAX_TOKENS_ESTIMATE = 256
MESSAGES = {
    "requests": "Rate limit reached: {limit} requests per minute",
    "tokens": "Rate limit reached: {limit} tokens per minute",
    "concurrency": "Too many requests in flight for this tenant",
    "tokens_too_large": "This request needs more tokens than the tenant's tokens-per-minute limit allows",
}


def estimate_prompt_tokens(request: ChatRequest) -> int:
    """A cheap upper-leaning estimate (about 4 characters a token); settlement corrects it to the truth."""
    chars = sum(len(message.content) for message in request.messages) + len(request.system or "")
    return math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(request.messages)


async def admit_request(
    state: AppState, tenant: TenantSnapshot, request: ChatRequest, targets: list[Target], job_id: str,
    *, full: bool, priority: Priority | None = None,
) -> tuple[Admission | None, dict[str, str]]:
    """Admit one request. `full=False` (cache hits and followers) counts the request only: no tokens, no
    concurrency slot, no budget, as no provider is called for it. With `priority`, the request will queue
    a job of that class, and is refused when the queue is too deep for it."""
    settings = state.settings
    rpm = tenant.rate_limit if tenant.rate_limit is not None else settings.default_rate_limit
    prompt = estimate_prompt_tokens(request)
    max_tokens = request.max_tokens or settings.default_max_tokens
    budget = Budget(tenant.budget_usd, tenant.budget_period) if full and tenant.budget_usd is not None else None
    if full:
        state.prices.check_priced([target.model for target in targets])
    limit_request = LimitRequest(
        tenant_id=tenant.id, job_id=job_id, rpm_limit=rpm, tpm_limit=(tenant.tpm_limit or 0) if full else 0,
        tokens=prompt + (request.max_tokens or UNSET_MAX_TOKENS_ESTIMATE),
        concurrency_limit=(tenant.max_concurrent or 0) if full else 0,
        concurrency_expiry_s=settings.request_timeout_s + settings.worker_job_timeout_s, budget=budget,
        reserve_usd=max(state.prices.worst_case_cost_usd(t.model, prompt, max_tokens) for t in targets),
        queue_keys=(state.queue.fair.ready[Priority.INTERACTIVE], state.queue.fair.ready[Priority.BATCH])
        if full and priority is not None else None,
        queue_limit=queue_limit(settings, priority) if full and priority is not None else 0,
    )
    now = datetime.now(UTC)
    result = await admit(state.redis, limit_request, now)
    if result.budget_unseeded and budget is not None:
        await _seed_budget(state, tenant.id, budget.period, now)
        result = await admit(state.redis, limit_request, now)
    if budget is not None and result.budget_used_usd is not None and budget.limit_usd > 0:
        BUDGET_USED_RATIO.labels(tenant.id).set(result.budget_used_usd / budget.limit_usd)
    headers = ratelimit_headers(result, rpm, tenant.tpm_limit if full else None)
    if not result.allowed and result.reason == "queue_full" and priority is not None:
        raise await _queue_full(state, tenant, priority, limit_request.queue_limit, headers)
    if not result.allowed:
        raise _refusal(result, rpm, tenant, now, headers)
    return (result.admission if full else None), headers


def queue_limit(settings: Settings, priority: Priority) -> int:
    """The depth of waiting jobs at which a new job of `priority` is refused (0: never)."""
    if priority is Priority.BATCH:
        return settings.queue_max_depth
    if settings.queue_max_depth_interactive is not None:
        return settings.queue_max_depth_interactive
    return 2 * settings.queue_max_depth


async def _queue_full(state: AppState, tenant: TenantSnapshot, priority: Priority, limit: int,
                      headers: dict[str, str]) -> ServiceUnavailable:
    """The 503 for a full queue; only refusals pay the extra round trip that reads the drain rate."""
    RATE_LIMIT_REJECTIONS.labels(tenant.id, "queue_full").inc()
    wait_s, rate = await state.queue.fair.retry_after_s(state.redis, limit)
    drained = f"draining {rate:.1f} jobs/s" if rate > 0 else "not draining"
    error = ServiceUnavailable(f"The job queue is full for {priority.value} jobs ({drained}); retry in {wait_s} s",
                               code="queue_full")
    error.retry_after_s = float(wait_s)
    error.headers = headers  # type: ignore[attr-defined]
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


def _refusal(result: AdmissionResult, rpm: int, tenant: TenantSnapshot, now: datetime,
             headers: dict[str, str]) -> Exception:
    if result.reason == "budget":
        BUDGET_REJECTIONS.labels(tenant.id).inc()
        _, reset_at = budget_period(tenant.budget_period, now)
        when = reset_at.strftime("%Y-%m-%dT%H:%M:%SZ") if reset_at else None
        resets = f"; it resets at {when}" if when else "; it does not reset (period 'none')"
        error: Exception = BudgetExceeded(
            f"Budget of ${tenant.budget_usd:.2f} for this {tenant.budget_period} period is exhausted{resets}",
            reset_at=when,
        )
    else:
        RATE_LIMIT_REJECTIONS.labels(tenant.id, result.reason).inc()
        limit = rpm if result.reason == "requests" else tenant.tpm_limit
        message = MESSAGES.get(result.reason, "Rate limit reached").format(limit=limit)
        retry_after = result.retry_after_s if result.reason != "tokens_too_large" else None
        error = RateLimited(message, retry_after_s=retry_after, code=f"{result.reason}_limit_exceeded")
    error.headers = headers  # type: ignore[attr-defined]
    return error


async def _seed_budget(state: AppState, tenant_id: str, period: str, now: datetime) -> None:
    """Counters for a new period (or after Redis lost them) start from what the database recorded."""
    start = period_start(period, now)
    statement = select(func.coalesce(func.sum(col(UsageRecord.cost_usd)), 0.0)).where(
        col(UsageRecord.tenant_id) == tenant_id
    )
    if start is not None:
        statement = statement.where(col(UsageRecord.created_at) >= start)
    async with state.sessions() as session:
        spent = float(await session.scalar(statement) or 0.0)
    await seed_budget_counters(state.redis, tenant_id, period, now, spent)
