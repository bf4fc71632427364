"""Engine, migrations, the UTC timestamp type and usage storage/reporting, on real Postgres and on SQLite."""

import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, func, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.engine import create_engine, create_session_factory
from shared.db.migrate import alembic_config, migrate
from shared.db.tables import ApiKey, Tenant, UsageRecord
from shared.db.usage import DayUsage, ModelUsage, ProviderUsage, UsageTotals, insert_usage, usage_report
from shared.errors import InvalidRequest
from tests.shared.db_support import (
    BACKENDS,
    POSTGRES_URL,
    database_url,
    reset_database,
    usage_row,
)

PROJECT_TABLES = {"tenant", "api_key", "usage_record", "alembic_version"}
REPO_ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def count_inserts(engine: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def stored_version(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        return (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()


async def usage_count(engine: AsyncEngine) -> int:
    async with create_session_factory(engine)() as session:
        return (await session.exec(select(func.count()).select_from(UsageRecord))).one()


# --- engine -------------------------------------------------------------------------------------------


async def test_create_engine_sets_sqlite_pragmas(tmp_path: Path) -> None:
    engine = create_engine(database_url("sqlite", tmp_path))
    try:
        async with engine.connect() as connection:
            values = [
                (await connection.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
            ]
    finally:
        await engine.dispose()
    assert values == ["wal", 5000, 1, 1]  # synchronous=1 is NORMAL


async def test_create_engine_configures_postgres_pool() -> None:
    engine = create_engine(POSTGRES_URL)
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
        pool: Any = engine.sync_engine.pool
        assert (pool.size(), pool._max_overflow, pool._pre_ping) == (10, 10, True)
    finally:
        await engine.dispose()


async def test_create_engine_enforces_foreign_keys(session: AsyncSession) -> None:
    session.add(ApiKey(id="key_orphan", tenant_id="ten_missing", key_hash="h" * 64, key_prefix="gw-x"))
    with pytest.raises(IntegrityError):
        await session.commit()


async def test_create_session_factory_keeps_objects_usable_after_commit(engine: AsyncEngine) -> None:
    factory = create_session_factory(engine)
    async with factory() as session:
        assert isinstance(session, AsyncSession)
        tenant = Tenant(id="ten_0000000000000001", name="acme")
        session.add(tenant)
        await session.commit()
        # An expired attribute would need a lazy load, which raises under asyncio.
        assert tenant.name == "acme"


async def test_utc_datetime_round_trips_as_aware_utc(engine: AsyncEngine) -> None:
    written = datetime(2024, 3, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    factory = create_session_factory(engine)
    async with factory() as session:
        session.add(Tenant(id="ten_0000000000000002", name="tz", created_at=written))
        await session.commit()
    async with factory() as session:
        stored = await session.get(Tenant, "ten_0000000000000002")
    assert stored is not None
    assert stored.created_at == written
    assert stored.created_at.utcoffset() == timedelta(0)


# --- migrations ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migrate_creates_all_tables(backend: str, tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    await reset_database(url)
    await migrate(url)
    engine = create_engine(url)
    try:
        assert await table_names(engine) >= PROJECT_TABLES
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        assert await stored_version(engine) == head == "0011"
    finally:
        await engine.dispose()


async def test_migrate_is_idempotent(engine: AsyncEngine, session: AsyncSession) -> None:
    session.add(Tenant(id="ten_0000000000000003", name="kept"))
    await session.commit()
    await migrate(engine.url.render_as_string(hide_password=False))
    assert await table_names(engine) >= PROJECT_TABLES
    assert await stored_version(engine) == "0011"
    assert await session.get(Tenant, "ten_0000000000000003", populate_existing=True) is not None


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Compare only this project's tables: the test database is shared (see db_support.reset_database), so a
    table another suite or branch left there is not a difference of ours."""
    return not (type_ == "table" and reflected and compare_to is None and name not in SQLModel.metadata.tables)


def _ours_on(dialect: str) -> Callable[[object, str | None, str, bool, object], bool]:
    """`_ours`, and on PostgreSQL without the usage table's idempotency key: there it holds the partition key
    too, (request_id, created_at) (migration 0010; tests/shared/test_usage_partitions.py checks it), which a
    model shared with SQLite cannot declare."""
    def include(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
        partition_key = dialect == "postgresql" and type_ == "unique_constraint" \
            and name == "uq_usage_record_request_id"
        return not partition_key and _ours(obj, name, type_, reflected, compare_to)
    return include


async def test_migration_matches_table_models(engine: AsyncEngine) -> None:
    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={
            "compare_type": True, "include_object": _ours_on(connection.dialect.name)})
        return list(compare_metadata(context, SQLModel.metadata))

    async with engine.connect() as connection:
        assert await connection.run_sync(diff) == []


@pytest.mark.parametrize("backend", BACKENDS)
async def test_run_migrations_works_from_plain_sync_code(backend: str, tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    await reset_database(url)
    code = "import sys; from shared.db.migrate import run_migrations; run_migrations(sys.argv[1])"
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", code, url, cwd=REPO_ROOT)
    assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    engine = create_engine(url)
    try:
        assert await table_names(engine) >= PROJECT_TABLES
    finally:
        await engine.dispose()


# --- insert_usage -------------------------------------------------------------------------------------


# A redelivered row is the same stream entry: the same request_id and the same created_at (the usage table's
# idempotency key on PostgreSQL, where it is partitioned by month on created_at, migration 0010).
WHEN = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


async def test_insert_usage_is_idempotent_on_request_id(engine: AsyncEngine) -> None:
    assert await insert_usage(engine, [usage_row("job_1", created_at=WHEN)]) == 1
    assert await insert_usage(engine, [usage_row("job_1", created_at=WHEN, prompt_tokens=999)]) == 0
    assert await usage_count(engine) == 1


async def test_insert_usage_counts_only_new_rows_of_a_mixed_batch(engine: AsyncEngine) -> None:
    await insert_usage(engine, [usage_row("job_1", created_at=WHEN), usage_row("job_2", created_at=WHEN)])
    batch = [usage_row(name, created_at=WHEN) for name in ("job_2", "job_3", "job_3", "job_4")]
    assert await insert_usage(engine, batch) == 2
    assert await usage_count(engine) == 4


async def test_insert_usage_batches_1000_rows_in_one_statement(engine: AsyncEngine) -> None:
    rows = [usage_row(f"job_{i}") for i in range(1000)]
    with count_inserts(engine) as statements:
        assert await insert_usage(engine, rows) == 1000
    assert len(statements) == 1
    assert await usage_count(engine) == 1000


async def test_insert_usage_inserts_batches_larger_than_one_statement(engine: AsyncEngine) -> None:
    rows = [usage_row(f"job_{i}") for i in range(2500)]
    with count_inserts(engine) as statements:
        assert await insert_usage(engine, rows) == 2500
    assert 1 <= len(statements) <= 3  # SQLAlchemy pages many parameter sets into a few statements
    assert await usage_count(engine) == 2500
    assert await insert_usage(engine, rows) == 0


async def test_insert_usage_empty_batch_returns_zero(engine: AsyncEngine) -> None:
    with count_inserts(engine) as statements:
        assert await insert_usage(engine, []) == 0
    assert statements == []


async def test_insert_usage_fills_optional_fields(engine: AsyncEngine, session: AsyncSession) -> None:
    row = dict(usage_row("job_1"))
    for optional in ("error_code", "fallback_used", "cache_hit", "created_at"):
        del row[optional]
    row["unknown_extra"] = "ignored"
    assert await insert_usage(engine, [row]) == 1
    stored = (await session.exec(select(UsageRecord))).one()
    assert (stored.error_code, stored.fallback_used, stored.cache_hit) == (None, False, False)
    assert stored.dropped_params == ""
    assert abs(datetime.now(UTC) - stored.created_at) < timedelta(minutes=1)


async def test_insert_usage_stores_dropped_params(engine: AsyncEngine, session: AsyncSession) -> None:
    await insert_usage(engine, [usage_row("job_1", dropped_params="logit_bias,seed")])
    assert (await session.exec(select(UsageRecord.dropped_params))).one() == "logit_bias,seed"


async def test_insert_usage_refuses_malformed_dropped_params(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="dropped_params"):
        await insert_usage(engine, [usage_row("job_1", dropped_params=7)])


async def test_insert_usage_accepts_epoch_created_at(engine: AsyncEngine, session: AsyncSession) -> None:
    moment = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    await insert_usage(engine, [usage_row("job_1", created_at=moment.timestamp())])
    assert (await session.exec(select(UsageRecord.created_at))).one() == moment


async def test_insert_usage_rejects_row_missing_required_field(engine: AsyncEngine) -> None:
    row = dict(usage_row("job_1"))
    del row["tenant_id"]
    with pytest.raises(ValueError, match="tenant_id"):
        await insert_usage(engine, [usage_row("job_0"), row])
    assert await usage_count(engine) == 0


# --- usage_report -------------------------------------------------------------------------------------


def _mixed_rows(now: datetime) -> list[dict[str, object]]:
    today, yesterday = now - timedelta(minutes=1), now - timedelta(hours=25)
    return [
        dict(usage_row("r1", created_at=today, prompt_tokens=10, completion_tokens=5, cost_usd=0.25,
                       cache_hit=True)),
        dict(usage_row("r2", created_at=today, public_model="claude-sonnet", provider="anthropic",
                       prompt_tokens=20, completion_tokens=10, cost_usd=0.5, status="failed",
                       error_code="upstream_timeout")),
        dict(usage_row("r3", created_at=yesterday, provider="anthropic", prompt_tokens=30,
                       completion_tokens=15, cost_usd=0.125, fallback_used=True)),
        dict(usage_row("r4", created_at=now - timedelta(days=10), prompt_tokens=1000, cost_usd=4.0)),
        dict(usage_row("r5", created_at=today, tenant_id="ten_b", prompt_tokens=7000, cost_usd=8.0)),
    ]


async def test_usage_report_totals_and_breakdowns(engine: AsyncEngine, session: AsyncSession) -> None:
    now = datetime.now(UTC)
    await insert_usage(engine, _mixed_rows(now))
    report = await usage_report(session, "ten_a", days=7)
    assert (report.tenant_id, report.days) == ("ten_a", 7)
    assert report.totals == UsageTotals(
        requests=3, prompt_tokens=60, completion_tokens=30, cost_usd=0.875, cache_hits=1, failed=1
    )
    today = (now - timedelta(minutes=1)).date().isoformat()
    yesterday = (now - timedelta(hours=25)).date().isoformat()
    assert report.by_day == [
        DayUsage(day=yesterday, requests=1, prompt_tokens=30, completion_tokens=15, cost_usd=0.125),
        DayUsage(day=today, requests=2, prompt_tokens=30, completion_tokens=15, cost_usd=0.75,
                 cache_hits=1, failed=1),
    ]
    assert report.by_model == [
        ModelUsage(model="claude-sonnet", requests=1, prompt_tokens=20, completion_tokens=10, cost_usd=0.5,
                   failed=1),
        ModelUsage(model="gpt-4o", requests=2, prompt_tokens=40, completion_tokens=20, cost_usd=0.375,
                   cache_hits=1),
    ]
    assert report.by_provider == [
        ProviderUsage(provider="anthropic", requests=2, prompt_tokens=50, completion_tokens=25,
                      cost_usd=0.625, failed=1),
        ProviderUsage(provider="openai", requests=1, prompt_tokens=10, completion_tokens=5, cost_usd=0.25,
                      cache_hits=1),
    ]


async def test_usage_report_days_excludes_older_rows(engine: AsyncEngine, session: AsyncSession) -> None:
    await insert_usage(engine, _mixed_rows(datetime.now(UTC)))
    assert (await usage_report(session, "ten_a", days=1)).totals.requests == 2
    assert (await usage_report(session, "ten_a", days=7)).totals.requests == 3
    wide = await usage_report(session, "ten_a", days=30)
    assert (wide.totals.requests, wide.totals.prompt_tokens, len(wide.by_day)) == (4, 1060, 3)


async def test_usage_report_buckets_days_in_utc(engine: AsyncEngine, session: AsyncSession) -> None:
    late = (datetime.now(UTC) - timedelta(days=2)).replace(hour=23, minute=30)
    await insert_usage(engine, [usage_row("late", created_at=late)])
    if engine.dialect.name == "postgresql":
        # A session time zone far from UTC would move 23:30 UTC to the next day if it leaked in.
        await session.exec(text("SET TIME ZONE 'Asia/Tokyo'"))
    report = await usage_report(session, "ten_a", days=7)
    assert [row.day for row in report.by_day] == [late.date().isoformat()]


async def test_usage_report_without_rows_is_all_zero(session: AsyncSession) -> None:
    report = await usage_report(session, "ten_none", days=30)
    assert report.totals == UsageTotals()
    assert (report.by_day, report.by_model, report.by_provider) == ([], [], [])


async def test_usage_report_rejects_days_below_one(session: AsyncSession) -> None:
    with pytest.raises(InvalidRequest):
        await usage_report(session, "ten_a", days=0)
