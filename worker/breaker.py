"""Circuit breaker per provider target, with its state in Redis so every worker replica sees the same
state. Closed: failures are counted in a rolling window. Open: the target is skipped until `open_s` has
passed. Half-open: exactly one worker may probe; success closes, failure re-opens.

Each process remembers for `closed_cache_s` (1 s by default) that a target had no breaker record at all, so
the all-healthy path (every request's `allow`) reads Redis about once a second per target instead of once per
request (an HMGET was one of the Redis commands of every request). What that costs: a breaker opened by
*another* worker reaches this one at most `closed_cache_s` later (its own failures reach it at once: they drop
the entry), and within that time a success here does not reset another worker's failure count. Open and
half-open states are never cached, so a probe, a re-open and the end of an open period are exact."""

import time
from collections.abc import Awaitable, Callable
from typing import cast

from redis.asyncio import Redis

from shared.keys import breaker_key
from shared.metrics import BREAKER_STATE, OTHER

FAILURE_WINDOW_S = 60
CLOSED, HALF_OPEN, OPEN = 0, 1, 2
PROBE_LOCK_MS = 10_000
CLOSED_CACHE_S = 1.0
"""How long a process trusts that a target with no breaker record is still closed (see the module docstring)."""


class CircuitBreaker:
    def __init__(self, redis: Redis, *, failure_threshold: int, open_s: float,
                 target_label: Callable[[str], str] = lambda _: OTHER, closed_cache_s: float = CLOSED_CACHE_S) -> None:
        """`target_label` maps a target id to its label value (`MetricLabels.target`): the routes' targets, or
        `other` for the targets of a model a client made up under a default route."""
        self._redis = redis
        self._threshold = failure_threshold
        self._open_s = open_s
        self._label = target_label
        # Targets this process has seen with breaker state in Redis. A success elsewhere resets nothing
        # worth a round trip: only these need the reset, so the common all-healthy path costs one read.
        self._maybe_dirty: set[str] = set()
        self._closed_cache_s = closed_cache_s
        # Target id -> the monotonic time until which it counts as closed without a read (no record seen).
        self._closed_until: dict[str, float] = {}
        # Bumped by every local failure: a read that started before one must not cache "closed" after it.
        self._failures_seen = 0

    async def allow(self, target_id: str) -> bool:
        if self._closed_until.get(target_id, 0.0) > time.monotonic():
            return True
        opened_until = await self._opened_until(target_id)
        if opened_until is None:
            return True
        if time.time() < opened_until:
            BREAKER_STATE.labels(self._label(target_id)).set(OPEN)
            return False
        BREAKER_STATE.labels(self._label(target_id)).set(HALF_OPEN)
        # Half-open: only the worker that wins the probe lock may try the target.
        acquired = await self._redis.set(f"{breaker_key(target_id)}:probe", "1", nx=True, px=PROBE_LOCK_MS)
        return bool(acquired)

    async def record_success(self, target_id: str) -> None:
        if target_id in self._maybe_dirty:
            await self._redis.delete(breaker_key(target_id), f"{breaker_key(target_id)}:probe")
            self._maybe_dirty.discard(target_id)
        BREAKER_STATE.labels(self._label(target_id)).set(CLOSED)

    async def record_failure(self, target_id: str) -> None:
        self._maybe_dirty.add(target_id)
        self._failures_seen += 1
        self._closed_until.pop(target_id, None)
        try:
            await self._count_failure(target_id)
        finally:
            self._closed_until.pop(target_id, None)  # the read below found no record, but there is one now

    async def _count_failure(self, target_id: str) -> None:
        key = breaker_key(target_id)
        if await self._opened_until(target_id) is not None:
            await self._open(key)  # a failed half-open probe re-opens at once
            BREAKER_STATE.labels(self._label(target_id)).set(OPEN)
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "failures", 1)
            pipe.expire(key, FAILURE_WINDOW_S)
            failures, _ = await pipe.execute()
        if int(failures) >= self._threshold:
            await self._open(key)
            BREAKER_STATE.labels(self._label(target_id)).set(OPEN)

    async def state(self, target_id: str) -> str:
        opened_until = await self._opened_until(target_id)
        if opened_until is None:
            return "closed"
        return "open" if time.time() < opened_until else "half_open"

    async def _opened_until(self, target_id: str) -> float | None:
        # redis-py's asyncio client shares the sync client's annotations (`Awaitable[list] | list`).
        failures_seen = self._failures_seen
        fields = self._redis.hmget(breaker_key(target_id), ["opened_until", "failures"])
        opened_until, failures = await cast("Awaitable[list[bytes | None]]", fields)
        if opened_until is not None or failures is not None:  # another worker's failures count here too
            self._maybe_dirty.add(target_id)
            self._closed_until.pop(target_id, None)
        elif self._closed_cache_s > 0 and failures_seen == self._failures_seen:
            self._closed_until[target_id] = time.monotonic() + self._closed_cache_s
        return float(opened_until) if opened_until is not None else None

    async def _open(self, key: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"opened_until": str(time.time() + self._open_s), "failures": "0"})
            # Keep the record past the open period so the half-open state is observable.
            pipe.expire(key, int(self._open_s * 10) + FAILURE_WINDOW_S)
            pipe.delete(f"{key}:probe")
            await pipe.execute()
