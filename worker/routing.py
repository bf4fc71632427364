"""Runs a request against a route's targets in order: bounded retries with exponential backoff and jitter
(honouring Retry-After up to a cap), fallback to the next target only on retryable errors, circuit breakers
shared through Redis. Knows the `Provider` protocol and `GatewayError.retryable`, never an SDK or a wire
module.

Never a silent drop: a target that cannot honour a parameter of the request (shared/wire/capabilities.py)
is skipped unless dropping it is allowed (the route's `drop_params` and the client's
`x-gateway-drop-params`, passed in as `allow_drop`); when it is, the target is called with the parameters to
leave out and the answer names them (`Completion.dropped_params`, `Served.dropped_params`)."""

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TypeVar

from shared.errors import AllTargetsFailed, GatewayError, StreamInterrupted, UnsupportedParameter, UpstreamError
from shared.metrics import TARGETS_SKIPPED
from shared.models import ChatRequest, Completion, Delta
from shared.routing_table import Target
from shared.wire.capabilities import Plan, param_label, plan_target
from worker.breaker import CircuitBreaker
from worker.providers.base import Provider

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts_per_target: int
    base_delay_s: float
    max_delay_s: float

    def delay_s(self, attempt: int, error: GatewayError) -> float | None:
        """Seconds to wait before retrying the same target, or None to move on to the next one now."""
        if attempt + 1 >= self.attempts_per_target or not error.retry_same_target:
            return None
        if error.retry_after_s is not None:
            return error.retry_after_s if error.retry_after_s <= self.max_delay_s else None
        backoff = min(self.max_delay_s, self.base_delay_s * 2.0**attempt)
        return backoff * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Served:
    """Which target answered, whether it was not the first choice, and the request parameters it left out
    (allowed to be dropped, sorted)."""

    target: Target
    fallback_used: bool
    dropped_params: tuple[str, ...] = ()


class Router:
    def __init__(self, providers: dict[str, Provider], breaker: CircuitBreaker, policy: RetryPolicy) -> None:
        self._providers = providers
        self._breaker = breaker
        self._policy = policy

    async def complete(self, request: ChatRequest, targets: list[Target], *,
                       allow_drop: frozenset[str] = frozenset()) -> tuple[Completion, Served]:
        """`allow_drop`: the parameter names a target may leave out when it cannot honour them (`*`: any)."""
        completion, served = await self._serve(
            targets, lambda target: plan_target(request, target, allow_drop),
            lambda provider, target, plan: provider.complete(request, target, drop=plan.drop))
        if served.dropped_params:
            completion = completion.model_copy(update={"dropped_params": list(served.dropped_params)})
        return completion, served

    async def stream(self, request: ChatRequest, targets: list[Target], *,
                     allow_drop: frozenset[str] = frozenset()) -> AsyncGenerator[tuple[Served, Delta], None]:
        """Yield deltas from the first target that starts streaming. Once a delta has been yielded the
        client holds partial output, so a later failure raises StreamInterrupted instead of falling back.
        `Served.dropped_params` names what the serving target left out."""
        last_error: GatewayError | None = None
        refusals = _Refusals()
        for index, target in enumerate(targets):
            plan = refusals.check(request, target, allow_drop)
            if plan is None:
                continue
            if not await self._breaker.allow(target.target_id):
                last_error = last_error or AllTargetsFailed(f"circuit open for {target.provider}:{target.model}")
                continue
            served = Served(target, fallback_used=index > 0, dropped_params=tuple(sorted(plan.drop)))
            provider = self._providers[target.provider]
            for attempt in range(self._policy.attempts_per_target):
                started = False
                try:
                    # Closed with this generator: a consumer that stops early closes the upstream call at once
                    # (the Provider protocol's `stream` is an async generator, whose aclose() ends the call).
                    stream = provider.stream(request, target, drop=plan.drop)
                    async with aclosing(stream) as deltas:
                        async for delta in deltas:
                            started = True
                            yield served, delta
                except UpstreamError as error:
                    if started:
                        await self._breaker.record_failure(target.target_id)
                        raise StreamInterrupted(f"stream from {target.provider} failed: {error.message}") from error
                    last_error = error
                    if not await self._handle_failure(target, error, attempt):
                        break
                    continue
                await self._breaker.record_success(target.target_id)
                return
        raise refusals.error(last_error, len(targets))

    async def call(self, targets: list[Target], invoke: Callable[[Provider, Target], Awaitable[T]], *,
                   refuse: Callable[[Target], tuple[str, str] | None]) -> tuple[T, Served]:
        """Any other provider call (embeddings, legacy completions), with the retries, breakers and fallback of
        `complete`: `invoke` makes the call on one target; `refuse` says why a target cannot serve it at all
        ((parameter, reason): skipped and counted, as a target that cannot honour a parameter is), or None."""
        return await self._serve(targets, lambda target: Plan(drop=frozenset(), refused=refuse(target)),
                                 lambda provider, target, _: invoke(provider, target))

    async def _serve(self, targets: list[Target], plan_for: Callable[[Target], Plan],
                     invoke: Callable[[Provider, Target, Plan], Awaitable[T]]) -> tuple[T, Served]:
        """The one answer of the first target that gives it: `complete`'s and `call`'s loop. A target `plan_for`
        refuses is skipped; one that may serve is called with its plan (what to leave out)."""
        last_error: GatewayError | None = None
        refusals = _Refusals()
        for index, target in enumerate(targets):
            plan = plan_for(target)
            if not refusals.note(target, plan.refused):
                continue
            if not await self._breaker.allow(target.target_id):
                last_error = last_error or AllTargetsFailed(f"circuit open for {target.provider}:{target.model}")
                continue
            for attempt in range(self._policy.attempts_per_target):
                try:
                    result = await invoke(self._providers[target.provider], target, plan)
                except UpstreamError as error:
                    last_error = error
                    if not await self._handle_failure(target, error, attempt):
                        break
                    continue
                await self._breaker.record_success(target.target_id)
                dropped = tuple(sorted(plan.drop))
                return result, Served(target, fallback_used=index > 0, dropped_params=dropped)
        raise refusals.error(last_error, len(targets))

    async def _handle_failure(self, target: Target, error: UpstreamError, attempt: int) -> bool:
        """Record the failure; re-raise client errors; sleep and return True to retry the same target."""
        if not error.retryable:
            raise error
        if error.retry_same_target:  # a missing key says nothing about the provider's health
            await self._breaker.record_failure(target.target_id)
        delay = self._policy.delay_s(attempt, error)
        logger.warning("upstream %s:%s failed (%s), attempt %d, retry in %s",
                       target.provider, target.model, error.code, attempt + 1, delay)
        if delay is None:
            return False
        await asyncio.sleep(delay)
        return True


