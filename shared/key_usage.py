"""An API key's `last_used_at`, kept cheap (issue 15): a request writes it to the database only when the key's
Redis marker has lapsed, so a key costs at most one UPDATE a minute however busy it is, across every API
process. The write runs beside the request (`note_key_used_soon`) and a database outage only leaves the
time stale: authentication never waits on PostgreSQL for it."""

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

__all__ = ["LAST_USED_RESOLUTION_S", "note_key_used", "note_key_used_soon"]

logger = logging.getLogger(__name__)

LAST_USED_RESOLUTION_S = 60
# Tasks in flight: the event loop keeps only weak references to tasks.
_PENDING: set[asyncio.Task[bool]] = set()


async def note_key_used(redis: Redis, sessions: async_sessionmaker[AsyncSession], key_id: str,
                        now: datetime) -> bool:
    """Record that the key was used at `now`, unless it was recorded within the last minute; True if written."""
    try:
        if not await redis.set(key_used_key(key_id), 1, nx=True, ex=LAST_USED_RESOLUTION_S):
            return False
        async with sessions() as session:
            await session.exec(update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=now))
            await session.commit()
    except (RedisError, SQLAlchemyError, OSError) as exc:
        logger.warning("could not record the last use of key %s: %s", key_id, type(exc).__name__)
        return False
    return True


def note_key_used_soon(redis: Redis, sessions: async_sessionmaker[AsyncSession], key_id: str,
                       now: datetime) -> None:
    """`note_key_used` in the background, so the request does not wait for it."""
    task = asyncio.create_task(note_key_used(redis, sessions, key_id, now))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)
