"""Async engine and session factory for PostgreSQL (asyncpg) or embedded SQLite (aiosqlite).
SQLite connections get WAL mode, a busy timeout and enforced foreign keys as soon as they open."""

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel.ext.asyncio.session import AsyncSession

__all__ = ["SQLITE_PRAGMAS", "create_engine", "create_session_factory"]

# WAL lets readers proceed during a write; busy_timeout makes a second writer wait instead of failing;
# NORMAL is durable enough under WAL; foreign keys are off by default in SQLite.
SQLITE_PRAGMAS: tuple[str, ...] = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)


def _apply_sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def create_engine(url: str) -> AsyncEngine:
    """An engine for `url` (`postgresql+asyncpg://...` or `sqlite+aiosqlite://...`); dispose it when done."""
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _apply_sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions keep loaded objects usable after commit, so results can be returned past the session."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
