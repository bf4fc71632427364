"""The worker's usage sink on PostgreSQL: usage rows written over a small plain asyncpg pool (and the record of
budget-alert thresholds sent, the worker's only other use of the database).

Why not `insert_usage` (shared/db/usage.py): the worker needs the database for little else, and loading
SQLAlchemy and SQLModel just for this insert cost the worker process ~30 MiB of its peak memory. The rows are
checked and completed by the same code (shared/db/usage_rows.py), so both paths store identical values.

A batch is ONE statement: each column is sent as one array parameter and `unnest` turns the arrays back into
rows, `ON CONFLICT (request_id, created_at) DO NOTHING` skips rows already stored (a redelivered batch inserts
0), and the command status ("INSERT 0 n") says how many were really written. The conflict key holds
`created_at` because the usage table is partitioned by month on it since migration 0010, and a partitioned
table's unique keys must hold its partition key; a job's row carries the same `created_at` on every delivery
(worker/usage_writer.py). A single statement is atomic, so a batch is stored entirely or not at all.
Malformed rows raise ValueError or TypeError, also for values of the wrong type or out of range
(asyncpg.DataError is re-raised as ValueError), which the usage writer (worker/usage_writer.py) sets aside as
poison rows; connection failures raise other errors, so an outage only delays the batch."""

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import asyncpg

from shared.budget_alert_check import SentThreshold
from shared.db.pg_partitions import drop_partitions_before, ensure_partitions
from shared.db.usage_rows import CONTENT_COLUMNS, USAGE_COLUMNS, content_rows, normalise_usage_row

__all__ = ["COLUMN_TYPES", "PgUsageSink", "asyncpg_dsn", "is_postgres_url"]

# The PostgreSQL type of each column (migrations 0001, 0002, 0004, 0005, 0007): each parameter's array type.
COLUMN_TYPES: dict[str, str] = {
    "request_id": "text", "tenant_id": "text", "public_model": "text", "provider": "text", "model": "text",
    "prompt_tokens": "int4", "completion_tokens": "int4", "cost_usd": "float8", "latency_ms": "int4",
    "status": "text", "error_code": "text", "fallback_used": "bool", "cache_hit": "bool",
    "saved_cost_usd": "float8", "cached_prompt_tokens": "int4", "dropped_params": "text",
    "endpoint": "text", "created_at": "timestamptz", "key_id": "text", "end_user": "text", "tags": "jsonb",
}
if set(COLUMN_TYPES) != set(USAGE_COLUMNS):  # a column added to one list only is a bug: fail at import
    raise RuntimeError("pg_usage.COLUMN_TYPES and usage_rows.USAGE_COLUMNS disagree")

# Built from the constant column lists above, never from input: the values travel as bind parameters.
_UNNEST_ARGS = ", ".join(f"${i}::{COLUMN_TYPES[c]}[]" for i, c in enumerate(USAGE_COLUMNS, 1))
INSERT_SQL = f"INSERT INTO usage_record ({', '.join(USAGE_COLUMNS)}) SELECT * FROM unnest({_UNNEST_ARGS}) ON CONFLICT (request_id, created_at) DO NOTHING"  # noqa: E501  # nosec B608
# The same on the plain table of migration 0009 (unique on request_id alone): the partitions benchmark's baseline.
INSERT_SQL_0009 = INSERT_SQL.replace("ON CONFLICT (request_id, created_at)", "ON CONFLICT (request_id)")
CONTENT_TYPES = {"request_id": "text", "tenant_id": "text", "created_at": "timestamptz",
                 "expires_at": "timestamptz", "request": "jsonb", "answer": "text"}
