"""Applies the Alembic migrations shipped inside this package (`upgrade head`) to a database URL.
`run_migrations` is synchronous and runs its own event loop; async code calls `migrate` (uses a thread)."""

import asyncio
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

__all__ = ["MIGRATIONS_DIR", "alembic_config", "migrate", "run_migrations"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Alembic installs its `context` as module-level state, so two upgrades in one process must not overlap.
_upgrade_lock = threading.Lock()


def alembic_config(database_url: str) -> Config:
    """An Alembic config built in code (no alembic.ini) pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # The config is a ConfigParser: a literal '%' (e.g. in an escaped password) must be doubled.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def run_migrations(database_url: str) -> None:
    """Upgrade `database_url` to the newest revision. Must not be called on a thread running an event loop."""
    with _upgrade_lock:
        command.upgrade(alembic_config(database_url), "head")


async def migrate(database_url: str) -> None:
    """Upgrade `database_url` to the newest revision without blocking the running event loop."""
    await asyncio.to_thread(run_migrations, database_url)
