"""An API key's `last_used_at`, kept cheap (issue 15): a request writes it to the database only when it wins
the key's Redis marker (SET NX, a minute long), so a key costs at most one UPDATE a minute however busy it is,
across every API process. That write runs beside the request, and a database outage only leaves the time
stale: authentication never waits on PostgreSQL for it.

Each process also remembers, for a while, that a key's marker is set (`KeyUseMemo`), so a busy key costs one
SET NX per process per interval rather than one per request (issue 17): until the marker it won expires, or
for LOST_RECHECK_S after it found another process's marker (whose expiry it does not know; `last_used_at`
is then at most that much older than with a SET on every request)."""

import asyncio
import logging
import time
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

__all__ = ["LAST_USED_RESOLUTION_S", "KeyUseMemo", "drain_key_use_writes", "note_key_used", "write_last_used"]

logger = logging.getLogger(__name__)

LAST_USED_RESOLUTION_S = 60
# How long a stopping API waits for the writes in flight before it closes the database engine.
DRAIN_TIMEOUT_S = 5.0
# Writes in flight: the event loop keeps only weak references to tasks.
_PENDING: set[asyncio.Task[bool]] = set()
# After finding another process's marker, how long this process trusts it is still there.
LOST_RECHECK_S = 10.0
MEMO_MAX_KEYS = 10_000


class KeyUseMemo:
    """The keys whose marker this process knows is set, each until when (monotonic seconds). Bounded: when
    full, the expired entries go, and if none had, all of them (the next use of each key asks Redis again)."""

    def __init__(self, max_keys: int = MEMO_MAX_KEYS) -> None:
        self._until: dict[str, float] = {}
        self._max_keys = max_keys

    def marked(self, key_id: str, now: float) -> bool:
        until = self._until.get(key_id)
        return until is not None and now < until

    def remember(self, key_id: str, until: float) -> None:
        if len(self._until) >= self._max_keys and key_id not in self._until:
            now = time.monotonic()
            self._until = {key: end for key, end in self._until.items() if end > now}
            if len(self._until) >= self._max_keys:
                self._until.clear()
        self._until[key_id] = until


_MEMO = KeyUseMemo()


async def note_key_used(redis: Redis, sessions: async_sessionmaker[AsyncSession], key_id: str,
                        now: datetime, memo: KeyUseMemo = _MEMO) -> bool:
    """Record that the key was used at `now`, unless that was recorded within the last minute (known from
    `memo` without asking Redis, or from the marker); True when this call started the database write (in the
    background)."""
    started = time.monotonic()
    if memo.marked(key_id, started):
        return False
    try:
        won = await redis.set(key_used_key(key_id), 1, nx=True, ex=LAST_USED_RESOLUTION_S)
    except RedisError as exc:
        logger.warning("could not mark the use of key %s: %s", key_id, type(exc).__name__)
        return False
    memo.remember(key_id, started + (LAST_USED_RESOLUTION_S if won else LOST_RECHECK_S))
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
