"""The usage writer moves records from the Redis usage stream to the database: in batches, exactly once,
keeping entries while the database is down, setting malformed ones aside, and taking over a dead
consumer's entries."""

import asyncio
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from arq.connections import ArqRedis
from sqlalchemy import text

from shared.db.engine import create_engine
from shared.db.migrate import migrate
from shared.db.usage import insert_usage
from shared.keys import USAGE_DEAD_STREAM, USAGE_GROUP, USAGE_STREAM
from tests.factories import make_fake_redis
from worker.usage_writer import UsageWriter


class RecordingDatabase:
    """Stands in for the database: idempotent on request_id like the real insert, and can be 'down'."""

    def __init__(self) -> None:
        self.rows: dict[str, Mapping[str, object]] = {}
        self.down = False
        self.calls = 0

    async def insert(self, rows: Sequence[Mapping[str, object]]) -> int:
        self.calls += 1
        if self.down:
            raise ConnectionRefusedError("database is down")
        for row in rows:
            if "tenant_id" not in row:
                raise ValueError("row lacks tenant_id")
        new = [row for row in rows if row["request_id"] not in self.rows]
        self.rows.update({str(row["request_id"]): row for row in new})
        return len(new)


async def _add(redis: ArqRedis, request_id: str, **extra: object) -> None:
    row = {"request_id": request_id, "tenant_id": "ten_1", "cost_usd": 0.01, "created_at": 1_700_000_000, **extra}
    await redis.xadd(USAGE_STREAM, {"row": json.dumps(row)})


def _writer(redis: ArqRedis, db: RecordingDatabase, consumer: str = "w1", **kw: int) -> UsageWriter:
    return UsageWriter(redis, db.insert, consumer=consumer, batch_size=100, interval_s=0.01, **kw)


async def test_usage_writer_inserts_batch_and_trims_stream() -> None:
    redis, db = make_fake_redis(), RecordingDatabase()
    writer = _writer(redis, db)
    await writer.ensure_group()
    for index in range(5):
        await _add(redis, f"job_{index}")
    assert await writer.flush_once(block_ms=None) == 5
    assert db.calls == 1 and len(db.rows) == 5
    assert await redis.xlen(USAGE_STREAM) == 0


async def test_usage_writer_keeps_entries_while_database_is_down() -> None:
    redis, db = make_fake_redis(), RecordingDatabase()
    writer = _writer(redis, db)
    await writer.ensure_group()
    await _add(redis, "job_a")
    db.down = True
    try:
        await writer.flush_once(block_ms=None)
        raise AssertionError("flush should fail while the database is down")
    except ConnectionRefusedError:
        pass
    assert await redis.xlen(USAGE_STREAM) == 1
    db.down = False
    assert await writer.flush_once(block_ms=None) == 1  # the pending entry is retried first
    assert list(db.rows) == ["job_a"]


async def test_usage_writer_run_survives_outage_and_loses_nothing() -> None:
    redis, db = make_fake_redis(), RecordingDatabase()
    writer = _writer(redis, db)
    db.down = True
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    for index in range(20):
        await _add(redis, f"job_{index}")
    await asyncio.sleep(0.1)
    assert db.rows == {}
    db.down = False
    for _ in range(100):
        if len(db.rows) == 20:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    assert sorted(db.rows) == sorted(f"job_{i}" for i in range(20))


async def test_usage_writer_sets_malformed_rows_aside() -> None:
    redis, db = make_fake_redis(), RecordingDatabase()
    writer = _writer(redis, db)
    await writer.ensure_group()
    await _add(redis, "good_1")
    await redis.xadd(USAGE_STREAM, {"row": json.dumps({"request_id": "bad"})})
    await redis.xadd(USAGE_STREAM, {"row": b"not json"})
    await _add(redis, "good_2")
    assert await writer.flush_once(block_ms=None) == 2
    assert sorted(db.rows) == ["good_1", "good_2"]
    assert await redis.xlen(USAGE_DEAD_STREAM) == 2
    assert await redis.xlen(USAGE_STREAM) == 0


async def test_usage_writer_claims_entries_of_a_dead_consumer() -> None:
    redis, db = make_fake_redis(), RecordingDatabase()
    await _writer(redis, db).ensure_group()
    await _add(redis, "orphan")
    # A consumer read the entry and died before inserting it.
    await redis.xreadgroup(USAGE_GROUP, "dead-worker", {USAGE_STREAM: ">"}, count=10)
    survivor = _writer(redis, db, consumer="w2", claim_idle_ms=0)
    assert await survivor.flush_once(block_ms=None) == 1
    assert list(db.rows) == ["orphan"]


async def test_usage_writer_redelivery_is_not_billed_twice(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'usage.db'}"
    await migrate(url)
    engine = create_engine(url)
    redis = make_fake_redis()
    writer = UsageWriter(redis, lambda rows: insert_usage(engine, rows), consumer="w", batch_size=10,
                         interval_s=0.01)
    try:
        await writer.ensure_group()
        for _ in range(2):  # the same job's record delivered twice, as at-least-once delivery allows
            await _add(redis, "job_x", public_model="m", provider="openai", model="m", prompt_tokens=1,
                       completion_tokens=1, latency_ms=5, status="succeeded")
        assert await writer.flush_once(block_ms=None) == 1
        async with engine.connect() as connection:
            count = (await connection.execute(text("SELECT count(*) FROM usage_record"))).scalar_one()
        assert count == 1
    finally:
        await engine.dispose()
