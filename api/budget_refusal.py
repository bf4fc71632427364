"""The 402 for a request whose worst case does not fit what is left of its tenant's budget. It says what is
left, what the request could cost and why, and which `max_tokens` would fit: the client decides, the gateway
never caps an answer to make a request fit."""

from dataclasses import dataclass
from datetime import datetime

from shared.endpoint_requests import (
    DEFAULT_COMPLETION_MAX_TOKENS,
    CountTokensRequest,
    EmbeddingRequest,
    JobRequest,
    TextCompletionRequest,
    generated_choices,
)
from shared.errors import BudgetExceeded
from shared.limits import Budget, budget_period
from shared.models import ChatRequest
from shared.pricing import PriceTable
from shared.reservation import WorstCase, cache_write_ttl, fitting_max_tokens
from shared.routing_table import Target
from shared.tenant_cache import TenantSnapshot


@dataclass(frozen=True)
class Reserved:
    """What admission reserved for a request, kept to explain a refusal."""

    request: JobRequest
    prompt_tokens: int
    targets: list[Target]
    worst: WorstCase


def budget_refusal(tenant: TenantSnapshot, reserved: Reserved, prices: PriceTable, used_micros: int | None,
                   now: datetime, whose: str = "tenant's") -> BudgetExceeded:
    """`used_micros`: spent in the period plus held by requests in flight, when the refusal happened. `whose`
    budget it is: the tenant's, or its API key's (issue 15; `tenant` then carries the key's budget)."""
    budget = Budget(tenant.budget_usd or 0.0, tenant.budget_period)
    _, reset_at = budget_period(budget.period, now)
    when = reset_at.strftime("%Y-%m-%dT%H:%M:%SZ") if reset_at else None
    available = max(0, budget.limit_micros - (used_micros or 0))
    request = reserved.request
    cache_write = cache_write_ttl(request) if isinstance(request, ChatRequest) else None
    fits = fitting_max_tokens(reserved.prompt_tokens, reserved.targets, prices, available, cache_write)
    # An embedding has no output to limit: its message says how much is left even when no output fits.
    if fits < 1 and (available <= 0 or not isinstance(request, EmbeddingRequest)):
        resets = f"; it resets at {when}" if when else "; it does not reset (period 'none')"
        return BudgetExceeded(
            f"Budget of ${budget.limit_usd:.2f} for this {budget.period} period is exhausted{resets}"
            + ("" if whose == "tenant's" else " (this API key's own budget; the tenant's other keys may still work)"),
            reset_at=when)
    resets = f"it resets at {when}" if when else "it does not reset (period 'none')"
    rest = " (the rest is spent, or held by requests in flight)" if available < budget.limit_micros else ""
    message = (f"{_worst_case_text(reserved)}, more than the ${available / 1_000_000:.6f} left of this {whose} "
               f"${budget.limit_usd:.2f} {budget.period} budget{rest}; {_fitting_text(request, fits)}, or wait: "
               f"{resets}")
    return BudgetExceeded(message, reset_at=when)


def _fitting_text(request: JobRequest, fits: int) -> str:
    """What the client can change to fit: `fits` output tokens in all fit beside the prompt. A completion's
    `max_tokens` is per choice, and an embedding has no output to limit."""
    if isinstance(request, EmbeddingRequest | CountTokensRequest):  # a count is never budgeted: for the types
        return "send fewer or shorter inputs to fit"
    if isinstance(request, ChatRequest):
        return f"send max_tokens <= {fits} to fit"
    choices = generated_choices(request)
    if fits // choices < 1:
        return f"ask for fewer than its {choices} choices (max(n, best_of) per prompt) to fit"
    if choices == 1:
        return f"send max_tokens <= {fits} to fit"
    return f"send max_tokens <= {fits // choices} (per choice: it generates {choices}) to fit"


def _worst_case_text(reserved: Reserved) -> str:
    worst = reserved.worst
    model = worst.target.model
    if worst.cost_usd is None:
        return (f"The maximum output of model '{model}' is unknown to this gateway, so a request without "
                f"max_tokens could cost any amount")
    request = reserved.request
    if isinstance(request, EmbeddingRequest | CountTokensRequest):  # no output to bill
        return f"This request could cost up to ${worst.cost_usd:.6f} (its input on '{model}')"
    if isinstance(request, TextCompletionRequest):
        limit = ("max_tokens" if request.max_tokens is not None
                 else f"OpenAI's default max_tokens of {DEFAULT_COMPLETION_MAX_TOKENS}")
        return (f"This request could cost up to ${worst.cost_usd:.6f} (its prompt and {worst.output_tokens} output "
                f"tokens of '{model}': {limit} for each of the {generated_choices(request)} choices it generates)")
    why = "the model's maximum output" if request.max_tokens is None else "max_tokens"
    return (f"This request could cost up to ${worst.cost_usd:.6f} (its prompt and {worst.output_tokens} output "
            f"tokens of '{model}', {why})")
