"""`last_used_at` of API keys (issue 15): written at most once a minute per key, gated by a Redis marker, in the
background; a database outage only leaves it stale. fakeredis and a SQLite file."""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fakeredis
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.engine import create_engine, create_session_factory
from shared.db.migrate import migrate
from shared.db.tables import ApiKey
from shared.key_usage import KeyUseMemo, drain_key_use_writes, note_key_used, write_last_used
from shared.keys import key_used_key
from shared.tenants import create_tenant

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    await migrate(url)
    engine = create_engine(url)
    yield create_session_factory(engine)
    await engine.dispose()


async def _key(sessions: async_sessionmaker[AsyncSession]) -> ApiKey:
    async with sessions() as session:
        tenant, _ = await create_tenant(session, "acme")
        return (await session.exec(select(ApiKey).where(col(ApiKey.tenant_id) == tenant.id))).one()


async def _last_used(sessions: async_sessionmaker[AsyncSession], key_id: str) -> datetime | None:
    async with sessions() as session:
        row = await session.get(ApiKey, key_id)
        assert row is not None
        return row.last_used_at


async def test_note_key_used_writes_once_a_minute(sessions: async_sessionmaker[AsyncSession]) -> None:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    key = await _key(sessions)
    assert await note_key_used(redis, sessions, key.id, NOW) is True
    assert await note_key_used(redis, sessions, key.id, NOW + timedelta(seconds=5)) is False
    for _ in range(50):
        if await _last_used(sessions, key.id) is not None:
            break
        await asyncio.sleep(0.02)
    assert await _last_used(sessions, key.id) == NOW
    assert 0 < await redis.ttl(key_used_key(key.id)) <= 60


async def test_write_last_used_survives_a_database_outage() -> None:
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        assert await write_last_used(create_session_factory(engine), "key_x", NOW) is False
    finally:
        await engine.dispose()


async def test_drain_waits_for_the_write_in_flight(sessions: async_sessionmaker[AsyncSession]) -> None:
    """What the API's shutdown does before disposing of the engine: the background write finishes (its time is
    stored, its connection returned to the pool) instead of being dropped with an unclosed connection."""
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    key = await _key(sessions)
    assert await note_key_used(redis, sessions, key.id, NOW) is True
    assert await drain_key_use_writes() == 0  # none still running at the deadline
    assert await _last_used(sessions, key.id) == NOW


async def test_drain_cancels_a_write_that_outlasts_its_deadline() -> None:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    started = asyncio.Event()

    class HangingSession:
        async def __aenter__(self) -> "HangingSession":
            started.set()
            await asyncio.sleep(3600)
            return self

        async def __aexit__(self, *_: object) -> None:
            return None

    assert await note_key_used(redis, HangingSession, "key_hangs", NOW) is True  # type: ignore[arg-type]
    await started.wait()
    assert await drain_key_use_writes(timeout_s=0.05) == 1
    assert await drain_key_use_writes(timeout_s=0.05) == 0  # the cancelled write is gone


class CountingRedis(fakeredis.FakeAsyncRedis):
    """Counts the SETs that reach Redis."""

    sets = 0

    async def set(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        type(self).sets += 1
        return await super().set(*args, **kwargs)  # type: ignore[arg-type]


async def test_memo_sends_one_set_per_interval_per_process(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A busy key asks Redis once, not once per request; another process's marker is trusted for a while."""
    server = fakeredis.FakeServer()
    redis = CountingRedis(server=server)
    CountingRedis.sets = 0
    key = await _key(sessions)
    memo = KeyUseMemo()
    assert await note_key_used(redis, sessions, key.id, NOW, memo) is True
    for _ in range(20):
        assert await note_key_used(redis, sessions, key.id, NOW, memo) is False
    assert CountingRedis.sets == 1
    other_process = KeyUseMemo()
    assert await note_key_used(redis, sessions, key.id, NOW, other_process) is False  # the marker is set
    assert await note_key_used(redis, sessions, key.id, NOW, other_process) is False
    assert CountingRedis.sets == 2
    await drain_key_use_writes()


def test_memo_forgets_expired_entries_and_stays_bounded() -> None:
    memo = KeyUseMemo(max_keys=3)
    now = time.monotonic()
    memo.remember("a", now + 60)
    memo.remember("b", now - 1)  # expired
    memo.remember("c", now + 60)
    memo.remember("d", now + 60)  # full: the expired entry makes room
    assert memo.marked("a", now) and memo.marked("d", now) and not memo.marked("b", now)
    memo.remember("e", now + 60)  # full of live entries: forgotten, so Redis is asked again
    assert memo.marked("e", now) and not memo.marked("a", now)
    memo.remember("f", now + 1)
    assert memo.marked("f", now) and not memo.marked("f", now + 1)
