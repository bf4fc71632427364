"""Benchmark of the monthly-partitioned usage table (migration 0010) at tens of millions of rows, against the
same rows in the plain table of migration 0009, measured in the same run: the worker's writer throughput
(`PgUsageSink.insert`), the request log and a usage report for one tenant, and retention of a month (partition
dropped against batched DELETE). See bench/pg_partitions_load.py for the data and
bench/pg_partitions_measure.py for the cases. Everything lives in a throw-away database, dropped at the end.
Run: `.venv/bin/python -m bench.pg_partitions [--rows 20000000] [--months 12]`."""

import argparse
import asyncio
import json
import os
import platform
import random
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench.pg_partitions_load import ADMIN_DSN, Loaded, load, recreate_database
from bench.pg_partitions_measure import SHAPES, Timings, measure_queries, measure_retention, measure_writes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_partitions", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000, help="rows loaded in each table (20M)")
    parser.add_argument("--months", type=int, default=12, help="whole months before the current one (12)")
    parser.add_argument("--batch-sizes", default="100,1000", help="writer batch sizes (100,1000)")
    parser.add_argument("--rows-per-case", type=int, default=20_000, help="rows written per batch size, round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the write cases (3)")
    parser.add_argument("--query-repeat", type=int, default=60, help="timed runs of each query per table (60)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/pg_partitions.json"))
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args(argv)
    args.batch_sizes = [int(size) for size in args.batch_sizes.split(",") if size.strip()]
    if args.rows < 1 or args.months < 1 or args.rounds < 1 or min(args.batch_sizes, default=0) < 1:
        parser.error("--rows, --months, --rounds and every batch size must be at least 1")
    return args


async def machine_info() -> dict[str, object]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        settings = {name: await connection.fetchval(f"SHOW {name}") for name in (
            "server_version", "shared_buffers", "work_mem", "max_wal_size", "synchronous_commit")}
    finally:
        await connection.close()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "os": platform.platform(),
            "postgres": settings, "load_average_at_start": os.getloadavg()}


def _ratio(partitioned: float, plain: float) -> float | None:
    return round(partitioned / plain, 2) if plain else None


def _write_lines(write_summary: dict[str, dict[str, object]]) -> list[str]:
    lines = ["| writer batch | table | rows/s | p50 batch ms | p99 batch ms | rows/s ratio | p99 ratio |",
             "|--:|---|--:|--:|--:|--:|--:|"]
    for size, entry in write_summary.items():
        for shape in SHAPES:
            stats = entry[shape]
            assert isinstance(stats, dict)
            ratios = (f"{entry['rows_per_s_ratio']} | {entry['p99_ratio']}" if shape == "partitioned" else " | ")
            lines.append(f"| {size} | {shape} | {stats['rows_per_s']:,} | {stats['p50_ms']} | {stats['p99_ms']} | "
                         f"{ratios} |")
    return lines


def _query_lines(query_summary: dict[str, dict[str, object]]) -> list[str]:
    lines = ["| query | table | p50 ms | p99 ms | p50 ratio |", "|---|---|--:|--:|--:|"]
    for name, entry in query_summary.items():
        for shape in SHAPES:
            stats = entry[shape]
            assert isinstance(stats, dict)
            ratio = entry["p50_ratio"] if shape == "partitioned" else ""
            lines.append(f"| {name} | {shape} | {stats['p50_ms']} | {stats['p99_ms']} | {ratio} |")
    return lines


def report(loaded: Loaded, writes: dict[str, dict[int, Timings]], queries: dict[str, dict[str, Timings]],
           retention: dict[str, dict[str, float]]) -> tuple[dict[str, object], str]:
    """The JSON summary and its markdown tables; ratios are partitioned / plain."""
    write_summary: dict[str, dict[str, object]] = {}
    for size in writes[SHAPES[0]]:
        stats = {shape: writes[shape][size].summary() for shape in SHAPES}
        write_summary[str(size)] = {
            **stats, "rows_per_s_ratio": _ratio(stats["partitioned"]["rows_per_s"], stats["plain"]["rows_per_s"]),
            "p99_ratio": _ratio(stats["partitioned"]["p99_ms"], stats["plain"]["p99_ms"])}
    query_summary: dict[str, dict[str, object]] = {}
    for name, by_shape in queries.items():
        stats = {shape: by_shape[shape].summary() for shape in SHAPES}
        query_summary[name] = {**stats, "p50_ratio": _ratio(stats["partitioned"]["p50_ms"], stats["plain"]["p50_ms"])}
    part, plain = retention["partitioned"], retention["plain"]
    lines = [*_write_lines(write_summary), "", *_query_lines(query_summary), "",
             "| retention of the oldest month | rows | seconds |", "|---|--:|--:|",
             f"| partitioned: drop the partition | {part['rows']:,} | {part['seconds']} |",
             f"| plain: DELETE 10,000 rows a statement | {plain['rows']:,} | {plain['seconds']} "
             f"(+ VACUUM {plain['vacuum_after_s']}) |"]
    summary = {"loaded": {**asdict(loaded), "oldest": loaded.oldest.isoformat(), "newest": loaded.newest.isoformat()},
               "writes": write_summary, "queries": query_summary, "retention": retention}
    return summary, "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, object]:
    info = await machine_info()
    rng = random.Random(args.seed)
    started = time.perf_counter()
    try:
        print(f"loading {args.rows:,} rows over {args.months} months and the current one, twice")
        loaded = await load(args.rows, args.months)
        load_s = time.perf_counter() - started
        print(f"loaded in {load_s:.0f} s: {loaded}")
        writes = await measure_writes(args.batch_sizes, args.rows_per_case, args.rounds, rng)
        queries = await measure_queries(args.query_repeat, rng)
        retention = await measure_retention(loaded.oldest)
    finally:
        await recreate_database(drop_only=True)
    summary, table = report(loaded, writes, queries, retention)
    print(table)
    info["load_average_at_end"] = os.getloadavg()
    return {"machine": info, "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "finished": datetime.now(UTC).isoformat(), "load_s": round(load_s, 1),
            "total_s": round(time.perf_counter() - started, 1), **summary, "markdown": table}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
