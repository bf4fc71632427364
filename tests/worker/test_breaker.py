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


class _CountingRedis:
    """The fake Redis with its HMGETs counted (the breaker's one read of the healthy path)."""

    def __init__(self) -> None:
        self.redis = make_fake_redis()
        self.reads = 0
        original = self.redis.hmget

        def hmget(*args: object, **kwargs: object) -> object:
            self.reads += 1
            return original(*args, **kwargs)  # type: ignore[arg-type]

        self.redis.hmget = hmget  # type: ignore[method-assign]


async def test_healthy_target_is_read_once_per_cache_period() -> None:
    counting = _CountingRedis()
    breaker = CircuitBreaker(counting.redis, failure_threshold=3, open_s=30, closed_cache_s=0.2)
    for _ in range(50):
        assert await breaker.allow("t") is True
    assert counting.reads == 1
    await asyncio.sleep(0.25)
    assert await breaker.allow("t") is True
    assert counting.reads == 2


async def test_breaker_opened_elsewhere_reaches_this_worker_within_the_cache_period() -> None:
    redis = make_fake_redis()
    worker_a = CircuitBreaker(redis, failure_threshold=1, open_s=30, closed_cache_s=0.2)
    worker_b = CircuitBreaker(redis, failure_threshold=1, open_s=30, closed_cache_s=0.2)
    assert await worker_a.allow("t") is True
    await worker_b.record_failure("t")
    assert await worker_b.allow("t") is False  # the worker that saw the failure: at once
    assert await worker_a.allow("t") is True  # the other one trusts its cache ...
    await asyncio.sleep(0.25)
    assert await worker_a.allow("t") is False  # ... for at most closed_cache_s


async def test_own_failure_drops_the_cached_closed_state_at_once() -> None:
    breaker = CircuitBreaker(make_fake_redis(), failure_threshold=2, open_s=30, closed_cache_s=60)
    assert await breaker.allow("t") is True
    await breaker.record_failure("t")
    await breaker.record_failure("t")
    assert await breaker.allow("t") is False


async def test_failure_counted_elsewhere_is_not_cached_as_closed() -> None:
    """A record with failures (not yet open) is read every time, so it opens here the moment it opens there,
    and this worker's success still resets the count."""
    counting = _CountingRedis()
    worker_a = CircuitBreaker(counting.redis, failure_threshold=2, open_s=30, closed_cache_s=60)
    worker_b = CircuitBreaker(counting.redis, failure_threshold=2, open_s=30, closed_cache_s=60)
    await worker_b.record_failure("t")
    assert await worker_a.allow("t") is True
    await worker_b.record_failure("t")
    assert await worker_a.allow("t") is False


async def test_read_started_before_a_local_failure_does_not_cache_closed() -> None:
    """An `allow` whose read was in flight when this process recorded the failure that opened the breaker
    must not cache the stale "no record" it read."""
    redis = make_fake_redis()
    breaker = CircuitBreaker(redis, failure_threshold=1, open_s=30, closed_cache_s=60)
    original = redis.hmget
    release = asyncio.Event()

    async def slow_hmget(*args: object, **kwargs: object) -> object:
        result = await original(*args, **kwargs)  # type: ignore[arg-type]
        await release.wait()
        return result

    redis.hmget = slow_hmget  # type: ignore[method-assign]
    pending = asyncio.create_task(breaker.allow("t"))
    await asyncio.sleep(0.01)
    redis.hmget = original  # type: ignore[method-assign]
    await breaker.record_failure("t")
    release.set()
    assert await pending is True  # it read before the failure
    assert await breaker.allow("t") is False
