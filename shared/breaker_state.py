"""Read-only view of the circuit breakers' state in Redis (written by worker/breaker.py), for the console's
routes page: open, half-open or closed, and the failures counted in the current window. Never changes it."""

import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from shared.keys import breaker_key

__all__ = ["BreakerView", "read_breakers"]


@dataclass(frozen=True)
class BreakerView:
    target_id: str
    state: str  # closed, open or half_open: the same words as worker/breaker.py's `state`
    failures: int
    opened_until: float | None  # unix seconds


async def read_breakers(redis: Redis, target_ids: list[str]) -> dict[str, BreakerView]:
    """Each target's breaker as every worker sees it, in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for target_id in target_ids:
            pipe.hmget(breaker_key(target_id), ["opened_until", "failures"])
        replies = cast("list[list[bytes | None]]", await cast("Awaitable[object]", pipe.execute()))
    now = time.time()
    return {target_id: _view(target_id, reply, now) for target_id, reply in zip(target_ids, replies, strict=True)}


def _view(target_id: str, reply: list[bytes | None], now: float) -> BreakerView:
    raw_until, raw_failures = reply
    opened_until = float(raw_until) if raw_until is not None else None
    state = "closed" if opened_until is None else ("open" if now < opened_until else "half_open")
    return BreakerView(target_id, state, int(raw_failures or 0), opened_until)
