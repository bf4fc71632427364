"""Migration 0011 (issue 16: a tenant key's `manage` scope) on a database holding data, on real PostgreSQL and on
SQLite: a tenant and its scoped key written at 0010 survive the upgrade, still authenticate with their scopes, and
get `manage` false; the scope can then be set; the downgrade to 0010 drops only the column, keeping the key."""

import asyncio
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text

from shared.api_keys import KeyScopes, render_key, update_key
from shared.db.engine import create_engine, create_session_factory
from shared.db.migrate import alembic_config, migrate
from shared.db.tables import ApiKey
from shared.tenants import authenticate, hash_key
from tests.shared.db_support import BACKENDS, database_url, reset_database

OLD_KEY = "gw-old-key-from-before-0011"


async def _seed_0010(url: str) -> None:
    await reset_database(url)
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0010")
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(
                "INSERT INTO tenant (id, name, budget_period, disabled, created_at) VALUES "
                "('ten_old', 'old', 'monthly', false, CURRENT_TIMESTAMP)"))
            await connection.execute(text(
                "INSERT INTO api_key (id, tenant_id, key_hash, key_prefix, name, created_at, allowed_models, "
                f"allowed_endpoints, budget_period) VALUES ('key_old', 'ten_old', '{hash_key(OLD_KEY)}', "
                """'gw-old-key-f', 'ci', CURRENT_TIMESTAMP, '["gpt-4o*"]', '["jobs"]', 'monthly')"""))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_0011_gives_existing_keys_no_manage_scope_and_keeps_them(backend: str,
                                                                                 tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    await _seed_0010(url)
    await migrate(url)
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            tenant = await authenticate(session, OLD_KEY)
            assert tenant is not None and tenant.id == "ten_old"
            key = await session.get(ApiKey, "key_old")
            assert key is not None and key.manage is False
            assert (key.name, key.allowed_models, key.allowed_endpoints) == ("ci", ["gpt-4o*"], ["jobs"])
            changed = await update_key(session, "ten_old", "key_old", KeyScopes.model_validate({"manage": True}),
                                       actor="cli")
            assert render_key(changed)["manage"] is True
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_0011_downgrade_drops_only_the_column(backend: str, tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    await _seed_0010(url)
    await migrate(url)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0010")
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: {column["name"] for column in inspect(sync).get_columns("api_key")})
            names = (await connection.execute(text("SELECT name FROM api_key"))).scalars().all()
        assert "manage" not in columns and {"allowed_models", "allowed_endpoints"} <= columns and names == ["ci"]
    finally:
        await engine.dispose()
