"""The most a request can cost, which admission reserves of its tenant's budget: for each target of its route,
the prompt plus the most output that target can answer with, at the target's prices; the route's worst case
is its priciest target, since fallback may reach any of them. The API reserves it and, when it does not fit,
says which `max_tokens` would; the worker holds a budgeted stream to the same output ceiling.

The output ceiling is the request's `max_tokens`. Without one: an Anthropic target is sent the wire's
default limit (Anthropic requires one), plus the thinking budget an OpenAI client's `reasoning_effort`
becomes; an OpenAI target is sent none and may answer up to the model's `max_output_tokens` from the price
table, or without a known bound when the table does not give it."""

import math
from dataclasses import dataclass

from shared.models import ChatRequest
from shared.pricing import PriceTable
from shared.routing_table import Target
from shared.wire.anthropic import sent_max_tokens

__all__ = ["WorstCase", "bounded_worst_case", "cache_write_ttl", "fitting_max_tokens", "output_ceiling",
           "unsent_ceiling", "worst_case"]

PER_MILLION = 1_000_000


@dataclass(frozen=True)
class WorstCase:
    """The route's costliest target for a request: `cost_usd` None is no known bound (an OpenAI target
    with a priced output, no `max_tokens` and no `max_output_tokens`); `output_tokens` is its ceiling."""

    target: Target
    output_tokens: int | None
    cost_usd: float | None


def output_ceiling(request: ChatRequest, target: Target, prices: PriceTable) -> int | None:
    """The most output tokens `target` can answer `request` with; None when nothing known bounds it."""
    if request.max_tokens is not None:
        return request.max_tokens
    model_max = prices.max_output_tokens(target.model)
    if target.provider == "anthropic":  # always sent a limit: the default, plus a translated thinking budget
        sent = sent_max_tokens(request)
        return min(sent, model_max or sent)
    return model_max


def unsent_ceiling(request: ChatRequest, target: Target, prices: PriceTable) -> int | None:
    """The output ceiling the provider is not told (an OpenAI target without `max_tokens`: the model's
    maximum from the price table), which only the gateway can hold a budgeted answer to; None otherwise."""
    if request.max_tokens is not None or target.provider == "anthropic":
        return None
    return prices.max_output_tokens(target.model)


def cache_write_ttl(request: ChatRequest) -> str | None:
    """The longest prompt-cache lifetime the request's `cache_control` markers ask for ("1h" or "5m"), None
    without markers: a marked prompt may be written to the cache, which costs more than reading it."""
    markers = [part.cache_control for part in request.system if part.cache_control]
    markers += [tool.cache_control for tool in request.tools if tool.cache_control]
    for message in request.messages:
        markers += [cc for part in message.content if (cc := getattr(part, "cache_control", None))]
    if not markers:
        return None
    return "1h" if any(marker.get("ttl") == "1h" for marker in markers) else "5m"


def worst_case(request: ChatRequest, prompt_tokens: int, targets: list[Target], prices: PriceTable) -> WorstCase:
    """The costliest target of the route for `request` (an unbounded one first of all)."""
    cases = [_target_case(request, prompt_tokens, target, prices) for target in targets]
    unbounded = [case for case in cases if case.cost_usd is None]
    if unbounded:
        return unbounded[0]
    return max(cases, key=lambda case: case.cost_usd or 0.0)


def bounded_worst_case(prompt_tokens: int, output_tokens: int, targets: list[Target],
                       prices: PriceTable) -> WorstCase:
    """The costliest target for a request whose output is bounded by the request itself (embeddings: none; a
    legacy completion: its `max_tokens` per choice), with no prompt-cache writes."""
    cases = [WorstCase(target, output_tokens,
                       prices.worst_case_cost_usd(target.model, prompt_tokens, output_tokens, None))
             for target in targets]
    return max(cases, key=lambda case: case.cost_usd or 0.0)


def fitting_max_tokens(prompt_tokens: int, targets: list[Target], prices: PriceTable, available_micros: int,
                       cache_write: str | None = None) -> int:
    """The largest `max_tokens` whose worst case, on every target, fits `available_micros` as admission
    reserves it (rounded up to whole micro-dollars); 0 when not even the prompt fits."""
    fitting: int | None = None
    for target in targets:
        price = prices.price_for(target.model)
        if price is None or price.output == 0:
            continue
        prompt_micros = _reserve_micros(prices, target, prompt_tokens, 0, cache_write)
        tokens = max(0, math.floor((available_micros - prompt_micros) / price.output))
        while tokens > 0 and _reserve_micros(prices, target, prompt_tokens, tokens, cache_write) > available_micros:
            tokens -= 1
        fitting = tokens if fitting is None else min(fitting, tokens)
    if fitting is None:  # no target charges for output: only the prompt can stand in the way
        prompt_fits = all(_reserve_micros(prices, t, prompt_tokens, 0, cache_write) <= available_micros
                          for t in targets)
        return 2**31 - 1 if prompt_fits else 0
    return fitting


def _target_case(request: ChatRequest, prompt_tokens: int, target: Target, prices: PriceTable) -> WorstCase:
    ceiling = output_ceiling(request, target, prices)
    price = prices.price_for(target.model)
    if ceiling is None and price is not None and price.output > 0:
        return WorstCase(target, None, None)
    cost = prices.worst_case_cost_usd(target.model, prompt_tokens, ceiling or 0,
                                      _writes(target, cache_write_ttl(request)))
    return WorstCase(target, ceiling, cost)


def _reserve_micros(prices: PriceTable, target: Target, prompt_tokens: int, output_tokens: int,
                    cache_write: str | None = None) -> int:
    cost = prices.worst_case_cost_usd(target.model, prompt_tokens, output_tokens, _writes(target, cache_write))
    return math.ceil(cost * PER_MILLION)


def _writes(target: Target, cache_write: str | None) -> str | None:
    """Only Anthropic bills cache writes: OpenAI caches by itself, at no extra price, and ignores markers."""
    return cache_write if target.provider == "anthropic" else None
