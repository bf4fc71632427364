"""Tenants and API keys against a migrated database, on real Postgres and on SQLite."""

import hashlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.engine import create_session_factory
from shared.db.tables import ApiKey, utc_now
from shared.errors import Conflict, InvalidRequest, NotFound
from shared.tenants import (
    TenantLimits,
    authenticate,
    create_tenant,
    generate_key,
    get_tenant,
    hash_key,
    list_tenants,
    parse_limits,
    rotate_key,
    set_tenant_disabled,
    update_tenant,
)
from tests.shared.db_support import BACKENDS, migrated_engine


@pytest.fixture(params=BACKENDS)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine(request.param, tmp_path) as engine:
        yield engine


@pytest.fixture
def factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
async def session(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with factory() as session:
        yield session


async def keys_of(factory: async_sessionmaker[AsyncSession], tenant_id: str) -> list[ApiKey]:
    async with factory() as session:
        result = await session.exec(
            select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(col(ApiKey.created_at))
        )
        return list(result.all())


def test_hash_key_is_sha256_hex() -> None:
    assert hash_key("gw-abc") == hashlib.sha256(b"gw-abc").hexdigest()


def test_generate_key_is_prefixed_and_random() -> None:
    first, second = generate_key(), generate_key()
    assert first.startswith("gw-") and len(first) == 3 + 43
    assert first != second


async def test_create_tenant_returns_tenant_and_plain_key(session: AsyncSession) -> None:
    tenant, plain = await create_tenant(session, "acme", rate_limit=120)
    assert re.fullmatch(r"ten_[0-9a-f]{16}", tenant.id)
    assert (tenant.name, tenant.rate_limit, tenant.disabled) == ("acme", 120, False)
    assert tenant.created_at.utcoffset() == timedelta(0)
    assert plain.startswith("gw-")


async def test_create_tenant_stores_only_the_key_hash(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant, plain = await create_tenant(session, "acme")
    [key] = await keys_of(factory, tenant.id)
    assert re.fullmatch(r"key_[0-9a-f]{16}", key.id)
    assert key.key_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert key.key_prefix == plain[:12]
    assert plain not in key.model_dump().values()
    assert key.revoked_at is None


async def test_create_tenant_duplicate_name_raises_conflict(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    await create_tenant(session, "acme")
    with pytest.raises(Conflict):
        await create_tenant(session, "acme")
    async with factory() as fresh:
        assert [tenant.name for tenant in await list_tenants(fresh)] == ["acme"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
async def test_create_tenant_rejects_invalid_name(session: AsyncSession, name: str) -> None:
    with pytest.raises(InvalidRequest):
        await create_tenant(session, name)
    assert await list_tenants(session) == []


async def test_create_tenant_rejects_negative_rate_limit(session: AsyncSession) -> None:
    with pytest.raises(InvalidRequest):
        await create_tenant(session, "acme", rate_limit=-1)


async def test_list_tenants_returns_every_tenant(session: AsyncSession) -> None:
    assert await list_tenants(session) == []
    created = [(await create_tenant(session, name))[0].id for name in ("a", "b", "c")]
    assert sorted(tenant.id for tenant in await list_tenants(session)) == sorted(created)


async def test_get_tenant_returns_the_tenant(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant, _ = await create_tenant(session, "acme", rate_limit=5)
    async with factory() as fresh:
        found = await get_tenant(fresh, tenant.id)
    assert (found.id, found.name, found.rate_limit) == (tenant.id, "acme", 5)


async def test_get_tenant_missing_raises_not_found(session: AsyncSession) -> None:
    with pytest.raises(NotFound):
        await get_tenant(session, "ten_doesnotexist00")


async def test_set_tenant_disabled_persists_both_ways(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant, _ = await create_tenant(session, "acme")
    assert (await set_tenant_disabled(session, tenant.id, True)).disabled is True
    async with factory() as fresh:
        assert (await get_tenant(fresh, tenant.id)).disabled is True
    assert (await set_tenant_disabled(session, tenant.id, False)).disabled is False
    async with factory() as fresh:
        assert (await get_tenant(fresh, tenant.id)).disabled is False


async def test_set_tenant_disabled_missing_raises_not_found(session: AsyncSession) -> None:
    with pytest.raises(NotFound):
        await set_tenant_disabled(session, "ten_doesnotexist00", True)


async def test_authenticate_good_key_returns_tenant(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant, plain = await create_tenant(session, "acme")
    await create_tenant(session, "other")
    async with factory() as fresh:
        found = await authenticate(fresh, plain)
    assert found is not None and found.id == tenant.id


async def test_authenticate_unknown_key_returns_none(session: AsyncSession) -> None:
    _, plain = await create_tenant(session, "acme")
    assert await authenticate(session, generate_key()) is None
    assert await authenticate(session, hash_key(plain)) is None
    assert await authenticate(session, plain[3:]) is None


async def test_authenticate_returns_disabled_tenant(session: AsyncSession) -> None:
    tenant, plain = await create_tenant(session, "acme")
    await set_tenant_disabled(session, tenant.id, True)
    found = await authenticate(session, plain)
    assert found is not None and found.disabled is True


async def test_rotate_key_revokes_old_keys_and_issues_a_new_one(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant, first = await create_tenant(session, "acme")
    second = await rotate_key(session, tenant.id)
    third = await rotate_key(session, tenant.id)
    assert len({first, second, third}) == 3
    async with factory() as fresh:
        assert await authenticate(fresh, first) is None
        assert await authenticate(fresh, second) is None
        found = await authenticate(fresh, third)
    assert found is not None and found.id == tenant.id
    keys = await keys_of(factory, tenant.id)
    assert len(keys) == 3
    assert [key.key_hash for key in keys if key.revoked_at is None] == [hash_key(third)]


async def test_rotate_key_leaves_other_tenants_alone(session: AsyncSession) -> None:
    tenant, _ = await create_tenant(session, "acme")
    other, other_key = await create_tenant(session, "other")
    await rotate_key(session, tenant.id)
    found = await authenticate(session, other_key)
    assert found is not None and found.id == other.id


async def test_rotate_key_missing_tenant_raises_not_found(session: AsyncSession) -> None:
    with pytest.raises(NotFound):
        await rotate_key(session, "ten_doesnotexist00")
    assert (await session.exec(select(ApiKey))).all() == []



# --- limits ------------------------------------------------------------------------------------------

LIMITS = TenantLimits(rate_limit=30, tpm_limit=50_000, max_concurrent=4, budget_usd=12.5, budget_period="weekly")


def limits_of(tenant: object) -> dict[str, object]:
    return {field: getattr(tenant, field) for field in TenantLimits.model_fields}


async def test_create_tenant_stores_limits(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant, _ = await create_tenant(session, "acme", limits=LIMITS)
    async with factory() as fresh:
        assert limits_of(await get_tenant(fresh, tenant.id)) == LIMITS.model_dump()


async def test_create_tenant_rate_limit_argument_wins_over_limits(session: AsyncSession) -> None:
    tenant, _ = await create_tenant(session, "acme", 7, limits=LIMITS)
    assert (tenant.rate_limit, tenant.tpm_limit) == (7, 50_000)


async def test_create_tenant_without_limits_has_none(session: AsyncSession) -> None:
    tenant, _ = await create_tenant(session, "acme")
    assert limits_of(tenant) == {"rate_limit": None, "tpm_limit": None, "max_concurrent": None,
                                 "budget_usd": None, "budget_period": "monthly", "weight": None,
                                 "max_running": None, "allowed_models": None, "log_content_days": None}


async def test_update_tenant_applies_only_fields_set(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant, _ = await create_tenant(session, "acme", limits=LIMITS)
    updated = await update_tenant(session, tenant.id, TenantLimits(tpm_limit=10, budget_period="daily"))
    expected = {**LIMITS.model_dump(), "tpm_limit": 10, "budget_period": "daily"}
    assert limits_of(updated) == expected
    async with factory() as fresh:
        assert limits_of(await get_tenant(fresh, tenant.id)) == expected


async def test_update_tenant_explicit_none_clears_a_limit(
    session: AsyncSession, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant, _ = await create_tenant(session, "acme", limits=LIMITS)
    await update_tenant(session, tenant.id, parse_limits({"budget_usd": None, "rate_limit": None}))
    async with factory() as fresh:
        found = await get_tenant(fresh, tenant.id)
    assert (found.budget_usd, found.rate_limit, found.tpm_limit) == (None, None, 50_000)


async def test_update_tenant_missing_raises_not_found(session: AsyncSession) -> None:
    with pytest.raises(NotFound):
        await update_tenant(session, "ten_doesnotexist00", TenantLimits(tpm_limit=1))


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"budget_usd": -1}, "budget_usd"),
        ({"budget_usd": float("inf")}, "budget_usd"),
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"tpm_limit": -5}, "tpm_limit"),
        ({"rate_limit": "10"}, "rate_limit"),
        ({"rate_limit": True}, "rate_limit"),
        ({"budget_period": "yearly"}, "budget_period"),
        ({"budget_period": None}, "budget_period"),
        ({"budget": 5}, "budget"),
    ],
)
def test_parse_limits_rejects_bad_values_naming_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequest, match=field):
        parse_limits(data)


def test_parse_limits_keeps_only_given_fields_set() -> None:
    limits = parse_limits({"budget_usd": None, "max_concurrent": 2})
    assert limits.model_fields_set == {"budget_usd", "max_concurrent"}
    assert parse_limits({"budget_usd": 5}).budget_usd == 5.0


async def test_authenticate_refuses_an_expired_key(session: AsyncSession) -> None:
    """The console's sign-in uses `authenticate`: a key past its `expires_at` (issue 15) opens no session."""
    tenant, plain = await create_tenant(session, "expiring")
    key = (await session.exec(select(ApiKey).where(col(ApiKey.tenant_id) == tenant.id))).one()
    key.expires_at = utc_now() - timedelta(seconds=1)
    session.add(key)
    await session.commit()
    assert await authenticate(session, plain) is None
    key.expires_at = utc_now() + timedelta(hours=1)
    session.add(key)
    await session.commit()
    assert await authenticate(session, plain) is not None
