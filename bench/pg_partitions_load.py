"""The PostgreSQL-partitions benchmark's data: a throw-away database (`llm_gateway_bench_partitions`) holding
the same tens of millions of usage rows twice, as the plain table of migration 0009 (schema `plain`) and as the
monthly-partitioned table of migration 0010 (schema `public`, made by running the real migration on it).

Rows are generated in the server (`INSERT ... SELECT generate_series`), spread evenly over `months` months
ending now, ids in time order as the sequence gives them; 1,000 tenants, 5 models, 3 keys and 2 tag values.
Indexes are built after the load, as migration 0010 does."""

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from alembic import command

from shared.db.migrate import alembic_config
from shared.db.pg_partitions import Month

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_DB = "llm_gateway_bench_partitions"
BENCH_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{BENCH_DB}"
BENCH_DSN = f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}"
TENANTS = 1_000
CHUNK = 2_000_000  # rows per INSERT: one statement per chunk keeps each transaction's WAL bounded

# $1: first row number, $2: last, $3: the oldest created_at, $4: seconds between consecutive rows.
GENERATE_SQL = """
INSERT INTO {table} (request_id, tenant_id, public_model, provider, model, prompt_tokens, completion_tokens,
    cost_usd, latency_ms, status, error_code, fallback_used, cache_hit, created_at, saved_cost_usd,
    cached_prompt_tokens, dropped_params, endpoint, key_id, end_user, tags)
SELECT 'job_' || md5(g::text), 'ten_' || (g * 7919 % {tenants}), (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet',
    'claude-haiku', 'o3'])[g % 5 + 1], CASE WHEN g % 3 = 0 THEN 'anthropic' ELSE 'openai' END, 'model-' || g % 5,
    g % 2000, g % 700, (g % 997) * 0.00001, 200 + g % 3000, CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'succeeded' END,
    CASE WHEN g % 50 = 0 THEN 'upstream_error' END, g % 40 = 0, g % 25 = 0,
    $3::timestamptz + (g - 1) * $4::float8 * interval '1 second', 0, g % 100, '', 'chat',
    'key_' || (g % 3), CASE WHEN g % 2 = 0 THEN 'user_' || (g % 97) END,
    jsonb_build_object('team', CASE WHEN g % 2 = 0 THEN 'search' ELSE 'chat' END)
FROM generate_series($1::int8, $2::int8) AS g"""  # nosec B608

PLAIN_INDEXES = (
    "ALTER TABLE plain.usage_record ADD CONSTRAINT pk_usage_record PRIMARY KEY (id)",
    "ALTER TABLE plain.usage_record ADD CONSTRAINT uq_usage_record_request_id UNIQUE (request_id)",
    "CREATE INDEX ix_usage_record_created_at ON plain.usage_record (created_at)",
    "CREATE INDEX ix_usage_record_tenant_id ON plain.usage_record (tenant_id)",
    "CREATE INDEX ix_usage_record_tenant_key ON plain.usage_record (tenant_id, key_id)",
    "CREATE INDEX ix_usage_record_tenant_user ON plain.usage_record (tenant_id, end_user)",
    "CREATE INDEX ix_usage_record_tags ON plain.usage_record USING gin (tags)",
)


@dataclass
class Loaded:
    rows: int
    oldest: datetime
    newest: datetime
    generate_s: float
    copy_s: float
    plain_indexes_s: float
    migration_0010_s: float
    plain_bytes: int
    partitioned_bytes: int
    partitions: int


async def recreate_database(drop_only: bool = False) -> None:
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        if not drop_only:
            await admin.execute(f'CREATE DATABASE "{BENCH_DB}"')
    finally:
        await admin.close()


async def _timed(connection: asyncpg.Connection, statements: tuple[str, ...] | list[str]) -> float:
    started = time.perf_counter()
    for statement in statements:
        await connection.execute(statement)
    return time.perf_counter() - started


async def _generate(connection: asyncpg.Connection, rows: int, oldest: datetime, step_s: float) -> float:
    """The rows into the 0009 table (public.usage_record, its indexes dropped first), in chunks."""
    await connection.execute("ALTER TABLE usage_record DROP CONSTRAINT uq_usage_record_request_id")
    for index in ("ix_usage_record_created_at", "ix_usage_record_tenant_id", "ix_usage_record_tenant_key",
                  "ix_usage_record_tenant_user", "ix_usage_record_tags"):
        await connection.execute(f"DROP INDEX {index}")
    started = time.perf_counter()
    sql = GENERATE_SQL.format(table="usage_record", tenants=TENANTS)
    for first in range(1, rows + 1, CHUNK):
        await connection.execute(sql, first, min(rows, first + CHUNK - 1), oldest, step_s)
        print(f"  generated {min(rows, first + CHUNK - 1):,} rows ({time.perf_counter() - started:.0f} s)")
    return time.perf_counter() - started


async def _relation_bytes(connection: asyncpg.Connection, schema: str) -> int:
    """Heap, TOAST and indexes of usage_record and its partitions in `schema`."""
    return int(await connection.fetchval(
        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname LIKE 'usage_record%'", schema))


async def load(rows: int, months: int) -> Loaded:
    """Create the database with `rows` rows spread over `months` months ending now, in both shapes."""
    await recreate_database()
    await asyncio.to_thread(command.upgrade, alembic_config(BENCH_URL), "0009")
    newest = datetime.now(UTC) - timedelta(minutes=1)
    oldest = Month.of(newest).plus(-months).start  # so the oldest partition holds a whole month
    step_s = (newest - oldest).total_seconds() / rows
    connection = await asyncpg.connect(BENCH_DSN, command_timeout=None)
    try:
        await connection.execute("SET synchronous_commit = off")  # the load only; the measured writes commit as usual
        generate_s = await _generate(connection, rows, oldest, step_s)
        started = time.perf_counter()
        await connection.execute("CREATE SCHEMA plain")
        await connection.execute("CREATE TABLE plain.usage_record (LIKE public.usage_record INCLUDING DEFAULTS)")
        await connection.execute("INSERT INTO plain.usage_record SELECT * FROM public.usage_record")
        copy_s = time.perf_counter() - started
        print(f"  copied to the plain table ({copy_s:.0f} s)")
        plain_indexes_s = await _timed(connection, PLAIN_INDEXES)
        print(f"  built the plain table's indexes ({plain_indexes_s:.0f} s)")
        # The 0009 table's own indexes are gone (dropped for the load): 0010 copies the rows and builds its own.
        started = time.perf_counter()
        await asyncio.to_thread(command.upgrade, alembic_config(BENCH_URL), "0010")
        migration_s = time.perf_counter() - started
        print(f"  migration 0010 ({migration_s:.0f} s)")
        await connection.execute("VACUUM ANALYZE plain.usage_record")
        await connection.execute("VACUUM ANALYZE public.usage_record")
        partitions = int(await connection.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.usage_record'::regclass"))
        return Loaded(rows=rows, oldest=oldest, newest=newest, generate_s=round(generate_s, 1),
                      copy_s=round(copy_s, 1), plain_indexes_s=round(plain_indexes_s, 1),
                      migration_0010_s=round(migration_s, 1), plain_bytes=await _relation_bytes(connection, "plain"),
                      partitioned_bytes=await _relation_bytes(connection, "public"), partitions=partitions)
    finally:
        await connection.close()