_CONTENT_ARGS = ", ".join(f"${i}::{CONTENT_TYPES[c]}[]" for i, c in enumerate(CONTENT_COLUMNS, 1))
CONTENT_SQL = f"INSERT INTO request_content ({', '.join(CONTENT_COLUMNS)}) SELECT * FROM unnest({_CONTENT_ARGS}) ON CONFLICT (request_id) DO NOTHING"  # noqa: E501  # nosec B608
# `created_at < $1` outside the subquery too: PostgreSQL then leaves every partition newer than the cutoff out
# of the plan; (id, created_at) is the partitioned table's primary key.
PRUNE_SQL = ("DELETE FROM usage_record WHERE created_at < $1 AND (id, created_at) IN "
             "(SELECT id, created_at FROM usage_record WHERE created_at < $1 LIMIT $2)")
PRUNE_CONTENT_SQL = ("DELETE FROM request_content WHERE request_id IN "
                     "(SELECT request_id FROM request_content WHERE expires_at < $1 LIMIT $2)")
# Budget-alert thresholds sent (shared/budget_alert_check.py `SentLog`); the join skips an alert deleted meanwhile.
SENT_SQL = ("SELECT alert_id, threshold_pct FROM budget_alert_sent WHERE alert_id = ANY($1::text[]) "
            "AND period_id = $2 AND budget_micros = $3")
RECORD_SENT_SQL = ("INSERT INTO budget_alert_sent (alert_id, period_id, threshold_pct, budget_micros, sent_at) "
                   "SELECT s.alert_id, s.period_id, s.pct, s.budget, $5 FROM unnest($1::text[], $2::text[], "
                   "$3::int4[], $4::int8[]) AS s(alert_id, period_id, pct, budget) "
                   "JOIN budget_alert a ON a.id = s.alert_id ON CONFLICT DO NOTHING")
PRUNE_BATCH = 10_000  # rows per DELETE, as shared/db/request_log.py: no single huge lock on the table
_POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_postgres_url(url: str) -> bool:
    """True for `postgresql://`, `postgres://` and any `postgresql+driver://` URL."""
    scheme, separator, _ = url.partition("://")
    return bool(separator) and scheme.split("+", 1)[0].lower() in _POSTGRES_SCHEMES


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy-style URL (`postgresql+asyncpg://...`) as a DSN asyncpg accepts (`postgresql://...`)."""
    if not is_postgres_url(url):
        raise ValueError("not a PostgreSQL database URL")
    scheme, _, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}://{rest}"


def _as_utc(value: datetime) -> datetime:
    """As the UTCDateTime column type (shared/db/tables.py) stores it: a naive value is taken to be UTC
    already. asyncpg alone would read a naive value as local time."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _columns(rows: Sequence[Mapping[str, object]]) -> list[list[object]]:
    """The normalised rows as one list per column, in USAGE_COLUMNS order."""
    now = datetime.now(UTC)
    values = [normalise_usage_row(row, now) for row in rows]
    columns = [[value[name] for value in values] for name in USAGE_COLUMNS]
    created_at = columns[USAGE_COLUMNS.index("created_at")]
    created_at[:] = [_as_utc(value) for value in created_at]  # type: ignore[arg-type]
    tags = columns[USAGE_COLUMNS.index("tags")]
    tags[:] = [json.dumps(value) for value in tags]  # asyncpg takes jsonb as its JSON text
    return columns


def _content_columns(rows: Sequence[Mapping[str, object]]) -> list[list[object]] | None:
    """The request_content rows (shared/db/usage_rows.py `content_rows`) one list per column; None if none."""
    contents = content_rows(rows, datetime.now(UTC))
    if not contents:
        return None
    columns = [[content[name] for content in contents] for name in CONTENT_COLUMNS]
    for name in ("created_at", "expires_at"):
        column = columns[CONTENT_COLUMNS.index(name)]
        column[:] = [_as_utc(value) for value in column]  # type: ignore[arg-type]
    requests = columns[CONTENT_COLUMNS.index("request")]
    requests[:] = [json.dumps(value) for value in requests]
    return columns


def _inserted_count(status: str) -> int:
    """`INSERT 0 12` -> 12."""
    parts = status.split()
    if len(parts) != 3 or parts[0] != "INSERT":
        raise RuntimeError(f"unexpected command status {status!r}")
    return int(parts[2])


