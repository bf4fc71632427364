"""The partitioned usage table at work on real PostgreSQL (database `test`, migrated to head): the worker's
writes land in their month's partition (DEFAULT when there is none), a redelivered batch inserts nothing, also
when it is redelivered in the next month and when its entries carry no created_at; partitions are created ahead,
by several workers at once, and take their rows out of DEFAULT; retention drops whole months and deletes the
rest."""

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from shared.db.migrate import migrate
from shared.db.pg_partitions import (
    DEFAULT_PARTITION,
    Month,
    drop_partitions_before,
    ensure_partitions,
    partition_months,
)
from shared.db.pg_usage import PgUsageSink
from shared.keys import USAGE_STREAM
from tests.factories import make_fake_redis
from tests.shared.db_support import POSTGRES_URL, reset_database, usage_row
from worker.usage_writer import UsageWriter

DSN = "postgresql://postgres@127.0.0.1:5432/test"
# The last microsecond of December 2026 and the first of January 2027 (UTC).
LAST_OF_DECEMBER = datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
FIRST_OF_JANUARY = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.fixture
async def conn() -> AsyncIterator[asyncpg.Connection]:
    await reset_database(POSTGRES_URL)
    await migrate(POSTGRES_URL)
    connection = await asyncpg.connect(DSN)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def sink(conn: asyncpg.Connection) -> AsyncIterator[PgUsageSink]:
    sink = PgUsageSink(POSTGRES_URL)
    try:
        yield sink
    finally:
        await sink.close()


async def _placed(conn: asyncpg.Connection) -> dict[str, str]:
    """request_id -> the partition holding it."""
    rows = await conn.fetch("SELECT request_id, tableoid::regclass::text AS part FROM usage_record")
    return {row["request_id"]: row["part"] for row in rows}


async def test_rows_land_in_their_month_and_without_a_partition_in_default(
        conn: asyncpg.Connection, sink: PgUsageSink) -> None:
    await ensure_partitions(conn, datetime(2026, 12, 1, tzinfo=UTC), months_ahead=1)
    far = datetime(2031, 5, 10, tzinfo=UTC)
    rows = [usage_row("dec", created_at=LAST_OF_DECEMBER), usage_row("jan", created_at=FIRST_OF_JANUARY),
            usage_row("far", created_at=far)]
    assert await sink.insert(rows) == 3
    assert await _placed(conn) == {"dec": "usage_record_p202612", "jan": "usage_record_p202701",
                                   "far": DEFAULT_PARTITION}


async def test_a_redelivered_batch_inserts_nothing(conn: asyncpg.Connection, sink: PgUsageSink) -> None:
    batch = [usage_row(f"job_{i}", created_at=LAST_OF_DECEMBER - timedelta(days=i * 20)) for i in range(5)]
    assert await sink.insert(batch) == 5
    assert await sink.insert(batch) == 0
    assert await sink.insert(list(reversed(batch))) == 0
    assert await conn.fetchval("SELECT count(*) FROM usage_record") == 5


class CommitThenDrop:
    """The database commits the first batch and the connection drops before the writer hears of it, as when
    PostgreSQL restarts right after a commit: the writer keeps the entries and delivers them again."""

    def __init__(self, sink: PgUsageSink) -> None:
        self.sink = sink
        self.results: list[int] = []

    async def insert(self, rows: Sequence[Mapping[str, object]]) -> int:
        inserted = await self.sink.insert(rows)
        self.results.append(inserted)
        if len(self.results) == 1:
            raise ConnectionResetError("connection lost after the commit")
        return inserted


@pytest.mark.parametrize("with_created_at", [True, False])
async def test_a_batch_redelivered_across_a_month_boundary_inserts_nothing(
        conn: asyncpg.Connection, sink: PgUsageSink, with_created_at: bool) -> None:
    """Entries of December's last millisecond, delivered again in January: the same created_at both times,
    whether the entry carries it (the gateway's own rows) or not (then the entry id's time)."""
    redis, database = make_fake_redis(), CommitThenDrop(sink)
    writer = UsageWriter(redis, database.insert, consumer="w1", batch_size=100, interval_s=0.01)
    await writer.ensure_group()
    december_ms = int(LAST_OF_DECEMBER.timestamp() * 1000)
    for index in range(3):
        row = {key: value for key, value in usage_row(f"job_{index}").items() if key != "created_at"}
        if with_created_at:
            row["created_at"] = december_ms / 1000  # a float of epoch seconds, as the gateway writes it
        await redis.xadd(USAGE_STREAM, {"row": json.dumps(row)}, id=f"{december_ms}-{index}")
    with pytest.raises(ConnectionResetError):
        await writer.flush_once(block_ms=None)
    assert await writer.flush_once(block_ms=None) == 0  # delivered again: all three already stored
    assert database.results == [3, 0]
    assert await redis.xlen(USAGE_STREAM) == 0
    assert set((await _placed(conn)).values()) == {"usage_record_p202612"}
    assert len(await _placed(conn)) == 3


