"""The worker's asyncpg usage sink (shared/db/pg_usage.py) on the real Postgres, in a database of its own:
it must behave exactly like `insert_usage` (same counts, same stored values, malformed rows rejected the same
way), its record of budget-alert thresholds sent must agree with SQLAlchemy's (shared/db/budget_alert_log.py),
and importing the worker must not load SQLAlchemy or SQLModel, which is why the sink exists."""

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from shared.budget_alert_check import SentThreshold
from shared.db.budget_alert_log import SqlSentLog
from shared.db.engine import create_engine
from shared.db.migrate import migrate
from shared.db.pg_usage import PgUsageSink, asyncpg_dsn, is_postgres_url
from shared.db.usage import insert_usage
from shared.db.usage_rows import USAGE_COLUMNS
from shared.keys import USAGE_DEAD_STREAM, USAGE_STREAM
from tests.factories import make_fake_redis
from tests.shared.db_support import usage_row
from worker.usage_writer import UsageWriter

DATABASE = "llm_gateway_pg_usage"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DATABASE}"
DSN = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"
REPO_ROOT = Path(__file__).resolve().parents[2]


async def _drop(admin: asyncpg.Connection) -> None:
    await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[str]:
    """A database of this module's own, migrated to head, dropped afterwards."""
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await _drop(admin)
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
        await migrate(URL)
        yield URL
        await _drop(admin)
    finally:
        await admin.close()


