"""Runs a request against a route's targets in order: bounded retries with exponential backoff and jitter
(honouring Retry-After up to a cap), fallback to the next target only on retryable errors, circuit breakers
shared through Redis. Knows the `Provider` protocol and `GatewayError.retryable`, never a wire format."""

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from shared.errors import AllTargetsFailed, GatewayError, StreamInterrupted, UpstreamError
from shared.models import ChatRequest, Completion, Delta
from shared.routing_table import Target
from worker.breaker import CircuitBreaker
from worker.providers.base import Provider

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    attempts_per_target: int
    base_delay_s: float
    max_delay_s: float

    def delay_s(self, attempt: int, error: GatewayError) -> float | None:
        """Seconds to wait before retrying the same target, or None to move on to the next one now."""
        if attempt + 1 >= self.attempts_per_target or not error.retry_same_target:
            return None
        retry_after = getattr(error, "retry_after_s", None)
        if retry_after is not None:
            return retry_after if retry_after <= self.max_delay_s else None
        backoff = min(self.max_delay_s, self.base_delay_s * 2**attempt)
        return backoff * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Served:
    """Which target answered, and whether it was not the first choice."""

    target: Target
    fallback_used: bool


class Router:
    def __init__(self, providers: dict[str, Provider], breaker: CircuitBreaker, policy: RetryPolicy) -> None:
        self._providers = providers
        self._breaker = breaker
        self._policy = policy

    async def complete(self, request: ChatRequest, targets: list[Target]) -> tuple[Completion, Served]:
        last_error: GatewayError | None = None
        for index, target in enumerate(targets):
            if not await self._breaker.allow(target.target_id):
                last_error = last_error or AllTargetsFailed(f"circuit open for {target.provider}:{target.model}")
                continue
            for attempt in range(self._policy.attempts_per_target):
                try:
                    completion = await self._providers[target.provider].complete(request, target)
                except UpstreamError as error:
                    last_error = error
                    if not await self._handle_failure(target, error, attempt):
                        break
                    continue
                await self._breaker.record_success(target.target_id)
                return completion, Served(target, fallback_used=index > 0)
        raise _exhausted(last_error)

    async def stream(self, request: ChatRequest, targets: list[Target]) -> AsyncIterator[tuple[Served, Delta]]:
        """Yield deltas from the first target that starts streaming. Once a delta has been yielded the
        client holds partial output, so a later failure raises StreamInterrupted instead of falling back."""
        last_error: GatewayError | None = None
        for index, target in enumerate(targets):
            if not await self._breaker.allow(target.target_id):
                last_error = last_error or AllTargetsFailed(f"circuit open for {target.provider}:{target.model}")
                continue
            served = Served(target, fallback_used=index > 0)
            for attempt in range(self._policy.attempts_per_target):
                started = False
                try:
                    # Closed with this generator: a consumer that stops early closes the upstream call at once.
                    async with aclosing(self._providers[target.provider].stream(request, target)) as deltas:
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
        raise _exhausted(last_error)

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


def _exhausted(last_error: GatewayError | None) -> GatewayError:
    if last_error is None:
        return AllTargetsFailed("no target is configured for this model")
    if isinstance(last_error, AllTargetsFailed):
        return last_error
    # Keep the status when every target said the same kind of thing (429: slow down; 504: timed out).
    status = last_error.status if last_error.status in (429, 504) else None
    return AllTargetsFailed(f"every target failed; last error: {last_error.message}", status=status)
