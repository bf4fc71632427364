"""Monthly partitions of the usage table on PostgreSQL (issue 17): `usage_record` becomes a table partitioned by
RANGE on `created_at`, one partition per UTC calendar month (`usage_record_pYYYYMM`) plus a DEFAULT partition
(`usage_record_default`), so an insert is never refused for lack of a partition and retention drops a whole
month instead of deleting it row by row (shared/db/pg_partitions.py keeps partitions created ahead).

Every existing row is kept with its id, and the id sequence continues. A partitioned table's unique constraints
must include the partition key, so the primary key becomes (id, created_at) and the idempotency key
(request_id, created_at): a usage row's `created_at` is fixed once per job (set when the job's terminal state
is committed, carried in the usage stream entry, and taken from the entry id for an entry without one), so a
redelivered row always conflicts with its first copy. Indexes are kept, the GIN index on tags included.

The swap takes an ACCESS EXCLUSIVE lock on the usage table for the whole copy: the usage writer waits (its
entries stay in the Redis stream) and request-log reads wait. SQLite (embedded mode, one file) is unchanged.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

__all__ = ["branch_labels", "depends_on", "down_revision", "downgrade", "revision", "upgrade"]

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Months created ahead of the current one; the worker's retention loop keeps this many ahead afterwards
# (shared/db/pg_partitions.py MONTHS_AHEAD). Stated here too: a migration must not depend on code that changes.
MONTHS_AHEAD = 3
OLD = "usage_record_0009"  # the plain table while its rows are copied
PARTITIONED = "usage_record_0010"  # the partitioned table while its rows are copied back (downgrade)
# Secondary indexes of both shapes: name -> (method, columns).
INDEXES: dict[str, tuple[str, str]] = {
    "ix_usage_record_created_at": ("btree", "created_at"),
    "ix_usage_record_tenant_id": ("btree", "tenant_id"),
    "ix_usage_record_tenant_key": ("btree", "tenant_id, key_id"),
    "ix_usage_record_tenant_user": ("btree", "tenant_id, end_user"),
    "ix_usage_record_tags": ("gin", "tags"),
}
COLUMNS = ("id, request_id, tenant_id, public_model, provider, model, prompt_tokens, completion_tokens, cost_usd, "
           "latency_ms, status, error_code, fallback_used, cache_hit, created_at, saved_cost_usd, "
           "cached_prompt_tokens, dropped_params, endpoint, key_id, end_user, tags")


def _month_start(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=UTC)


def _create_partition(start: datetime) -> None:
    """The partition of the month starting at `start` (UTC), named usage_record_pYYYYMM."""
    end = _month_start(start.year, start.month + 1)
    op.execute(f"CREATE TABLE usage_record_p{start:%Y%m} PARTITION OF usage_record "
               f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")


def _months_to_create(now: datetime) -> list[datetime]:
    """Each month holding a row, and the current month and MONTHS_AHEAD after it: every row has its month's
    partition, and the writer finds the coming months' partitions already there."""
    found = op.get_bind().execute(sa.text(
        f"SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC') FROM {OLD}"))  # nosec B608
    months = {row[0].replace(tzinfo=UTC) for row in found}
    months.update(_month_start(now.year, now.month + ahead) for ahead in range(MONTHS_AHEAD + 1))
    return sorted(months)


def _create_indexes(unique: str, primary: str) -> None:
    op.execute(f"ALTER TABLE usage_record ADD CONSTRAINT pk_usage_record PRIMARY KEY ({primary})")
    op.execute(f"ALTER TABLE usage_record ADD CONSTRAINT uq_usage_record_request_id UNIQUE ({unique})")
    for name, (method, columns) in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON usage_record USING {method} ({columns})")


def _move_rows(source: str) -> None:
    """Copy every row of `source` into the new usage_record, hand it the id sequence and drop `source`, which
    frees the index and constraint names for the new table. The sequence is detached first: dropping the
    table that owns it would drop it too."""
    op.execute(f"INSERT INTO usage_record ({COLUMNS}) SELECT {COLUMNS} FROM {source}")  # nosec B608
    op.execute("ALTER SEQUENCE usage_record_id_seq OWNED BY usage_record.id")
    op.execute(f"DROP TABLE {source}")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: a single embedded file, no partitions; retention deletes rows
    op.execute("LOCK TABLE usage_record IN ACCESS EXCLUSIVE MODE")
    op.execute(f"ALTER TABLE usage_record RENAME TO {OLD}")
    # LIKE copies the columns, their types, NOT NULL and defaults (the id's nextval included), nothing else.
    op.execute(f"CREATE TABLE usage_record (LIKE {OLD} INCLUDING DEFAULTS) PARTITION BY RANGE (created_at)")
    for start in _months_to_create(datetime.now(UTC)):
        _create_partition(start)
    op.execute("CREATE TABLE usage_record_default PARTITION OF usage_record DEFAULT")
    _move_rows(OLD)
    # Indexes built after the copy: one sorted build per partition is much faster than index upkeep per row.
    _create_indexes(unique="request_id, created_at", primary="id, created_at")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("LOCK TABLE usage_record IN ACCESS EXCLUSIVE MODE")
    op.execute(f"ALTER TABLE usage_record RENAME TO {PARTITIONED}")
    op.execute(f"CREATE TABLE usage_record (LIKE {PARTITIONED} INCLUDING DEFAULTS)")
    _move_rows(PARTITIONED)  # the partitions go with their table
    # A request id stored twice (possible only with different created_at values) fails the unique
    # constraint here, and the whole downgrade rolls back: nothing is dropped silently.
    _create_indexes(unique="request_id", primary="id")
