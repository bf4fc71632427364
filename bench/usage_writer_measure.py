"""Measuring the usage-writer benchmark: the writers under test, one timed case (wall, CPU, event-loop
stall, stored-row check) retried after a Postgres restart, and the interleaved rounds over all cases."""

import asyncio
import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from bench.usage_writer_rows import Rows
from bench.usage_writer_stack import (
    RETRYABLE,
    Bench,
    ServerRestartedError,
    check_stream_drained,
    fill_stream,
    reset,
    server_cpu,
    stored_rows,
    wait_for_postgres,
)
from shared.db.engine import create_session_factory
from shared.db.tables import UsageRecord
from shared.db.usage import insert_usage
from worker.usage_writer import UsageWriter

TICK_S = 0.005
MAX_ATTEMPTS = 4


@dataclass
class Sample:
    rows: int
    wall_s: float
    cpu_s: float
    pg_cpu_s: float
    redis_cpu_s: float
    stored: int
    loop_stall_s: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s


@dataclass
class Case:
    name: str
    kind: str  # naive | direct | stream | reinsert
    batch: int
    rows: int
    samples: list[Sample] = field(default_factory=list)
    retries: int = 0


async def naive_write(engine: AsyncEngine, rows: Rows) -> None:
    """The obvious writer: one ORM session, one INSERT and one commit per row."""
    factory = create_session_factory(engine)
    for row in rows:
        async with factory() as session:
            created = datetime.fromtimestamp(row["created_at"], tz=UTC)  # type: ignore[arg-type]
            session.add(UsageRecord.model_validate({**row, "created_at": created}))
            await session.commit()


async def direct_write(engine: AsyncEngine, rows: Rows, batch: int) -> int:
    inserted = 0
    for start in range(0, len(rows), batch):
        inserted += await insert_usage(engine, rows[start : start + batch])
    return inserted


async def drain_stream(bench: Bench, batch: int) -> int:
    """What a worker's usage writer does, minus the sleeping: flush batches until the stream is empty."""
    writer = UsageWriter(bench.redis, lambda rows: insert_usage(bench.engine, rows), consumer="bench",
                         batch_size=batch, interval_s=1.0)
    inserted = 0
    while (count := await writer.flush_once(block_ms=None)) > 0:
        inserted += count
    return inserted


async def prepare(bench: Bench, case: Case) -> Rows:
    """Untimed: empty table and stream, then whatever the case needs to find in place. Every case writes a
    prefix of the same rows, so the re-insert case reuses the table a full-size case left behind."""
    rows = bench.rows[: case.rows]
    if case.kind == "reinsert":
        if await stored_rows(bench.engine) != len(rows):
            await reset(bench)
            assert await direct_write(bench.engine, rows, case.batch) == len(rows)
        return rows
    await reset(bench)
    if case.kind == "stream":
        await fill_stream(bench, rows)
    return rows


async def execute(bench: Bench, case: Case, rows: Rows) -> None:
    if case.kind == "naive":
        await naive_write(bench.engine, rows)
    elif case.kind == "direct":
        assert await direct_write(bench.engine, rows, case.batch) == len(rows)
    elif case.kind == "stream":
        assert await drain_stream(bench, case.batch) == len(rows)
        await check_stream_drained(bench.redis)
    else:
        assert await direct_write(bench.engine, rows, case.batch) == 0, "a re-inserted row was stored again"


async def longest_stall(stop: asyncio.Event) -> float:
    """How late a timer that should fire every TICK_S ran at worst: the longest stretch the event loop was
    blocked. A worker's usage writer shares its loop with token streaming, so this is latency it adds."""
    worst, last = 0.0, time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(TICK_S)
        now = time.perf_counter()
        worst, last = max(worst, now - last - TICK_S), now
    return worst


async def measure(bench: Bench, case: Case) -> Sample:
    rows = await prepare(bench, case)
    gc.collect()
    before = await server_cpu(bench)
    stop = asyncio.Event()
    ticker = asyncio.create_task(longest_stall(stop))
    wall, cpu = time.perf_counter(), time.process_time()
    await execute(bench, case, rows)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stop.set()
    stall = await ticker
    after = await server_cpu(bench)
    if after.postmaster_start != before.postmaster_start:
        raise ServerRestartedError("Postgres restarted during the case")
    stored = await stored_rows(bench.engine)
    assert stored == len(rows), f"{case.name}: {stored} rows stored, expected {len(rows)}"
    pg_cpu = sum(cpu_s - before.postgres.get(pid, 0.0) for pid, cpu_s in after.postgres.items())
    return Sample(len(rows), wall, cpu, pg_cpu, after.redis - before.redis, stored, stall)


async def measure_retrying(bench: Bench, case: Case) -> Sample:
    """Postgres is shared: if someone restarts it during a case, wait for it and measure the case again."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return await measure(bench, case)
        except RETRYABLE as exc:
            if attempt == MAX_ATTEMPTS:
                raise
            case.retries += 1
            print(f"  {case.name} batch={case.batch}: {type(exc).__name__}, measuring again", flush=True)
            await wait_for_postgres(bench.engine)
    raise AssertionError("unreachable")


def build_cases(rows: int, baseline_rows: int, batches: Sequence[int]) -> list[Case]:
    """Small batches run on at most `baseline_rows` transactions, like the naive baseline, to bound run time."""
    cases = [Case("naive per-row ORM commit", "naive", 1, baseline_rows)]
    cases += [Case("insert_usage direct", "direct", b, min(rows, b * baseline_rows)) for b in batches]
    cases += [Case("Redis stream -> UsageWriter", "stream", b, min(rows, b * baseline_rows)) for b in batches]
    return cases


async def warm_up(bench: Bench, cases: list[Case]) -> None:
    """Untimed small run of every case first: pool connections, prepared statements, SQLAlchemy's caches."""
    for case in cases:
        await measure_retrying(bench, Case(case.name, case.kind, case.batch, min(case.rows, max(100, case.batch))))


async def run_rounds(bench: Bench, cases: list[Case], repeat: int, rows: int) -> list[Case]:
    """Round 1 runs every case in order and picks the best direct batch size for the re-insert case;
    later rounds rotate the order so no case always runs first or right after another."""
    await warm_up(bench, cases)
    for case in cases:
        case.samples.append(await measure_retrying(bench, case))
        print(f"  [{time.perf_counter() - bench.started:5.0f} s] round 1: {case.name} batch={case.batch}: "
              f"{case.samples[-1].rows_per_s:,.0f} rows/s", flush=True)
    best = max((c for c in cases if c.kind == "direct"), key=lambda c: c.samples[0].rows_per_s).batch
    reinsert = Case("re-insert, all conflicts", "reinsert", best, rows)
    reinsert.samples.append(await measure_retrying(bench, reinsert))
    cases = [*cases, reinsert]
    for round_no in range(1, repeat):
        shift = round_no * len(cases) // repeat
        for case in cases[shift:] + cases[:shift]:
            case.samples.append(await measure_retrying(bench, case))
        print(f"  [{time.perf_counter() - bench.started:5.0f} s] round {round_no + 1} done", flush=True)
    return cases

