"""Reporting of the usage-writer benchmark: the per-case summary of the measured samples, the markdown table,
and the machine, Postgres and Redis it ran on."""

import os
import platform
import statistics
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.usage_writer_measure import Case


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

