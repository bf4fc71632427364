"""Named, scoped API keys (issue 15) against a migrated database, on real Postgres and on SQLite: issue, list,
update, revoke, authentication of each key, `rotate_key` on the `default` key only, migration 0006 on a
database holding a tenant and its key; and the pure scope checks (globs, endpoints by route path)."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.api_keys import (
    KeyCreate,
    KeyScopes,
    authenticate_key,
    check_model_access,
    create_key,
    endpoint_for_path,
    get_key,
    list_keys,
    model_allowed,
    parse_key,
    revoke_key,
    update_key,
    visible_models,
)
from shared.db.engine import create_engine, create_session_factory
from shared.db.migrate import alembic_config, migrate
from shared.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from shared.tenant_cache import KeyScope, TenantSnapshot
from shared.tenants import create_tenant, hash_key, rotate_key
from tests.shared.db_support import BACKENDS, database_url, migrated_engine, reset_database


@pytest.fixture(params=BACKENDS)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine(request.param, tmp_path) as engine:
        yield engine


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with create_session_factory(engine)() as session:
        yield session


async def test_create_key_authenticates_with_its_scopes(session: AsyncSession) -> None:
    tenant, default = await create_tenant(session, "acme")
    expiry = datetime.now(UTC) + timedelta(days=1)
    key, plain = await create_key(session, tenant.id, KeyCreate(
        name="ci", allowed_models=["gpt-4o*"], allowed_endpoints=["jobs"], rate_limit=5, budget_usd=1.5,
        budget_period="daily", expires_at=expiry), actor="test")
    assert plain.startswith("gw-") and plain != default and key.key_hash == hash_key(plain)
    found = await authenticate_key(session, plain)
    assert found is not None
    owner, row = found
    assert owner.id == tenant.id and row.id == key.id and row.name == "ci"
    snapshot = TenantSnapshot.of(owner, row)
    assert snapshot.key_id == key.id
    assert snapshot.key == KeyScope(name="ci", expires_at=expiry, allowed_models=["gpt-4o*"],
                                    allowed_endpoints=["jobs"], rate_limit=5, budget_usd=1.5, budget_period="daily")
    assert snapshot.key.limited


async def test_default_key_has_no_scopes(session: AsyncSession) -> None:
    _, plain = await create_tenant(session, "acme")
    found = await authenticate_key(session, plain)
    assert found is not None
    snapshot = TenantSnapshot.of(*found)
    assert snapshot.key.name == "default" and not snapshot.key.limited
    assert snapshot.key.allowed_models is None and snapshot.key.allowed_endpoints is None


async def test_create_key_refuses_a_name_in_use_until_revoked(session: AsyncSession) -> None:
    tenant, _ = await create_tenant(session, "acme")
    first, _ = await create_key(session, tenant.id, KeyCreate(name="ci"), actor="test")
    with pytest.raises(Conflict, match="already has an active key named 'ci'"):
        await create_key(session, tenant.id, KeyCreate(name="ci"), actor="test")
    await revoke_key(session, tenant.id, first.id, actor="test")
    second, _ = await create_key(session, tenant.id, KeyCreate(name="ci"), actor="test")
    assert second.id != first.id


async def test_create_key_for_missing_tenant_raises_not_found(session: AsyncSession) -> None:
    with pytest.raises(NotFound):
        await create_key(session, "ten_missing", KeyCreate(name="ci"), actor="test")


async def test_revoke_key_stops_only_that_key(session: AsyncSession) -> None:
    tenant, default = await create_tenant(session, "acme")
    key, plain = await create_key(session, tenant.id, KeyCreate(name="ci"), actor="test")
    revoked = await revoke_key(session, tenant.id, key.id, actor="test")
    assert revoked.revoked_at is not None
    assert await authenticate_key(session, plain) is None
    assert await authenticate_key(session, default) is not None
    with pytest.raises(NotFound, match="revoked"):
        await revoke_key(session, tenant.id, key.id, actor="test")
    with pytest.raises(NotFound, match="revoked"):
        await update_key(session, tenant.id, key.id, KeyScopes(rate_limit=1), actor="test")


async def test_list_keys_hides_revoked_unless_asked(session: AsyncSession) -> None:
    tenant, _ = await create_tenant(session, "acme")
    key, _ = await create_key(session, tenant.id, KeyCreate(name="ci"), actor="test")
    await revoke_key(session, tenant.id, key.id, actor="test")
    assert [row.name for row in await list_keys(session, tenant.id)] == ["default"]
    assert [row.name for row in await list_keys(session, tenant.id, include_revoked=True)] == ["default", "ci"]


async def test_get_key_of_another_tenant_raises_not_found(session: AsyncSession) -> None:
    tenant, _ = await create_tenant(session, "acme")
    other, _ = await create_tenant(session, "other")
    key, _ = await create_key(session, tenant.id, KeyCreate(name="ci"), actor="test")
    with pytest.raises(NotFound):
        await get_key(session, other.id, key.id)


async def test_update_key_changes_only_the_fields_given(session: AsyncSession) -> None:
    tenant, _ = await create_tenant(session, "acme")
    params = KeyCreate(name="ci", rate_limit=5, allowed_models=["a"])
    key, _ = await create_key(session, tenant.id, params, actor="test")
    updated = await update_key(session, tenant.id, key.id, parse_key({"allowed_models": None}, KeyScopes), actor="test")
    assert updated.allowed_models is None and updated.rate_limit == 5


async def test_rotate_key_replaces_only_the_default_key_keeping_its_scopes(session: AsyncSession) -> None:
    tenant, default = await create_tenant(session, "acme")
    default_row = (await list_keys(session, tenant.id))[0]
    await update_key(session, tenant.id, default_row.id, KeyScopes(allowed_models=["a*"]), actor="test")
    _, named = await create_key(session, tenant.id, KeyCreate(name="ci"), actor="test")
    rotated = await rotate_key(session, tenant.id)
    assert await authenticate_key(session, default) is None
    assert await authenticate_key(session, named) is not None
    found = await authenticate_key(session, rotated)
    assert found is not None and found[1].name == "default" and found[1].allowed_models == ["a*"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_0006_keeps_the_existing_key_working_as_default(backend: str, tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    await reset_database(url)
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0005")
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(
                "INSERT INTO tenant (id, name, rate_limit, budget_period, disabled, created_at) "
                "VALUES ('ten_old', 'old', 7, 'monthly', false, CURRENT_TIMESTAMP)"))
            await connection.execute(text(
                "INSERT INTO api_key (id, tenant_id, key_hash, key_prefix, created_at) VALUES "
                f"('key_old', 'ten_old', '{hash_key('gw-old-key')}', 'gw-old-key', CURRENT_TIMESTAMP)"))
        await migrate(url)
        async with create_session_factory(engine)() as session:
            found = await authenticate_key(session, "gw-old-key")
            assert found is not None
            tenant, key = found
            assert (tenant.id, tenant.rate_limit, tenant.allowed_models) == ("ten_old", 7, None)
            assert (key.id, key.name, key.allowed_models, key.budget_usd, key.budget_period) == (
                "key_old", "default", None, None, "monthly")
            assert await rotate_key(session, "ten_old")
            assert await authenticate_key(session, "gw-old-key") is None
        await asyncio.to_thread(command.downgrade, alembic_config(url), "0005")
    finally:
        await engine.dispose()


def test_model_allowed_matches_names_and_globs() -> None:
    assert model_allowed(None, "anything")
    assert model_allowed(["gpt-4o", "claude-*"], "claude-sonnet-4-5")
    assert not model_allowed(["gpt-4o", "claude-*"], "gpt-4o-mini")
    assert not model_allowed([], "gpt-4o")
    assert not model_allowed(["GPT-4o"], "gpt-4o")  # routes are case-sensitive, so scopes are too


def test_check_model_access_needs_both_tenant_and_key() -> None:
    tenant = TenantSnapshot(id="ten_a", name="a", allowed_models=["fake-*"],
                            key=KeyScope(allowed_models=["fake-openai", "other"]))
    check_model_access(tenant, "fake-openai")
    for model, whose in (("fake-anthropic", "API key"), ("other", "tenant")):
        with pytest.raises(PermissionDenied, match=whose) as caught:
            check_model_access(tenant, model)
        assert caught.value.code == "model_not_allowed" and caught.value.status == 403
    assert visible_models(tenant, ["other", "fake-anthropic", "fake-openai"]) == ["fake-openai"]


@pytest.mark.parametrize(("path", "endpoint"), [
    ("/v1/chat/completions", "chat"), ("/api/v1/completions", "chat"), ("/v1/messages", "messages"),
    ("/v1/messages/count_tokens", "count_tokens"), ("/v1/responses/resp_1/cancel", "responses"),
    ("/v1/embeddings", "embeddings"), ("/v1/completions", "completions"), ("/api/v1/jobs/job_1/events", "jobs"),
    ("/api/v1/jobs", "jobs"), ("/v1/models/a/b", "models"), ("/api/v1/usage", None), ("/v1/modelsx", None),
])
def test_endpoint_for_path_maps_each_route(path: str, endpoint: str | None) -> None:
    assert endpoint_for_path(path) == endpoint


@pytest.mark.parametrize(("data", "problem"), [
    ({"allowed_endpoints": ["chat", "images"]}, "unknown endpoint(s) images"),
    ({"allowed_models": [""]}, "1 to 200 characters"),
    ({"expires_at": "2027-01-01T00:00:00"}, "must carry a timezone"),
    ({"rate_limit": -1}, "rate_limit"),
    ({"budget_period": "yearly"}, "budget_period"),
    ({"secret": 1}, "secret"),
])
def test_parse_key_refuses_bad_scopes_naming_them(data: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidRequest, match="Invalid API key") as caught:
        parse_key(data, KeyScopes)
    assert problem in caught.value.message
