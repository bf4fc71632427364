"""Migration 0010 on real PostgreSQL (database `test`), from 0009 with a year and more of usage rows: every row
is kept with its id, the request log, the usage reports and the grouped reports answer exactly as before, the
table is partitioned by month with a DEFAULT partition, its indexes are there (the GIN tag index included), the
id sequence continues; and the downgrade gives back a plain table with every row. On SQLite 0010 changes
nothing (tests/shared/test_db.py checks the schema against the models on both backends)."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from shared.db.engine import create_engine, create_session_factory
from shared.db.migrate import alembic_config, migrate
from shared.db.pg_partitions import DEFAULT_PARTITION, Month, partition_months
from shared.db.request_log import RequestLogFilters, read_request_log
from shared.db.usage import usage_report
from shared.db.usage_groups import UsageFilters, grouped_usage
from tests.shared.db_support import POSTGRES_URL, reset_database

DSN = "postgresql://postgres@127.0.0.1:5432/test"
ROWS = 6000
# One row every 97 minutes back from now: about 13 months. 30 and 400 days are not multiples of 97 minutes, so
# no row sits within minutes of a report's window edge, and a window moving while the test runs is harmless.
SEED_SQL = f"""
INSERT INTO usage_record (request_id, tenant_id, public_model, provider, model, prompt_tokens, completion_tokens,
    cost_usd, latency_ms, status, error_code, fallback_used, cache_hit, created_at, saved_cost_usd,
    cached_prompt_tokens, dropped_params, endpoint, key_id, end_user, tags)
SELECT 'job_' || g, CASE WHEN g % 3 = 0 THEN 'ten_b' ELSE 'ten_a' END,
    CASE WHEN g % 2 = 0 THEN 'gpt-4o' ELSE 'claude' END, 'openai', 'm-' || (g % 4), g % 50, g % 7,
    (g % 13) * 0.001, g % 100, CASE WHEN g % 11 = 0 THEN 'failed' ELSE 'succeeded' END,
    CASE WHEN g % 11 = 0 THEN 'upstream_error' END, g % 5 = 0, g % 17 = 0,
    $1::timestamptz - g * interval '97 minutes',
    (g % 17 = 0)::int * 0.002, g % 3, '', CASE WHEN g % 9 = 0 THEN 'embeddings' ELSE 'chat' END,
    'key_' || (g % 3), CASE WHEN g % 4 = 0 THEN NULL ELSE 'user_' || (g % 4) END,
    jsonb_build_object('team', 'team_' || (g % 2))
FROM generate_series(1, {ROWS}) AS g"""  # nosec B608


async def _at_0009_with_rows() -> None:
    await reset_database(POSTGRES_URL)
    await asyncio.to_thread(command.upgrade, alembic_config(POSTGRES_URL), "0009")
    connection = await asyncpg.connect(DSN)
    try:
        await connection.execute(SEED_SQL, datetime.now(UTC))
    finally:
        await connection.close()


@pytest.fixture
async def conn() -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(DSN)
    try:
        yield connection
    finally:
        await connection.close()


async def _rows(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch("SELECT * FROM usage_record ORDER BY id")]


async def _log_pages(session: Any, filters: RequestLogFilters, pages: int = 4) -> list[dict[str, Any]]:
    """The first pages of tenant ten_a's request log, following the cursors."""
    found, cursor = [], None
    for _ in range(pages):
        page = await read_request_log(session, "ten_a", filters, limit=100, cursor=cursor)
        found.append(page.model_dump())
        cursor = page.next_cursor
    return found


