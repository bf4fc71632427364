"""An API key's `last_used_at`, kept cheap (issue 15): a request writes it to the database only when it wins
the key's Redis marker (SET NX, a minute long), so a key costs at most one UPDATE a minute however busy it is,
across every API process. That write runs beside the request, and a database outage only leaves the time
stale: authentication never waits on PostgreSQL for it."""

import asyncio
import logging
from datetime import datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.tables import ApiKey
from shared.keys import key_used_key

__all__ = ["LAST_USED_RESOLUTION_S", "drain_key_use_writes", "note_key_used", "write_last_used"]

logger = logging.getLogger(__name__)

LAST_USED_RESOLUTION_S = 60
# How long a stopping API waits for the writes in flight before it closes the database engine.
DRAIN_TIMEOUT_S = 5.0
# Writes in flight: the event loop keeps only weak references to tasks.
_PENDING: set[asyncio.Task[bool]] = set()


async def note_key_used(redis: Redis, sessions: async_sessionmaker[AsyncSession], key_id: str,
                        now: datetime) -> bool:
    """Record that the key was used at `now`, unless that was recorded within the last minute; True when this
    call started the database write (in the background)."""
    try:
        won = await redis.set(key_used_key(key_id), 1, nx=True, ex=LAST_USED_RESOLUTION_S)
    except RedisError as exc:
        logger.warning("could not mark the use of key %s: %s", key_id, type(exc).__name__)
        return False
    if not won:
        return False
    task = asyncio.create_task(write_last_used(sessions, key_id, now))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)
    return True


async def write_last_used(sessions: async_sessionmaker[AsyncSession], key_id: str, now: datetime) -> bool:
    """Set the key's `last_used_at`; False (and a warning, never the key) when the database is unavailable."""
    try:
        async with sessions() as session:
            await session.exec(update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=now))
            await session.commit()
    except (SQLAlchemyError, OSError) as exc:
        logger.warning("could not record the last use of key %s: %s", key_id, type(exc).__name__)
        return False
    return True


async def drain_key_use_writes(timeout_s: float = DRAIN_TIMEOUT_S) -> int:
    """Wait (at most `timeout_s`) for the last-used writes in flight; the API's shutdown calls this before it
    disposes of the engine. A write still running then would hold a connection the disposal cannot close (it
    would be dropped unclosed when its event loop ends) and its time would be lost. Returns how many were
    still running at the deadline (then cancelled)."""
    pending = set(_PENDING)
    if not pending:
        return 0
    _, late = await asyncio.wait(pending, timeout=timeout_s)
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late, timeout=1.0)  # let the cancelled ones roll back and return their connections
    return len(late)
