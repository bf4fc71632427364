"""The PostgreSQL-partitions benchmark's measurements, each on the partitioned table (schema `public`) and on
the plain one (schema `plain`) in the same run, interleaved:
- the worker's writer: `PgUsageSink.insert` batches of new rows (created now, as the worker writes them), rows/s
  and per-batch latency; on the plain table with migration 0009's `ON CONFLICT (request_id)`;
- the request log and a usage report for one tenant, through the API's own functions (shared/db);
- retention of the oldest whole month: `drop_partitions_before` against the batched DELETE the worker ran
  before 0010 (10,000 rows a statement)."""

import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from bench.pg_partitions_load import BENCH_DSN, BENCH_URL, TENANTS
from shared.db.engine import create_session_factory
from shared.db.pg_partitions import Month, drop_partitions_before
from shared.db.pg_usage import INSERT_SQL_0009, PRUNE_BATCH, PgUsageSink
from shared.db.request_log import RequestLogFilters, read_request_log
from shared.db.usage import usage_report

SHAPES = ("partitioned", "plain")
SCHEMA = {"partitioned": "public", "plain": "plain"}
# The pre-0010 prune statement (shared/db/pg_usage.py PRUNE_SQL at migration 0009).
PRUNE_SQL_0009 = ("DELETE FROM usage_record WHERE id IN "
                  "(SELECT id FROM usage_record WHERE created_at < $1 LIMIT $2)")


@dataclass
class Timings:
    """Latencies in seconds of one measured case on one table shape, and the rows they moved."""

    seconds: list[float] = field(default_factory=list)
    rows: int = 0

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.seconds)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        total = sum(ordered)
        return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 2),
                "p99_ms": round(p99 * 1000, 2), "max_ms": round(ordered[-1] * 1000, 2),
                "rows_per_s": round(self.rows / total) if self.rows else 0, "total_s": round(total, 2)}


def _rows(count: int, rng: random.Random) -> list[dict[str, object]]:
    """Usage rows as the worker writes them: new job ids, created now."""
    now = datetime.now(UTC)
    return [{"request_id": f"job_{uuid.uuid4().hex}", "tenant_id": f"ten_{rng.randrange(TENANTS)}",
             "public_model": "gpt-4o", "provider": "openai", "model": "gpt-4o-2024-08-06",
             "prompt_tokens": rng.randrange(2000), "completion_tokens": rng.randrange(700), "cost_usd": 0.001,
             "latency_ms": rng.randrange(200, 3000), "status": "succeeded", "created_at": now,
             "key_id": f"key_{rng.randrange(3)}", "end_user": f"user_{rng.randrange(97)}",
             "tags": {"team": rng.choice(("search", "chat"))}} for _ in range(count)]


def sink_for(shape: str) -> PgUsageSink:
    sink = PgUsageSink(f"{BENCH_URL}?search_path={SCHEMA[shape]}")
    if shape == "plain":
        sink.insert_sql = INSERT_SQL_0009
    return sink


