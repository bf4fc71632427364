"""Upkeep of the usage table's monthly partitions on PostgreSQL (migration 0010), over plain asyncpg like the
worker's usage sink (shared/db/pg_usage.py), which calls it from the retention loop (worker/retention.py).

- `ensure_partitions` creates the partitions of the current month and MONTHS_AHEAD months after it, so the
  writer's rows land in their month's partition. A row with no partition for its month goes to the DEFAULT
  partition (never refused); when its month's partition is created, the rows of that month are moved out of
  DEFAULT into it in the same transaction (PostgreSQL refuses to create a partition while DEFAULT holds rows of
  its range). Creating several months at once, or several workers at once, is safe: one transaction under a
  transaction-scoped advisory lock, and a partition is created only if its name is not there yet.
- `drop_partitions_before` drops the month partitions wholly older than the retention cutoff: one catalog
  operation instead of deleting millions of rows (and the dead tuples and WAL of each). Rows older than the
  cutoff in DEFAULT and in the partly expired month are left to the batched DELETE (shared/db/pg_usage.py).

Partitions are named `usage_record_pYYYYMM` and cover one UTC calendar month; the name is what this module
reads back, so a partition made by hand under another name is neither dropped nor recreated.
Both take locks with a `lock_timeout`: attaching takes an ACCESS EXCLUSIVE lock on DEFAULT and dropping one on
the usage table, and a wait behind a long report would queue every insert behind it. On a timeout the
statement fails, the retention loop logs it and tries again next interval; nothing is lost meanwhile (rows of a
missing month go to DEFAULT, rows past retention are deleted by the batched DELETE)."""

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy

__all__ = ["DEFAULT_PARTITION", "MONTHS_AHEAD", "Month", "drop_partitions_before", "ensure_partitions",
           "is_partitioned", "partition_months"]

logger = logging.getLogger(__name__)

TABLE = "usage_record"
DEFAULT_PARTITION = "usage_record_default"
MONTHS_AHEAD = 3  # as migration 0010 creates them: a quarter's margin over the retention loop's interval
LOCK_TIMEOUT_MS = 5_000
# Serialises partition upkeep between workers (any fixed number, distinct from the migrations' lock).
PARTITION_LOCK_ID = 0x6C6C7031
_NAME = re.compile(r"^usage_record_p(\d{4})(\d{2})$")
_LIST_SQL = ("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
             "WHERE i.inhparent = to_regclass($1)")
# A connection of its own or one lent by a pool (the usage sink's).
Connection = asyncpg.Connection | PoolConnectionProxy
_PARTITIONED_SQL = "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass($1))"


@dataclass(frozen=True, order=True)
class Month:
    """A UTC calendar month: the range of one partition."""

    year: int
    month: int

    @classmethod
    def of(cls, moment: datetime) -> "Month":
        utc = moment.astimezone(UTC)
        return cls(utc.year, utc.month)

    def plus(self, months: int) -> "Month":
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.plus(1).start

    @property
    def partition(self) -> str:
        return f"{TABLE}_p{self.year:04d}{self.month:02d}"


def _month_of_name(name: str) -> Month | None:
    found = _NAME.match(name)
    return Month(int(found.group(1)), int(found.group(2))) if found else None


async def is_partitioned(connection: Connection) -> bool:
    """True once migration 0010 has run (False before it, where there is nothing to keep up)."""
    return bool(await connection.fetchval(_PARTITIONED_SQL, TABLE))


async def _partition_names(connection: Connection) -> set[str]:
    return {row["relname"] for row in await connection.fetch(_LIST_SQL, TABLE)}


async def partition_months(connection: Connection) -> list[Month]:
    """The months that have a partition, oldest first."""
    months = (_month_of_name(name) for name in await _partition_names(connection))
    return sorted(month for month in months if month is not None)


async def ensure_partitions(connection: Connection, now: datetime,
                            months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create the partitions of `now`'s month and the `months_ahead` months after it that do not exist yet,
    moving their rows out of DEFAULT; the names of those created. Cheap when there is nothing to do: one
    advisory lock and one catalog read, no table lock."""
    wanted = [Month.of(now).plus(ahead) for ahead in range(months_ahead + 1)]
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_ID)
        if not await is_partitioned(connection):
            return []
        existing = await _partition_names(connection)
        missing = [month for month in wanted if month.partition not in existing]
        if not missing:
            return []
        await connection.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
        has_default = DEFAULT_PARTITION in existing
        if has_default:
            # Taken first, for the whole transaction: no row of these months can reach DEFAULT between the
            # move below and the attach (which would then fail), and no lock is upgraded halfway.
            await connection.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE")
        for month in missing:
            moved = await _create_partition(connection, month, has_default=has_default)
            logger.info("created usage partition %s (%d rows moved from %s)", month.partition, moved,
                        DEFAULT_PARTITION)
    return [month.partition for month in missing]


async def _create_partition(connection: Connection, month: Month, *, has_default: bool) -> int:
    """Create the month's table, move its rows out of DEFAULT, attach it; how many rows moved. The CHECK
    constraint, equal to the partition bound, spares ATTACH a scan of the new table; it is dropped after."""
    name, check = month.partition, f"{month.partition}_range"
    # Bounds formatted from integers (Month), never from input: safe to inline, as DDL cannot take parameters.
    low, high = f"'{month.start.isoformat()}'", f"'{month.end.isoformat()}'"
    await connection.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS)")
    await connection.execute(f"ALTER TABLE {name} ADD CONSTRAINT {check} "
                             f"CHECK (created_at >= {low} AND created_at < {high})")
    moved = 0
    if has_default:
        status = await connection.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE created_at >= $1 AND created_at < $2 "
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved", month.start, month.end)  # nosec B608
        moved = int(status.split()[-1])
    await connection.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})")
    await connection.execute(f"ALTER TABLE {name} DROP CONSTRAINT {check}")
    return moved


async def drop_partitions_before(connection: Connection, cutoff: datetime) -> int:
    """Drop every month partition whose whole month is before `cutoff`, one transaction each; roughly how many
    rows went (PostgreSQL's own estimate, `pg_class.reltuples`: counting them exactly would read the very rows
    a drop avoids reading)."""
    removed = 0
    for month in await partition_months(connection):
        if month.end > cutoff:
            break  # oldest first: every later month reaches past the cutoff too
        async with connection.transaction():
            await connection.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
            estimate = await connection.fetchval("SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)",
                                                 month.partition)
            await connection.execute(f"DROP TABLE IF EXISTS {month.partition}")
        rows = max(0, int(estimate or 0))  # -1: never analysed
        removed += rows
        logger.info("dropped usage partition %s (about %d rows) past retention", month.partition, rows)
    return removed
