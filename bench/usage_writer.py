"""Benchmark of the usage-record write path: a naive per-row ORM writer, `insert_usage` batches, and the
full Redis stream -> `UsageWriter` -> Postgres path, plus the cost of re-inserting already-stored rows.

Runs against a throw-away database (`llm_gateway_bench`) on the local Postgres and Redis db 6. Every case is
measured once per round, rounds are interleaved, and each case ends by checking the stored row count.
Run: `.venv/bin/python -m bench.usage_writer [--rows N] [--batch-sizes 1,50,500,2000] [--repeat R]`."""

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import create_engine, create_session_factory
from shared.db.migrate import migrate
from shared.db.tables import UsageRecord
from shared.db.usage import insert_usage
from shared.jobs import USAGE_STREAM_MAXLEN, JobOutcome, JobRecord, usage_row
from shared.keys import USAGE_GROUP, USAGE_STREAM
from shared.models import ChatRequest, JobStatus, Message, WireFormat
from worker.usage_writer import UsageWriter

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
BENCH_DB = "llm_gateway_bench"
BENCH_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{BENCH_DB}"
REDIS_URL = "redis://127.0.0.1:6379/6"
TENANTS = [f"tenant_{i:03d}" for i in range(50)]
MODELS = [  # (public model, provider, provider model, $ per 1k prompt tokens, $ per 1k completion tokens)
    ("gpt-4o-mini", "openai", "gpt-4o-mini-2024-07-18", 0.00015, 0.0006),
    ("gpt-4o", "openai", "gpt-4o-2024-08-06", 0.0025, 0.01),
    ("claude-sonnet", "anthropic", "claude-3-5-sonnet-20241022", 0.003, 0.015),
    ("claude-haiku", "anthropic", "claude-3-5-haiku-20241022", 0.0008, 0.004),
]
FILL_CHUNK = 1_000
TICK_S = 0.005
MAX_ATTEMPTS = 4
CLK_TCK = os.sysconf("SC_CLK_TCK")

Rows = list[dict[str, object]]


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


# ---------------------------------------------------------------- realistic rows


def make_rows(count: int, rng: random.Random) -> Rows:
    """Usage rows exactly as a worker builds them (`shared.jobs.usage_row`): mixed tenants and models,
    ~3% failures, ~5% fallbacks, some prompt-cache hits."""
    requests = {m[0]: ChatRequest(model=m[0], messages=[Message(role="user", content="hi")]) for m in MODELS}
    return [_row(rng, requests) for _ in range(count)]


