"""Test helpers: a freshly migrated database on the real Postgres or on a SQLite file. Postgres is never
skipped; if it is unreachable the tests using it fail."""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from shared.db import tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from shared.db.engine import create_engine
from shared.db.migrate import migrate

__all__ = ["BACKENDS", "POSTGRES_URL", "database_url", "migrated_engine", "reset_database", "usage_row"]

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BACKENDS = ("postgres", "sqlite")


def database_url(backend: str, tmp_path: Path) -> str:
    if backend == "postgres":
        return POSTGRES_URL
    return f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"


async def reset_database(url: str) -> None:
    """Drop this project's tables and Alembic's version table only: other suites share the database."""
    names = [table.name for table in reversed(SQLModel.metadata.sorted_tables)] + ["alembic_version"]
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            cascade = " CASCADE" if connection.dialect.name == "postgresql" else ""
            for name in names:
                await connection.execute(text(f'DROP TABLE IF EXISTS "{name}"{cascade}'))
    finally:
        await engine.dispose()


@asynccontextmanager
async def migrated_engine(backend: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on an emptied database that has just been migrated to head; disposed on exit."""
    url = database_url(backend, tmp_path)
    await reset_database(url)
    await migrate(url)
    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


def usage_row(request_id: str, **overrides: object) -> Mapping[str, object]:
    """A complete usage row as the worker writes it, with any field overridden."""
    row: dict[str, object] = {
        "request_id": request_id,
        "tenant_id": "ten_a",
        "public_model": "gpt-4o",
        "provider": "openai",
        "model": "gpt-4o-2024-08-06",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_usd": 0.001,
        "latency_ms": 120,
        "status": "succeeded",
        "error_code": None,
        "fallback_used": False,
        "cache_hit": False,
        "created_at": datetime.now().astimezone(),
    }
    row.update(overrides)
    return row
