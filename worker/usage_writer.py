"""Moves usage records from the Redis usage stream into the database in batches, off the request path.
Entries are acknowledged only after the insert commits, and inserts are idempotent on the job id, so a
database outage delays billing but loses nothing, and a redelivered entry is never billed twice. When Redis
loses its data (a restart without persistence, a flush, an eviction) the consumer group goes with it: the
writer creates it again and carries on. It exports how far billing lags and reports its flushes
(shared/usage_stream.py), so a stalled writer shows on `/health`, in metrics and in an alert."""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT

from shared.keys import USAGE_DEAD_STREAM, USAGE_GROUP, USAGE_STREAM, USAGE_WRITERS_KEY
from shared.metrics import USAGE_BACKLOG, USAGE_GROUP_RECREATED, USAGE_LAST_FLUSH, USAGE_OLDEST_UNWRITTEN
from shared.redis import is_missing_group
from shared.usage_stream import read_usage_lag, report_flush_on

logger = logging.getLogger(__name__)

InsertRows = Callable[[Sequence[Mapping[str, object]]], Awaitable[int]]
CLAIM_IDLE_MS = 60_000
MAX_BACKOFF_S = 10.0
DEAD_MAXLEN = 100_000
# After a batch smaller than a full one, wait this long before reading again, so that at low load records
# are written a few dozen at a time instead of one insert and three stream commands per request.
LINGER_S = 0.05
# How often a writer exports the lag and reports its last flush: two small reads and a write.
OBSERVE_EVERY_S = 1.0

Fields = dict[bytes, bytes]  # a stream entry's fields, as Redis gives them (bytes, not decoded)
Entry = tuple[bytes, Fields]  # (entry id, fields)