@pytest.fixture
async def conn(database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(DSN)
    try:
        await connection.execute("TRUNCATE usage_record")
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def sink(conn: asyncpg.Connection) -> AsyncIterator[PgUsageSink]:
    sink = PgUsageSink(URL)
    try:
        yield sink
    finally:
        await sink.close()


@pytest.fixture
def new_york_local_time() -> Iterator[None]:
    """A process time zone other than UTC: a naive timestamp must still be stored as UTC, not as local time."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = previous
        time.tzset()


async def _stored(conn: asyncpg.Connection, request_id: str) -> dict[str, object]:
    record = await conn.fetchrow(f"SELECT {', '.join(USAGE_COLUMNS)} FROM usage_record WHERE request_id = $1",
                                 request_id)
    assert record is not None, request_id
    return dict(record)


async def _count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM usage_record"))


def test_postgres_urls_become_asyncpg_dsns() -> None:
    assert is_postgres_url("postgresql+asyncpg://u:p%40ss@db:5432/gw")
    assert is_postgres_url("postgres://db/gw")
    assert not is_postgres_url("sqlite+aiosqlite:////data/gateway.db")
    assert not is_postgres_url("postgresql")
    assert asyncpg_dsn("postgresql+asyncpg://u:p%40ss@db:5432/gw?ssl=require") == "postgresql://u:p%40ss@db:5432/gw?ssl=require"
    with pytest.raises(ValueError):
        asyncpg_dsn("sqlite+aiosqlite:///gateway.db")


async def test_insert_counts_new_rows_and_a_redelivered_batch_counts_zero(
    sink: PgUsageSink, conn: asyncpg.Connection
) -> None:
    assert await sink.insert([]) == 0
    batch = [usage_row(f"job_{index}") for index in range(5)]
    assert await sink.insert(batch) == 5
    assert await sink.insert(batch) == 0
    assert await _count(conn) == 5


async def test_mixed_batch_counts_only_new_rows(sink: PgUsageSink, conn: asyncpg.Connection) -> None:
    # A redelivered row is the same entry, created_at included (the idempotency key is (request_id, created_at)).
    when = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert await sink.insert([usage_row("old_1", created_at=when), usage_row("old_2", created_at=when)]) == 2
    mixed = [usage_row(name, created_at=when) for name in ("old_1", "new_1", "old_2", "new_2", "new_1")]
    assert await sink.insert(mixed) == 2
    assert {r["request_id"] for r in await conn.fetch("SELECT request_id FROM usage_record")} == {
        "old_1", "old_2", "new_1", "new_2"}


@pytest.mark.parametrize("bad", [
    {"tenant_id": None},
    {"created_at": [1]},
    {"created_at": "yesterday"},
    {"prompt_tokens": "ten"},
    {"prompt_tokens": 2**40},
    {"request_id": 5},
    {"cost_usd": "cheap"},
    {"provider": "open\x00ai"},
])
async def test_malformed_row_raises_and_stores_nothing_of_its_batch(
    sink: PgUsageSink, conn: asyncpg.Connection, bad: Mapping[str, object]
) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        await sink.insert([usage_row("good_1"), usage_row("bad", **bad), usage_row("good_2")])
    assert await _count(conn) == 0
    assert await sink.insert([usage_row("good_1")]) == 1  # the pool is still usable


async def test_unreachable_database_is_not_a_malformed_row() -> None:
    sink = PgUsageSink("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")  # constructing never connects
    try:
        with pytest.raises(Exception) as caught:
            await sink.insert([usage_row("job_1")])
        assert not isinstance(caught.value, ValueError | KeyError | TypeError)
    finally:
        await sink.close()


async def test_stored_values_match_insert_usage(
    sink: PgUsageSink, conn: asyncpg.Connection, new_york_local_time: None
) -> None:
    variants: list[dict[str, object]] = [
        {},
        {"created_at": 1_700_000_000.25, "error_code": "upstream_error", "status": "failed", "fallback_used": 1},
        {"created_at": datetime(2025, 3, 1, 12, 30, 5, 123456)},  # naive: UTC, as UTCDateTime reads it
        {"created_at": datetime(2025, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))},
        {"created_at": "2025-03-01T12:30:00+02:00", "cache_hit": True, "saved_cost_usd": 0.25},
        {"cost_usd": 1, "latency_ms": 7, "cached_prompt_tokens": 4.0, "saved_cost_usd": None, "unknown": "dropped"},
        {"dropped_params": "logit_bias,seed"},
        {"dropped_params": ["seed", "top_k"]},
        {"endpoint": "embeddings"},
    ]
    local_now = usage_row("unused")["created_at"]  # an aware local time, the same for both inserts
    engine = create_engine(URL)
    try:
        for index, overrides in enumerate(variants):
            row = {"created_at": local_now, **overrides}
            assert await insert_usage(engine, [usage_row(f"sa_{index}", **row)]) == 1
            assert await sink.insert([usage_row(f"pg_{index}", **row)]) == 1
            by_sqlalchemy = await _stored(conn, f"sa_{index}")
            by_asyncpg = await _stored(conn, f"pg_{index}")
            by_sqlalchemy.pop("request_id"), by_asyncpg.pop("request_id")
            assert by_asyncpg == by_sqlalchemy, overrides
            assert [type(v) for v in by_asyncpg.values()] == [type(v) for v in by_sqlalchemy.values()]
    finally:
        await engine.dispose()
    assert (await _stored(conn, "pg_2"))["created_at"] == datetime(2025, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)
    assert (await _stored(conn, "pg_0"))["dropped_params"] == ""
    assert (await _stored(conn, "pg_7"))["dropped_params"] == "seed,top_k"
    assert [(await _stored(conn, name))["endpoint"] for name in ("pg_0", "pg_8")] == ["chat", "embeddings"]


async def test_sink_refuses_an_unknown_endpoint(sink: PgUsageSink) -> None:
    with pytest.raises(ValueError, match="endpoint must be one of"):
        await sink.insert([usage_row("job_bad", endpoint="images")])


async def test_missing_created_at_is_now(sink: PgUsageSink, conn: asyncpg.Connection) -> None:
    row = dict(usage_row("job_now"))
    del row["created_at"]
    before = datetime.now(UTC)
    assert await sink.insert([row]) == 1
    created = (await _stored(conn, "job_now"))["created_at"]
    assert isinstance(created, datetime) and before - timedelta(seconds=1) <= created <= datetime.now(UTC)


async def test_usage_writer_sets_a_poison_row_aside_and_stores_the_rest(
    sink: PgUsageSink, conn: asyncpg.Connection
) -> None:
    redis = make_fake_redis()
    writer = UsageWriter(redis, sink.insert, consumer="w1", batch_size=100, interval_s=0.01)
    await writer.ensure_group()
    for row in (usage_row("job_1", created_at=1_700_000_000), usage_row("job_2", prompt_tokens="many", created_at=1),
                usage_row("job_3", created_at=1_700_000_001)):
        await redis.xadd(USAGE_STREAM, {"row": json.dumps(row)})
    assert await writer.flush_once(block_ms=None) == 2
    assert {r["request_id"] for r in await conn.fetch("SELECT request_id FROM usage_record")} == {"job_1", "job_3"}
    dead = await redis.xrange(USAGE_DEAD_STREAM)
    assert [json.loads(fields[b"row"])["request_id"] for _, fields in dead] == ["job_2"]


async def test_sent_thresholds_are_recorded_once_and_read_back_as_by_sqlalchemy(
        sink: PgUsageSink, conn: asyncpg.Connection) -> None:
    await conn.execute("TRUNCATE tenant CASCADE")
    await conn.execute("INSERT INTO tenant (id, name, budget_period, disabled, created_at, log_content_days) "
                       "VALUES ('ten_a', 'a', 'monthly', false, now(), 0)")
    await conn.execute("INSERT INTO budget_alert (id, tenant_id, url, thresholds, created_at) VALUES "
                       "('bal_1', 'ten_a', 'https://h/1', '50,100', now()), "
                       "('bal_2', 'ten_a', 'https://h/2', '80', now())")
    engine = create_engine(URL)
    try:
        by_sqlalchemy = SqlSentLog(engine)
        await sink.record_thresholds([SentThreshold("bal_1", "2026-12", 50, 1_000_000),
                                      SentThreshold("bal_gone", "2026-12", 50, 1_000_000)])  # deleted: skipped
        await by_sqlalchemy.record_thresholds([SentThreshold("bal_1", "2026-12", 50, 1_000_000),  # a repeat
                                               SentThreshold("bal_2", "2026-12", 80, 1_000_000),
                                               SentThreshold("bal_gone", "2026-12", 80, 1_000_000)])
        await sink.record_thresholds([SentThreshold("bal_1", "2026-12", 100, 2_000_000)])
        assert await conn.fetchval("SELECT count(*) FROM budget_alert_sent") == 3
        for reader in (sink, by_sqlalchemy):
            found = await reader.sent_thresholds(["bal_1", "bal_2"], "2026-12", 1_000_000)
            assert sorted(found, key=lambda item: item.alert_id) == [
                SentThreshold("bal_1", "2026-12", 50, 1_000_000), SentThreshold("bal_2", "2026-12", 80, 1_000_000)]
            assert await reader.sent_thresholds(["bal_1"], "2027-01", 1_000_000) == []
            assert await reader.sent_thresholds(["bal_1"], "2026-12", 2_000_000) == [
                SentThreshold("bal_1", "2026-12", 100, 2_000_000)]
    finally:
        await engine.dispose()
        await conn.execute("TRUNCATE tenant CASCADE")


def test_importing_the_worker_loads_neither_sqlalchemy_nor_sqlmodel() -> None:
    code = "import sys, worker.main; print(sorted(m for m in ('sqlalchemy', 'sqlmodel') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"