async def test_partitions_are_created_ahead_once_and_take_their_rows_out_of_default(
        conn: asyncpg.Connection, sink: PgUsageSink) -> None:
    may = datetime(2031, 5, 10, tzinfo=UTC)
    later = datetime(2032, 1, 1, tzinfo=UTC)
    await sink.insert([usage_row("may", created_at=may), usage_row("later", created_at=later)])
    assert (await _placed(conn))["may"] == DEFAULT_PARTITION

    created = await ensure_partitions(conn, datetime(2031, 3, 31, 23, 0, tzinfo=UTC), months_ahead=3)
    assert created == ["usage_record_p203103", "usage_record_p203104", "usage_record_p203105",
                       "usage_record_p203106"]
    assert await _placed(conn) == {"may": "usage_record_p203105", "later": DEFAULT_PARTITION}
    assert await ensure_partitions(conn, datetime(2031, 3, 31, 23, 0, tzinfo=UTC), months_ahead=3) == []
    # The moved row is still the same idempotency key: redelivered, it inserts nothing.
    assert await sink.insert([usage_row("may", created_at=may)]) == 0
    # The moved partition has every index of the table (attached with it).
    indexes = await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE tablename = 'usage_record_p203105'")
    assert indexes == 7


async def test_several_workers_creating_partitions_at_once_create_each_once(conn: asyncpg.Connection) -> None:
    before = set(await partition_months(conn))
    now = datetime(2033, 7, 15, tzinfo=UTC)
    connections = [await asyncpg.connect(DSN) for _ in range(4)]
    try:
        results = await asyncio.gather(*(ensure_partitions(c, now, months_ahead=5) for c in connections))
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    created = sorted(name for names in results for name in names)
    expected = [Month(2033, 7).plus(ahead).partition for ahead in range(6)]
    assert created == expected  # every month once, by whichever worker came first
    assert set(await partition_months(conn)) == before | {Month(2033, 7).plus(ahead) for ahead in range(6)}


async def test_retention_drops_whole_old_months_and_deletes_the_rest(
        conn: asyncpg.Connection, sink: PgUsageSink) -> None:
    await ensure_partitions(conn, datetime(2026, 1, 1, tzinfo=UTC), months_ahead=11)  # January to December
    rows = [usage_row(f"m{month:02d}", created_at=datetime(2026, month, 15, tzinfo=UTC)) for month in range(1, 13)]
    rows += [usage_row("jun_early", created_at=datetime(2026, 6, 5, tzinfo=UTC)),
             usage_row("old_default", created_at=datetime(2024, 2, 1, tzinfo=UTC)),
             usage_row("far_default", created_at=datetime(2031, 2, 1, tzinfo=UTC))]
    assert await sink.insert(rows) == 15
    await conn.execute("ANALYZE usage_record")

    cutoff = datetime(2026, 6, 10, tzinfo=UTC)
    removed = await sink.prune(cutoff, datetime(2026, 12, 5, tzinfo=UTC))

    months = await partition_months(conn)
    assert months[0] == Month(2026, 6)  # January to May dropped whole; June only partly past the cutoff
    assert set(await _placed(conn)) == {f"m{month:02d}" for month in range(6, 13)} | {"far_default"}
    assert removed == 7  # five dropped months of one row each (as analysed), jun_early and old_default deleted
    assert await sink.prune(cutoff, datetime(2026, 12, 5, tzinfo=UTC)) == 0


async def test_drop_partitions_keeps_every_month_that_reaches_past_the_cutoff(conn: asyncpg.Connection) -> None:
    await ensure_partitions(conn, datetime(2026, 1, 1, tzinfo=UTC), months_ahead=2)
    assert await drop_partitions_before(conn, datetime(2026, 3, 1, tzinfo=UTC)) == 0  # empty tables
    assert [m for m in await partition_months(conn) if m.year == 2026][:2] == [Month(2026, 3), Month(2026, 12)]


async def test_retention_of_zero_days_drops_nothing_but_still_creates_partitions_ahead(
        conn: asyncpg.Connection, sink: PgUsageSink) -> None:
    await sink.insert([usage_row("old", created_at=datetime(2020, 1, 1, tzinfo=UTC))])
    await sink.prune(None, datetime(2034, 2, 1, tzinfo=UTC))
    assert Month(2034, 5) in await partition_months(conn)
    assert await _placed(conn) == {"old": DEFAULT_PARTITION}


def test_months_wrap_around_the_year() -> None:
    assert Month(2026, 11).plus(3) == Month(2027, 2)
    assert Month(2027, 1).plus(-1) == Month(2026, 12)
    assert Month.of(datetime(2026, 12, 31, 23, 30, tzinfo=UTC) + timedelta(hours=1)) == Month(2027, 1)
    assert Month(2026, 12).end == FIRST_OF_JANUARY