class _Refusals:
    """The targets skipped because they cannot honour the request: logged and counted as they are skipped,
    and the request's error when every target was."""

    def __init__(self) -> None:
        self.first: tuple[str, str] | None = None
        self.skipped = 0

    def check(self, request: ChatRequest, target: Target, allow_drop: frozenset[str]) -> Plan | None:
        plan = plan_target(request, target, allow_drop)
        return plan if self.note(target, plan.refused) else None

    def note(self, target: Target, refused: tuple[str, str] | None) -> bool:
        """True when `target` may be tried; else it is logged and counted as skipped for `refused`."""
        if refused is None:
            return True
        param, why = refused
        self.first = self.first or refused
        self.skipped += 1
        TARGETS_SKIPPED.labels(target.provider, param_label(param)).inc()
        logger.info("target %s:%s skipped: it cannot honour '%s' (%s) and dropping it is not allowed",
                    target.provider, target.model, param, why)
        return False

    def error(self, last_error: GatewayError | None, targets: int) -> GatewayError:
        """UnsupportedParameter when no target could be tried for that reason alone; else as usual."""
        if self.first is None:
            return _exhausted(last_error)
        if self.skipped == targets:
            return UnsupportedParameter(*self.first)
        error = _exhausted(last_error)  # the others failed: say why the skipped ones were not tried
        param, why = self.first
        return AllTargetsFailed(f"{error.message}; {self.skipped} target(s) skipped: cannot honour '{param}' "
                                f"({why})", status=error.status)


def _exhausted(last_error: GatewayError | None) -> GatewayError:
    if last_error is None:
        return AllTargetsFailed("no target is configured for this model")
    if isinstance(last_error, AllTargetsFailed):
        return last_error
    # Keep the status when every target said the same kind of thing (429: slow down; 504: timed out).
    status = last_error.status if last_error.status in (429, 504) else None
    return AllTargetsFailed(f"every target failed; last error: {last_error.message}", status=status)
