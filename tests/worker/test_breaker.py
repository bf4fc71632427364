"""Circuit breaker state lives in Redis: what one worker records, every other worker sees."""

import asyncio

from tests.factories import make_fake_redis
from worker.breaker import CircuitBreaker


async def test_breaker_opens_after_threshold_failures_for_every_worker() -> None:
    redis = make_fake_redis()
    worker_a = CircuitBreaker(redis, failure_threshold=3, open_s=30)
    worker_b = CircuitBreaker(redis, failure_threshold=3, open_s=30)
    for _ in range(2):
        await worker_a.record_failure("t")
    assert await worker_b.allow("t") is True
    await worker_b.record_failure("t")
    assert await worker_a.allow("t") is False and await worker_b.state("t") == "open"


async def test_breaker_half_open_allows_one_probe_then_closes_on_success() -> None:
    redis = make_fake_redis()
    breaker = CircuitBreaker(redis, failure_threshold=1, open_s=0.05)
    await breaker.record_failure("t")
    await asyncio.sleep(0.06)
    assert await breaker.state("t") == "half_open"
    assert await breaker.allow("t") is True
    assert await breaker.allow("t") is False  # a second worker does not probe at the same time
    await breaker.record_success("t")
    assert await breaker.state("t") == "closed" and await breaker.allow("t") is True


async def test_breaker_failed_probe_reopens() -> None:
    breaker = CircuitBreaker(make_fake_redis(), failure_threshold=1, open_s=0.05)
    await breaker.record_failure("t")
    await asyncio.sleep(0.06)
    assert await breaker.allow("t") is True
    await breaker.record_failure("t")
    assert await breaker.state("t") == "open"


async def test_breaker_success_resets_failure_count() -> None:
    breaker = CircuitBreaker(make_fake_redis(), failure_threshold=2, open_s=30)
    await breaker.record_failure("t")
    await breaker.record_success("t")
    await breaker.record_failure("t")
    assert await breaker.state("t") == "closed"