class UsageWriter:
    def __init__(self, redis: Redis, insert_rows: InsertRows, *, consumer: str, batch_size: int,
                 interval_s: float, claim_idle_ms: int = CLAIM_IDLE_MS) -> None:
        self._redis = redis
        self._insert_rows = insert_rows
        self._consumer = consumer
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._claim_idle_ms = claim_idle_ms
        # Entries this consumer read but did not acknowledge (a failed insert): re-read those first.
        self._own_pending = True
        self._next_claim_at = 0.0
        self._group_ready = False
        self._last_flush_s: float | None = None  # wall clock of the last flush that completed
        self._reported_flush_s: float | None = None
        self._next_observe_at = 0.0

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(USAGE_STREAM, USAGE_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def run(self, stop: asyncio.Event) -> None:
        """Flush until `stop` is set, then drain what is pending once more."""
        backoff_s = self._interval_s
        while not stop.is_set():
            try:
                if not self._group_ready:
                    await self.ensure_group()
                written = await self.flush_once(block_ms=int(self._interval_s * 1000))
                backoff_s = self._interval_s
                if 0 < written < self._batch_size:
                    await _sleep_or_stop(stop, min(LINGER_S, self._interval_s))
            except Exception as exc:  # the database or Redis is down: keep the entries, retry later
                logger.warning("usage flush failed, retrying in %.1fs: %s", backoff_s, type(exc).__name__)
                await _sleep_or_stop(stop, backoff_s)
                backoff_s = min(MAX_BACKOFF_S, backoff_s * 2)
            await self.observe()
        try:
            await self.flush_once(block_ms=None)
            await self._redis.zrem(USAGE_WRITERS_KEY, self._consumer)
        except Exception as exc:
            logger.warning("final usage flush failed; entries stay pending for another worker: %s", exc)

    async def flush_once(self, *, block_ms: int | None) -> int:
        """Insert one batch (see `_flush_batch`). A missing consumer group means Redis lost its data: what
        was in the stream then is gone, and what was added since waits for the group, so create it again
        (reading from the start of the stream) and flush."""
        try:
            written = await self._flush_batch(block_ms=block_ms)
        except ResponseError as exc:
            if not is_missing_group(exc):
                raise
            USAGE_GROUP_RECREATED.inc()
            logger.warning("the usage stream's consumer group is gone (Redis lost its data: restarted without "
                           "persistence, flushed or evicted); creating it again. Usage records not yet written "
                           "to the database when that happened are lost")
            await self.ensure_group()
            self._own_pending = True
            written = await self._flush_batch(block_ms=block_ms)
        self._last_flush_s = time.time()
        USAGE_LAST_FLUSH.set(self._last_flush_s)
        return written

    async def observe(self) -> None:
        """At most once per OBSERVE_EVERY_S: export the age of the oldest unwritten record and the backlog,
        and report this writer's last completed flush to `/health`. Redis being down leaves them as they were."""
        if time.monotonic() < self._next_observe_at:
            return
        self._next_observe_at = time.monotonic() + OBSERVE_EVERY_S
        try:
            if self._last_flush_s is not None and self._last_flush_s != self._reported_flush_s:
                async with self._redis.pipeline(transaction=False) as pipe:
                    report_flush_on(pipe, self._consumer, int(self._last_flush_s * 1000))
                    await pipe.execute()
                self._reported_flush_s = self._last_flush_s
            lag = await read_usage_lag(self._redis)
        except RedisError as exc:
            logger.debug("usage lag not read: %s", type(exc).__name__)
            return
        USAGE_BACKLOG.set(lag.backlog)
        USAGE_OLDEST_UNWRITTEN.set(lag.oldest_unwritten_s)

    async def _flush_batch(self, *, block_ms: int | None) -> int:
        """This consumer's unacknowledged entries first, then dead consumers', then new. Own pending entries
        exist only after a failure, and dead consumers' are looked for every half CLAIM_IDLE_MS, so a healthy
        flush costs one read and one acknowledgement."""
        entries: list[Entry] = []
        from_pending = self._own_pending
        if from_pending:
            entries = await self._read(">", block_ms=None, pending_first=True)
            from_pending = self._own_pending = bool(entries)
        if not entries and time.monotonic() >= self._next_claim_at:
            entries = await self._claim_abandoned()
            self._next_claim_at = time.monotonic() + self._claim_idle_ms / 2000
        if not entries:
            entries = await self._read(">", block_ms=block_ms, pending_first=False)
        if not entries:
            return 0
        self._own_pending = True  # until acknowledged below
        inserted, poison = await self._insert(entries)
        ids = [entry_id for entry_id, _ in entries]
        async with self._redis.pipeline(transaction=True) as pipe:
            for fields in poison:
                # redis-py types xadd's fields as an invariant `dict[FieldT, EncodableT]` where it only reads
                # them (a Mapping would do), so a `dict[bytes, bytes]` has to be widened.
                pipe.xadd(USAGE_DEAD_STREAM, cast("dict[FieldT, EncodableT]", fields), maxlen=DEAD_MAXLEN,
                          approximate=True)
            pipe.xack(USAGE_STREAM, USAGE_GROUP, *ids)
            pipe.xdel(USAGE_STREAM, *ids)
            await pipe.execute()
        self._own_pending = from_pending and len(entries) >= self._batch_size  # a full batch: maybe more
        return inserted

    async def _insert(self, entries: list[Entry]) -> tuple[int, list[Fields]]:
        """Insert the batch; if a row is malformed, insert the good rows one by one and return the bad ones,
        so one poison entry is set aside for inspection instead of stalling billing forever."""
        try:
            return await self._insert_rows([_row(entry_id, fields) for entry_id, fields in entries]), []
        except (ValueError, KeyError, TypeError):
            logger.warning("usage batch has a malformed row; inserting row by row")
        inserted = 0
        poison: list[Fields] = []
        for entry_id, fields in entries:
            try:
                inserted += await self._insert_rows([_row(entry_id, fields)])
            except (ValueError, KeyError, TypeError):
                poison.append(fields)
        return inserted, poison

    async def _read(self, start: str, *, block_ms: int | None, pending_first: bool) -> list[Entry]:
        reply = await self._redis.xreadgroup(
            USAGE_GROUP, self._consumer, {USAGE_STREAM: "0" if pending_first else start},
            count=self._batch_size, block=block_ms,
        )
        return [(eid, f) for eid, f in reply[0][1] if f] if reply else []

    async def _claim_abandoned(self) -> list[Entry]:
        reply = await self._redis.xautoclaim(
            USAGE_STREAM, USAGE_GROUP, self._consumer, min_idle_time=self._claim_idle_ms, count=self._batch_size
        )
        return [(eid, f) for eid, f in reply[1] if f]


def _row(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, object]:
    """The usage row of a stream entry. Its `created_at` must be the same on every delivery: the usage table's
    idempotency key on PostgreSQL is (request_id, created_at) (partitioned by month, migration 0010). The
    gateway's own entries carry it (set once, when the job's end is committed); an entry without one gets
    the time its entry id records (milliseconds since the epoch, fixed when it was added), not the time of
    this delivery."""
    row = json.loads(fields[b"row"])
    if not isinstance(row, dict):
        raise ValueError("usage entry is not a JSON object")
    created = row.get("created_at")
    if created is None:
        created = int(entry_id.split(b"-", 1)[0]) / 1000
    if isinstance(created, int | float):
        row["created_at"] = datetime.fromtimestamp(created, tz=UTC)
    return row


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
