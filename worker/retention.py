"""The request log's retention: every `usage_prune_interval_s` one worker (whichever takes the Redis marker
first) deletes the usage records older than `usage_retention_days` and the opt-in request content past its
tenant's own retention. On PostgreSQL the same pass keeps the usage table's monthly partitions created ahead
and drops the months wholly past retention (shared/db/pg_partitions.py, called by `PgUsageSink.prune`).
Runs beside the usage writer, off the job path; a failed prune is logged and tried again next interval."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from redis.asyncio import Redis

from shared.keys import USAGE_PRUNE_KEY

logger = logging.getLogger(__name__)

PruneRows = Callable[[datetime | None, datetime], Awaitable[int]]
"""(usage records created before this, or None to keep them; request content expired at this time)"""


async def prune_once(redis: Redis, prune: PruneRows, *, retention_days: int, interval_s: float,
                     now: datetime) -> int | None:
    """Prune if no other worker did this interval; how many rows went, or None when it was not our turn.
    Request content has its own expiry (each tenant's `log_content_days`), pruned even when usage is kept."""
    if not await redis.set(USAGE_PRUNE_KEY, "1", nx=True, px=max(1, int(interval_s * 1000))):
        return None
    removed = await prune(now - timedelta(days=retention_days) if retention_days > 0 else None, now)
    if removed:
        logger.info("pruned %d usage records and expired request contents", removed)
    return removed


async def prune_periodically(redis: Redis, prune: PruneRows, *, retention_days: int, interval_s: float,
                             stop: asyncio.Event, clock: Callable[[], datetime]) -> None:
    while not stop.is_set():
        try:
            await prune_once(redis, prune, retention_days=retention_days, interval_s=interval_s, now=clock())
        except Exception as exc:  # the database or Redis is down: the next interval tries again
            logger.warning("usage prune failed: %s", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
