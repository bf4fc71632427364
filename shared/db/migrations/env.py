"""Alembic environment: runs migrations over an async engine for the URL in `sqlalchemy.url`, which
`shared.db.migrate` sets in code. It runs its own event loop: call it from a thread without a running one."""

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from shared.db import tables  # noqa: F401  (registers the tables on SQLModel.metadata)

__all__ = ["MIGRATION_LOCK_ID", "target_metadata"]

# Any fixed number, shared by every process migrating the same Postgres database.
MIGRATION_LOCK_ID = 0x6C6C6D67

config = context.config
target_metadata = SQLModel.metadata


def _database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set on the Alembic config")
    return url


def _run_offline() -> None:
    url = _database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on_connection(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # An API and a worker starting together would otherwise both try to create the same tables.
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()


async def _run_online() -> None:
    # NullPool: nothing should outlive this short-lived engine.
    engine = create_async_engine(_database_url(), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_on_connection)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    _run_offline()
else:
    # A private loop (not asyncio.run) so the thread's current event loop, if any, is left untouched.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        runner.run(_run_online())