def _row(rng: random.Random, requests: Mapping[str, ChatRequest]) -> dict[str, object]:
    public, provider, model, prompt_price, completion_price = rng.choice(MODELS)
    record = JobRecord(id=f"job_{uuid.uuid4().hex}", tenant_id=rng.choice(TENANTS), status=JobStatus.RUNNING,
                       wire_format=WireFormat.OPENAI, request=requests[public], created_at=time.time())
    failed = rng.random() < 0.03
    prompt, completion = rng.randint(20, 4_000), 0 if failed else rng.randint(1, 1_500)
    outcome = JobOutcome(
        status=JobStatus.FAILED if failed else JobStatus.SUCCEEDED,
        error={"code": "upstream_error", "message": "provider returned 503"} if failed else None,
        cost_usd=(prompt * prompt_price + completion * completion_price) / 1000,
        fallback_used=rng.random() < 0.05, provider=provider, model=model, prompt_tokens=prompt,
        completion_tokens=completion, cached_prompt_tokens=rng.choice([0, 0, 0, prompt // 2]),
    )
    return usage_row(record, outcome, rng.randint(150, 15_000))


# ---------------------------------------------------------------- the writers under test


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


# ---------------------------------------------------------------- setup, checks and server CPU


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


# ---------------------------------------------------------------- measuring one case


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


# ---------------------------------------------------------------- reporting


def summarise(case: Case, baseline: float) -> dict[str, object]:
    rates = [s.rows_per_s for s in case.samples]
    median = statistics.median(rates)
    pick = statistics.median_low  # a measured sample, not an average of two
    return {
        "case": case.name, "kind": case.kind, "batch_size": case.batch, "rows": case.rows,
        "rows_per_s_median": round(median), "rows_per_s_min": round(min(rates)), "rows_per_s_max": round(max(rates)),
        "wall_s_median": round(pick([s.wall_s for s in case.samples]), 3),
        "process_cpu_s_median": round(pick([s.cpu_s for s in case.samples]), 3),
        "postgres_cpu_s_median": round(pick([s.pg_cpu_s for s in case.samples]), 2),
        "redis_cpu_s_median": round(pick([s.redis_cpu_s for s in case.samples]), 2),
        "process_cpu_us_per_row": round(pick([s.cpu_s / s.rows for s in case.samples]) * 1e6, 1),
        "loop_stall_ms_median": round(pick([s.loop_stall_s for s in case.samples]) * 1000, 1),
        "ratio_to_naive": round(median / baseline, 1),
        "retries_after_postgres_restart": case.retries,
    }


def markdown(summary: list[dict[str, object]]) -> str:
    head = ("| case | batch | rows | rows/s median | rows/s min-max | vs naive | wall s | bench CPU s | "
            "bench CPU µs/row | Postgres CPU s | Redis CPU s | loop stall ms |")
    lines = [head, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for s in summary:
        lines.append(
            f"| {s['case']} | {s['batch_size']} | {s['rows']:,} | {s['rows_per_s_median']:,} | "
            f"{s['rows_per_s_min']:,}-{s['rows_per_s_max']:,} | {s['ratio_to_naive']} | {s['wall_s_median']} | "
            f"{s['process_cpu_s_median']} | {s['process_cpu_us_per_row']} | {s['postgres_cpu_s_median']} | "
            f"{s['redis_cpu_s_median']} | {s['loop_stall_ms_median']} |"
        )
    return "\n".join(lines)


async def machine_info(engine: AsyncEngine, redis: Redis) -> dict[str, object]:
    async with engine.connect() as connection:
        settings = {name: (await connection.execute(text(f"SHOW {name}"))).scalar_one()
                    for name in ("server_version", "fsync", "synchronous_commit", "shared_buffers")}
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?"),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "postgres": settings,
        "redis_version": (await redis.info("server"))["redis_version"],
        "git_commit": _git_commit(),
    }


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


# ---------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.usage_writer", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows per case (default 20000)")
    parser.add_argument("--baseline-rows", type=int, help="rows for the naive baseline (default rows/10); "
                        "also caps every case at this many transactions")
    parser.add_argument("--batch-sizes", default="1,50,500,2000", help="comma-separated batch sizes")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the table shows median and min-max")
    parser.add_argument("--out", type=Path, default=Path("bench/results/usage_writer.json"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    args.baseline_rows = args.baseline_rows or max(1, args.rows // 10)
    if args.rows < 1 or args.repeat < 1 or min(args.batch_sizes, default=0) < 1:
        parser.error("--rows, --repeat and every batch size must be at least 1")
    return args


async def cleanup(engine: AsyncEngine, redis: Redis) -> None:
    """Leave nothing behind, and never let a failing step hide the error that stopped the run."""
    steps: tuple[Callable[[], Awaitable[object]], ...] = (
        redis.flushdb, redis.aclose, engine.dispose, lambda: recreate_database(drop_only=True),
    )
    for step in steps:
        try:
            await step()
        except Exception as exc:
            print(f"cleanup step failed: {type(exc).__name__}: {exc}")


async def run(args: argparse.Namespace) -> dict[str, object]:
    await recreate_database()
    await migrate(BENCH_URL)
    engine, redis = create_engine(BENCH_URL), Redis.from_url(REDIS_URL)
    try:
        await redis.flushdb()
        bench = Bench(engine, redis, make_rows(args.rows, random.Random(args.seed)))
        info = await machine_info(engine, redis)
        started = time.perf_counter()
        cases = await run_rounds(bench, build_cases(args.rows, args.baseline_rows, args.batch_sizes),
                                 args.repeat, args.rows)
        elapsed = time.perf_counter() - started
        info["load_average_at_end"] = os.getloadavg()
    finally:
        await cleanup(engine, redis)
    baseline = statistics.median(s.rows_per_s for s in cases[0].samples)
    return {
        "machine": info, "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "measure_s": round(elapsed, 1), "summary": [summarise(c, baseline) for c in cases],
        "samples": {f"{c.kind}:{c.batch}": [asdict(s) for s in c.samples] for c in cases},
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    print()
    print(markdown(result["summary"]))  # type: ignore[arg-type]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out} (measured for {result['measure_s']} s)")


if __name__ == "__main__":
    main()