class PgUsageSink:
    """`insert(rows)` has the semantics of `insert_usage`. The pool is opened on the first insert, not at
    construction, so a worker starts while PostgreSQL is down (as it did with a SQLAlchemy engine) and the
    usage writer's retries open it once the database is back."""

    insert_sql = INSERT_SQL  # INSERT_SQL_0009 for a table at migration 0009 (bench/pg_partitions.py only)

    def __init__(self, database_url: str, *, min_size: int = 1, max_size: int = 4) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._closed:
                raise RuntimeError("usage sink is closed")
            if self._pool is None:
                # A failure leaves no pool behind; the next insert tries again.
                self._pool = await asyncpg.create_pool(self._dsn, min_size=self._min_size, max_size=self._max_size)
            return self._pool

    async def insert(self, rows: Sequence[Mapping[str, object]]) -> int:
        """Insert usage rows in one statement, skipping any whose `request_id` is already stored.

        Returns how many rows were actually inserted, so a redelivered batch returns 0."""
        if not rows:
            return 0
        columns = _columns(rows)  # a malformed row raises here, before any connection is used
        contents = _content_columns(rows)
        pool = await self._get_pool()
        try:
            if contents is None:
                status = await pool.execute(self.insert_sql, *columns)
            else:  # opt-in prompt and answer text, in the same transaction as its usage row
                async with pool.acquire() as connection, connection.transaction():
                    status = await connection.execute(self.insert_sql, *columns)
                    await connection.execute(CONTENT_SQL, *contents)
        except asyncpg.DataError as exc:
            # A value asyncpg cannot encode (a string for an integer) or that PostgreSQL rejects (SQLSTATE
            # class 22: out of range, a NUL byte): the rows are at fault, not the database. As a ValueError the
            # usage writer finds and sets aside the bad row instead of retrying the batch forever.
            raise ValueError(f"usage batch has a value the database rejects: {exc}") from exc
        return _inserted_count(status)

    async def prune(self, usage_before: datetime | None, now: datetime) -> int:
        """The retention pass (worker/retention.py): keep the usage table's monthly partitions created ahead of
        `now`, drop the partitions wholly older than `usage_before` (the request log's retention; None keeps
        every record), then delete in batches the older records left (in DEFAULT and the partly expired month)
        and the request content expired at `now`; how many rows went (dropped partitions as estimated)."""
        pool = await self._get_pool()
        async with pool.acquire() as connection:
            await ensure_partitions(connection, now)
            removed = 0 if usage_before is None else await drop_partitions_before(connection, _as_utc(usage_before))
        for sql, cutoff in ((PRUNE_SQL, usage_before), (PRUNE_CONTENT_SQL, now)):
            while cutoff is not None:
                deleted = int((await pool.execute(sql, _as_utc(cutoff), PRUNE_BATCH)).split()[-1])
                removed += deleted
                if deleted < PRUNE_BATCH:
                    break
        return removed

    async def sent_thresholds(self, alert_ids: Sequence[str], period_id: str,
                              budget_micros: int) -> list[SentThreshold]:
        """The thresholds of these budget alerts sent in the period for this budget amount."""
        pool = await self._get_pool()
        rows = await pool.fetch(SENT_SQL, list(alert_ids), period_id, budget_micros)
        return [SentThreshold(row["alert_id"], period_id, row["threshold_pct"], budget_micros) for row in rows]

    async def record_thresholds(self, sent: Sequence[SentThreshold]) -> None:
        """Record budget-alert thresholds sent, once each (one statement)."""
        if not sent:
            return
        pool = await self._get_pool()
        await pool.execute(RECORD_SENT_SQL, [item.alert_id for item in sent], [item.period_id for item in sent],
                           [item.threshold_pct for item in sent], [item.budget_micros for item in sent],
                           datetime.now(UTC))

    async def close(self) -> None:
        """Close the pool, waiting for a running insert to finish; later inserts raise."""
        async with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