def _rounded(value: Any) -> Any:
    """`value` with every float rounded to 9 places: a SUM of float8 depends on the order rows are read in (one
    table, or partition after partition), in the last bits only. Counts, tokens and the grouped reports'
    integer micro-dollars stay exact."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


async def _answers() -> list[Any]:
    """What the request log and the usage reports answer over the seeded rows."""
    engine = create_engine(POSTGRES_URL)
    try:
        async with create_session_factory(engine)() as session:
            since = datetime.now(UTC) - timedelta(days=60)
            return _rounded([
                await _log_pages(session, RequestLogFilters()),
                await _log_pages(session, RequestLogFilters(tags={"team": "team_1"}, model="gpt-4o")),
                await _log_pages(session, RequestLogFilters(since=since, until=since + timedelta(days=20))),
                (await usage_report(session, "ten_a", 30)).model_dump(),
                (await usage_report(session, "ten_b", 400)).model_dump(),
                (await grouped_usage(session, "ten_a", 400, ["model", "status", "key"],
                                     UsageFilters(tags={"team": "team_0"}))).model_dump(),
                (await grouped_usage(session, "ten_b", 400, ["day"], UsageFilters(user="user_1"))).model_dump(),
            ])
    finally:
        await engine.dispose()


async def _indexes(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'usage_record'")
    return {row["indexname"]: row["indexdef"].split(" USING ", 1)[1] for row in rows}


async def test_upgrade_keeps_every_row_and_every_answer(conn: asyncpg.Connection) -> None:
    await _at_0009_with_rows()
    rows_before, answers_before = await _rows(conn), await _answers()
    assert len(rows_before) == ROWS and answers_before[3]["totals"]["requests"] > 0

    await migrate(POSTGRES_URL)

    assert await _rows(conn) == rows_before  # every column of every row, ids included
    assert await _answers() == answers_before
    # Each row in its month's partition; nothing left in DEFAULT, as every month holding rows got one.
    placed = await conn.fetch("SELECT tableoid::regclass::text AS part, created_at FROM usage_record")
    assert all(row["part"] == Month.of(row["created_at"]).partition for row in placed)
    months = await partition_months(conn)
    now = Month.of(datetime.now(UTC))
    assert months[0] == Month.of(min(row["created_at"] for row in rows_before))
    assert months[-1] == now.plus(3) and len(months) == len(set(months))
    assert await conn.fetchval(f"SELECT count(*) FROM {DEFAULT_PARTITION}") == 0


async def test_upgrade_keeps_the_indexes_with_the_partition_key_in_the_unique_ones(conn: asyncpg.Connection) -> None:
    await _at_0009_with_rows()
    await migrate(POSTGRES_URL)
    assert await _indexes(conn) == {
        "pk_usage_record": "btree (id, created_at)",
        "uq_usage_record_request_id": "btree (request_id, created_at)",
        "ix_usage_record_created_at": "btree (created_at)",
        "ix_usage_record_tenant_id": "btree (tenant_id)",
        "ix_usage_record_tenant_key": "btree (tenant_id, key_id)",
        "ix_usage_record_tenant_user": "btree (tenant_id, end_user)",
        "ix_usage_record_tags": "gin (tags)",
    }
    assert await conn.fetchval("SELECT partstrat::text FROM pg_partitioned_table "
                               "WHERE partrelid = 'usage_record'::regclass") == "r"
    # Each partition has every index, so a tag filter uses the GIN index in the partitions it reads.
    count = await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE tablename = $1", DEFAULT_PARTITION)
    assert count == 7


async def test_upgrade_lets_the_id_sequence_continue(conn: asyncpg.Connection) -> None:
    await _at_0009_with_rows()
    await migrate(POSTGRES_URL)
    new_id = await conn.fetchval(
        "INSERT INTO usage_record (request_id, tenant_id, public_model, provider, model, prompt_tokens, "
        "completion_tokens, cost_usd, latency_ms, status, fallback_used, cache_hit, created_at) VALUES "
        "('job_new', 'ten_a', 'gpt-4o', 'openai', 'm', 1, 1, 0.1, 1, 'succeeded', false, false, now()) RETURNING id")
    assert new_id == ROWS + 1
    owner = await conn.fetchval("SELECT d.refobjid::regclass::text FROM pg_depend d WHERE d.objid = "
                                "'usage_record_id_seq'::regclass AND d.deptype = 'a'")
    assert owner == "usage_record"  # dropping the table drops its sequence, as before


async def test_downgrade_gives_back_a_plain_table_with_every_row(conn: asyncpg.Connection) -> None:
    await _at_0009_with_rows()
    rows_before, answers_before = await _rows(conn), await _answers()
    await migrate(POSTGRES_URL)
    await asyncio.to_thread(command.downgrade, alembic_config(POSTGRES_URL), "0009")
    assert await conn.fetchval("SELECT relkind::text FROM pg_class WHERE oid = 'usage_record'::regclass") == "r"
    assert await conn.fetchval("SELECT count(*) FROM pg_class WHERE relname LIKE 'usage_record_p%' "
                               "OR relname = $1", DEFAULT_PARTITION) == 0
    assert await _rows(conn) == rows_before
    assert await _answers() == answers_before
    assert (await _indexes(conn))["uq_usage_record_request_id"] == "btree (request_id)"
    assert (await _indexes(conn))["pk_usage_record"] == "btree (id)"
    next_id = await conn.fetchval("SELECT nextval('usage_record_id_seq')")
    assert next_id == ROWS + 1
    await migrate(POSTGRES_URL)  # and up again
    assert await _rows(conn) == rows_before


async def test_downgrade_refuses_a_request_id_stored_twice_and_changes_nothing(conn: asyncpg.Connection) -> None:
    """Only a row written by hand with another created_at can repeat a request id; the plain table's unique
    key cannot hold both, so the downgrade fails whole instead of dropping one."""
    await _at_0009_with_rows()
    await migrate(POSTGRES_URL)
    await conn.execute("INSERT INTO usage_record (request_id, tenant_id, public_model, provider, model, "
                       "prompt_tokens, completion_tokens, cost_usd, latency_ms, status, fallback_used, cache_hit, "
                       "created_at) SELECT request_id, tenant_id, public_model, provider, model, prompt_tokens, "
                       "completion_tokens, cost_usd, latency_ms, status, fallback_used, cache_hit, "
                       "created_at + interval '1 second' FROM usage_record WHERE request_id = 'job_1'")
    with pytest.raises(Exception, match="uq_usage_record_request_id"):
        await asyncio.to_thread(command.downgrade, alembic_config(POSTGRES_URL), "0009")
    head = ScriptDirectory.from_config(alembic_config(POSTGRES_URL)).get_current_head()
    assert await conn.fetchval("SELECT version_num FROM alembic_version") == head  # the whole downgrade undone
    assert await conn.fetchval("SELECT count(*) FROM usage_record") == ROWS + 1
