"""Push wake-up for arq workers. arq only polls its queue; with a long poll delay a new job waits up to that
delay, with a short one every idle worker hammers Redis (measured: 0.05 s costs ~25 ms pickup and 20
commands/s per idle worker). The API publishes on a doorbell channel after each enqueue (and cancel); a
listener here wakes the worker's poll loop at once, and the plain poll delay remains the fallback if a
ring is lost. `worker.gateway_worker.GatewayWorker` drives arq's poll loop with it."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

RECONNECT_DELAY_S = 1.0
# A burst of rings makes every worker poll; polls at most this often let one poll collect a burst. Only a
# ring that comes sooner than this after the last poll waits out the rest: a ring after a quiet spell (one
# request at a time) is served at once, where a fixed pause added ~1.1 ms to every job's queue wait.
MIN_POLL_GAP_S = 0.001


class Doorbell:
    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._rung = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="doorbell")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def ring(self) -> None:
        """Wake the poll loop from inside this process (e.g. a job slot was freed)."""
        self._rung.set()

    async def ticks(self, fallback_s: float) -> AsyncIterator[None]:
        """Yield whenever the bell rings, or every `fallback_s` at the latest; at most once per
        MIN_POLL_GAP_S, counted from the end of the previous poll."""
        loop = asyncio.get_running_loop()
        while True:
            # Cleared before yielding, so a ring during the poll that follows is not lost.
            self._rung.clear()
            yield
            polled_at = loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rung.wait(), timeout=fallback_s)
            rest = MIN_POLL_GAP_S - (loop.time() - polled_at)
            if rest > 0:
                await self._pause(rest)

    async def _pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._rung.set()
            except (RedisError, OSError) as exc:
                logger.warning("doorbell listener lost Redis (%s); polling until it is back", type(exc).__name__)
                await asyncio.sleep(RECONNECT_DELAY_S)
