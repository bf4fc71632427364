"""The usage-writer benchmark's throw-away Postgres database and Redis db: creating and emptying them,
pre-filling the usage stream, checking what was stored, and the servers' CPU time."""

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.usage_writer_rows import Rows
from shared.jobs import USAGE_STREAM_MAXLEN
from shared.keys import USAGE_GROUP, USAGE_STREAM

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_DB = "llm_gateway_bench"
BENCH_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{BENCH_DB}"
REDIS_URL = "redis://127.0.0.1:6379/6"
FILL_CHUNK = 1_000
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Bench:
    engine: AsyncEngine
    redis: Redis
    rows: Rows
    started: float = field(default_factory=time.perf_counter)


@dataclass
class ServerCpu:
    postmaster_start: datetime
    postgres: dict[int, float]  # pid -> CPU seconds
    redis: float


class ServerRestartedError(Exception):
    pass


# What a Postgres restart by someone else looks like from here (the server is shared with other test runs).
RETRYABLE = (DBAPIError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ServerRestartedError)


async def recreate_database(drop_only: bool = False) -> None:
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        if not drop_only:
            await admin.execute(f'CREATE DATABASE "{BENCH_DB}"')
    finally:
        await admin.close()


async def reset(bench: Bench) -> None:
    async with bench.engine.begin() as connection:
        await connection.execute(text("TRUNCATE usage_record RESTART IDENTITY"))
    await bench.redis.delete(USAGE_STREAM)


async def fill_stream(bench: Bench, rows: Rows) -> None:
    """Pre-fill the stream with entries shaped like `JobStore.finish` writes them, then create the group."""
    for start in range(0, len(rows), FILL_CHUNK):
        async with bench.redis.pipeline(transaction=False) as pipe:
            for row in rows[start : start + FILL_CHUNK]:
                pipe.xadd(USAGE_STREAM, {"row": json.dumps(row)}, maxlen=USAGE_STREAM_MAXLEN, approximate=True)
            await pipe.execute()
    await bench.redis.xgroup_create(USAGE_STREAM, USAGE_GROUP, id="0", mkstream=True)


async def stored_rows(engine: AsyncEngine) -> int:
    """Rows in the table; fails if any request id is stored twice (the unique index should make that impossible)."""
    query = text("SELECT count(*), count(DISTINCT request_id) FROM usage_record")
    async with engine.connect() as connection:
        total, distinct = (await connection.execute(query)).one()
    assert total == distinct, f"{total - distinct} duplicated request ids"
    return int(total)


async def check_stream_drained(redis: Redis) -> None:
    pending = await redis.xpending(USAGE_STREAM, USAGE_GROUP)
    assert await redis.xlen(USAGE_STREAM) == 0 and pending["pending"] == 0, "stream entries left behind"


async def server_cpu(bench: Bench) -> ServerCpu:
    """CPU seconds so far of this database's backends, Postgres's background processes (WAL writer...) and
    Redis, with the postmaster's start time so that a restart during a case is noticed."""
    query = text("SELECT pid FROM pg_stat_activity WHERE datname = :db OR backend_type <> 'client backend'")
    async with bench.engine.connect() as connection:
        pids = (await connection.execute(query, {"db": BENCH_DB})).scalars().all()
        started = (await connection.execute(text("SELECT pg_postmaster_start_time()"))).scalar_one()
    postgres = {pid: cpu for pid in pids if (cpu := _proc_cpu(pid)) is not None}
    return ServerCpu(started, postgres, await redis_cpu(bench.redis))


async def wait_for_postgres(engine: AsyncEngine, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return
        except RETRYABLE:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


def _proc_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


async def redis_cpu(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

