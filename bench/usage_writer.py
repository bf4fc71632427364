"""Benchmark of the usage-record write path: a naive per-row ORM writer, `insert_usage` batches, and the
full Redis stream -> `UsageWriter` -> Postgres path, plus the cost of re-inserting already-stored rows.

Runs against a throw-away database (`llm_gateway_bench`) on the local Postgres and Redis db 6. Every case is
measured once per round, rounds are interleaved, and each case ends by checking the stored row count.
Run: `.venv/bin/python -m bench.usage_writer [--rows N] [--batch-sizes 1,50,500,2000] [--repeat R]`."""

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.usage_writer_measure import build_cases, run_rounds
from bench.usage_writer_report import machine_info, markdown, summarise
from bench.usage_writer_rows import make_rows
from bench.usage_writer_stack import BENCH_URL, REDIS_URL, Bench, recreate_database
from shared.db.engine import create_engine
from shared.db.migrate import migrate


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