async def measure_writes(batch_sizes: list[int], rows_per_case: int, rounds: int,
                         rng: random.Random) -> dict[str, dict[int, Timings]]:
    """Per shape and batch size, the latency of each `insert` of `rows_per_case` rows a round."""
    sinks = {shape: sink_for(shape) for shape in SHAPES}
    found: dict[str, dict[int, Timings]] = {shape: {size: Timings() for size in batch_sizes} for shape in SHAPES}
    try:
        for sink in sinks.values():  # open the pools, warm the caches
            for _ in range(5):
                await sink.insert(_rows(100, rng))
        for round_index in range(rounds):
            order = SHAPES if round_index % 2 == 0 else tuple(reversed(SHAPES))
            for size in batch_sizes:
                for shape in order:
                    timings = found[shape][size]
                    for _ in range(max(1, rows_per_case // size)):
                        batch = _rows(size, rng)
                        started = time.perf_counter()
                        inserted = await sinks[shape].insert(batch)
                        timings.seconds.append(time.perf_counter() - started)
                        timings.rows += inserted
                        if inserted != size:
                            raise RuntimeError(f"{shape}: {inserted} of {size} rows inserted")
    finally:
        for sink in sinks.values():
            await sink.close()
    return found


def _engine(shape: str) -> AsyncEngine:
    return create_async_engine(BENCH_URL, connect_args={"server_settings": {"search_path": SCHEMA[shape]}})


Query = Callable[[AsyncSession, str, datetime], Awaitable[object]]


async def _log_last_day(session: AsyncSession, tenant: str, now: datetime) -> object:
    return await read_request_log(session, tenant, RequestLogFilters(since=now - timedelta(days=1)), limit=100,
                                  cursor=None)


async def _log_newest(session: AsyncSession, tenant: str, now: datetime) -> object:
    return await read_request_log(session, tenant, RequestLogFilters(), limit=100, cursor=None)


async def _report_30_days(session: AsyncSession, tenant: str, now: datetime) -> object:
    return await usage_report(session, tenant, 30)


QUERIES: dict[str, Query] = {
    "request log, a tenant's last day (since=now-1d, 100 a page)": _log_last_day,
    "request log, a tenant's newest page (no since, 100 a page)": _log_newest,
    "usage report, a tenant's last 30 days": _report_30_days,
}


async def measure_queries(repeat: int, rng: random.Random) -> dict[str, dict[str, Timings]]:
    """Each query `repeat` times per shape, alternating shapes, for random tenants (the same for both)."""
    engines = {shape: _engine(shape) for shape in SHAPES}
    found = {name: {shape: Timings() for shape in SHAPES} for name in QUERIES}
    try:
        sessions = {shape: create_session_factory(engine) for shape, engine in engines.items()}
        for name, query in QUERIES.items():
            for index in range(repeat + 3):  # the first 3 warm up and are not counted
                tenant, now = f"ten_{rng.randrange(TENANTS)}", datetime.now(UTC)
                for shape in (SHAPES if index % 2 == 0 else tuple(reversed(SHAPES))):
                    async with sessions[shape]() as session:
                        started = time.perf_counter()
                        await query(session, tenant, now)
                        if index >= 3:
                            found[name][shape].seconds.append(time.perf_counter() - started)
    finally:
        for engine in engines.values():
            await engine.dispose()
    return found


async def measure_retention(oldest: datetime) -> dict[str, dict[str, float]]:
    """Remove the oldest whole month from both tables: the partition dropped, against the batched DELETE."""
    cutoff = Month.of(oldest).end
    result: dict[str, dict[str, float]] = {}
    connection = await asyncpg.connect(BENCH_DSN, command_timeout=None)
    try:
        rows = int(await connection.fetchval("SELECT count(*) FROM public.usage_record WHERE created_at < $1",
                                             cutoff))
        started = time.perf_counter()
        estimate = await drop_partitions_before(connection, cutoff)
        result["partitioned"] = {"seconds": round(time.perf_counter() - started, 3), "rows": rows,
                                 "rows_estimated": estimate}
        await connection.execute("SET search_path = plain")
        started, deleted, statements = time.perf_counter(), 0, 0
        while True:
            count = int((await connection.execute(PRUNE_SQL_0009, cutoff, PRUNE_BATCH)).split()[-1])
            deleted, statements = deleted + count, statements + 1
            if count < PRUNE_BATCH:
                break
        result["plain"] = {"seconds": round(time.perf_counter() - started, 3), "rows": deleted,
                           "statements": statements}
        started = time.perf_counter()
        await connection.execute("VACUUM plain.usage_record")  # the dead rows' cost, paid later by autovacuum
        result["plain"]["vacuum_after_s"] = round(time.perf_counter() - started, 3)
    finally:
        await connection.close()
    return result
