"""Unit costs of one request through the gateway (issue 17): what a plain and a streamed request cost, counted
over a fixed number of requests, so that the capacity model (docs/CAPACITY.md) and the optimisation rounds
rest on measured figures.

Per cell ({plain, stream} x {c1, c16}, `--requests` each after a warm-up), over exactly the window from a
quiet stack to the moment the last request's usage row is stored: Redis commands (total and per command name,
with Redis's own time per command), network bytes and socket reads of Redis, round trips to Redis per
process (TCP segments, see bench/unit_costs_probe.py), PostgreSQL rows and bytes per table and WAL bytes,
CPU per process (API, worker, Redis, PostgreSQL backends, fake upstream) and RSS. Counts do not depend on
the machine's load; CPU does, so the load average is recorded with every cell. Then: the background Redis
traffic of an idle stack, the cost of streams held open (memory per open stream, CPU and commands per
chunk), what Redis keeps per request, and with `--profile` py-spy profiles of the API and the worker under
plain requests grouped by area (bench/profile_groups.py).

Run: `flock /tmp/llmgw-tests.lock .venv/bin/python -m bench.unit_costs [--requests 400] [--profile]
[--py-spy /tmp/pyspy-venv/bin/py-spy] [--out bench/results/unit-costs.json]` (about 2-3 minutes)."""

import argparse
import asyncio
import json
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import redis
import uvloop

from bench.gateway_proc import Child, Children, proc_status_kb
from bench.gateway_report import git_state, load_average, machine_info
from bench.gateway_stack import PROFILES, REPO, Gateway, Upstreams, drop_database, start_upstreams
from bench.profile_groups import group, per_request
from bench.unit_costs_client import Users, request_body
from bench.unit_costs_probe import Monitor, client_sockets, monitor_counts
from bench.unit_costs_report import markdown
from bench.unit_costs_stack import DATABASE, Stack, connect, launch, reading, wait_stats, wait_usage, window
from bench.vision import RssSampler

MODELS = {"instant": "bench-instant", "slow": "bench-slow"}
SLOW = ["--latency-ms", "200", "--tokens", "40", "--inter-token-ms", "100"]  # a 4.2 s stream, 10 chunks/s
CELLS = (("plain", 1), ("plain", 16), ("stream", 1), ("stream", 16))
IDLE_S = 3.0
MONITOR_REQUESTS = 50
PROFILE_RATE_HZ = 250


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def users(stack: Stack, model: str, stream: bool, concurrency: int) -> Users:
    headers = {"X-API-Key": stack.gateway.tenant_key, "Cache-Control": "no-cache, no-store"}
    return Users(f"{stack.gateway.url}/v1/chat/completions", headers, request_body(model, stream), stream,
                 concurrency)


def rss_mib(stack: Stack) -> dict[str, dict[str, float]]:
    """VmRSS (now) and VmHWM (peak over the process's life) per group, summed over its processes, in MiB."""
    out = {}
    for name, pids in stack.groups.items():
        out[name] = {key: sum(proc_status_kb(pid, key) or 0 for pid in pids) / 1024 for key in ("VmRSS", "VmHWM")}
    return out


async def settle(stack: Stack) -> dict[str, Any]:
    """Wait until every usage row so far is stored and the statistics have seen it: a quiet stack."""
    await wait_usage(stack, stack.usage_expected)
    tables, caught_up = await wait_stats(stack)
    return {"tables": tables, "caught_up": caught_up}


async def cell(stack: Stack, mode: str, concurrency: int, requests: int) -> dict[str, Any]:
    """Warm up (each user's connection open, two requests each, at least 20), wait for a quiet stack, then
    measure `requests` requests up to the moment the last one's usage row is stored."""
    async with users(stack, MODELS["instant"], mode == "stream", concurrency) as load:
        warm = await load.run(max(20, 2 * concurrency))
        stack.usage_expected += warm.ok
        quiet = await settle(stack)
        load_before = load_average()
        sampler = RssSampler({name: pids for name, pids in stack.groups.items() if name != "upstream"})
        sampler.start()
        before = await reading(stack)
        batch = await load.run(requests)
        stack.usage_expected += batch.ok
        flush_s = await wait_usage(stack, stack.usage_expected)
        after = await reading(stack)
        peak = sampler.finish()
    stats = await settle(stack)
    result = window(stack, before, after, batch.ok, (quiet["tables"], stats["tables"]))
    result.update({"mode": mode, "concurrency": concurrency, **batch.summary(), "warmup_errors": len(warm.errors),
                   "usage_flush_wait_s": flush_s, "stats_caught_up": quiet["caught_up"] and stats["caught_up"],
                   "rss_end_mib": rss_mib(stack), "rss_peak_in_window_mib": peak,
                   "loadavg": {"before": load_before, "after": load_average()}})
    log(f"{mode}/c{concurrency}: {batch.ok} ok, {len(batch.errors)} errors, "
        f"{result['redis_commands_per_request']:.2f} Redis commands and "
        f"{result['gateway_cpu_ms_per_request']:.2f} ms gateway CPU per request")
    return result


async def idle(stack: Stack) -> dict[str, Any]:
    """Background traffic of a quiet stack (heartbeats, the usage writer's reads, lease renewals) per second."""
    before = await reading(stack)
    await asyncio.sleep(IDLE_S)
    after = await reading(stack)
    seconds = after.at - before.at
    result = window(stack, before, after, 1)
    return {"window_s": seconds, "redis_calls_per_s": {k: v / seconds for k, v in result["redis"]["calls"].items()},
            "cpu_core_pct": {k: 100 * v / seconds for k, v in result["cpu_s"].items()}}


async def calibrate(stack: Stack, mode: str, requests: int) -> dict[str, Any]:
    """`requests` sequential requests under MONITOR: per request, the commands each process sends (a command
    or a pipeline member) and those run inside scripts, by name. Counts only; Redis is slowed meanwhile."""
    async with users(stack, MODELS["instant"], mode == "stream", 1) as load:
        stack.usage_expected += (await load.run(5)).ok
        await settle(stack)
        monitor = Monitor("127.0.0.1", stack.redis_port)
        try:
            batch = await load.run(requests)
            stack.usage_expected += batch.ok
            await wait_usage(stack, stack.usage_expected)
        finally:
            await asyncio.sleep(0.2)
            lines = monitor.stop()
        group_of = {pid: name for name, pids in stack.groups.items() for pid in pids}
        sources = {address: group_of.get(sock.pid, "other")
                   for address, sock in client_sockets(stack.redis_port).items()}
    counts = monitor_counts(lines, sources)
    n = max(batch.ok, 1)
    return {"requests": batch.ok, "errors": len(batch.errors),
            "per_request": {origin: {k: v / n for k, v in sorted(row.items(), key=lambda kv: -kv[1])}
                            for origin, row in counts.items()},
            "totals_per_request": {origin: sum(row.values()) / n for origin, row in counts.items()}}


async def hold_streams(stack: Stack, count: int) -> dict[str, Any]:
    """`count` slow streams (4.2 s, a chunk every 100 ms) held open at once: memory per open stream (RSS of the
    API and the worker, Redis's used_memory, against the quiet stack), and CPU, Redis commands and bytes per
    chunk over a 2 s window in the middle, when every stream is sending."""
    async with users(stack, MODELS["slow"], True, count) as load:
        warm = await load.run(count)  # opens every connection
        stack.usage_expected += warm.ok
        await settle(stack)
        rss_quiet, quiet = rss_mib(stack), stack.info.read()
        task = asyncio.create_task(load.run(count, record_chunks=True))
        await asyncio.sleep(1.0)
        first = await reading(stack)
        rss_open = rss_mib(stack)
        await asyncio.sleep(2.0)
        second = await reading(stack)
        batch = await task
        stack.usage_expected += batch.ok
    chunks = sum(1 for t in batch.chunk_times if first.at <= t <= second.at)
    result = window(stack, first, second, chunks)
    memory = {name: (rss_open[name]["VmRSS"] - rss_quiet[name]["VmRSS"]) * 1024 / count
              for name in ("api", "worker")}
    memory["redis_used_memory"] = (first.redis.stats["used_memory"] - quiet.stats["used_memory"]) / 1024 / count
    log(f"hold {count} streams: {chunks} chunks in {result['window_s']:.1f}s, {batch.ok} ok")
    return {"streams": count, **batch.summary(), "chunks_in_window": chunks, "per_chunk": result,
            "kib_per_open_stream": memory, "rss_quiet_mib": rss_quiet, "rss_open_mib": rss_open}


async def profile(stack: Stack, py_spy: str, cell_name: str, requests: int, work_dir: Path) -> dict[str, Any]:
    """py-spy on the API and the worker over `requests` requests of one cell (`plain/c16`, `stream/c64`);
    areas in us per request, scaled to the CPU per request measured from /proc over the same window (py-spy's
    pauses included)."""
    mode, concurrency = parse_cell(cell_name)
    async with users(stack, MODELS["instant"], mode == "stream", concurrency) as load:
        stack.usage_expected += (await load.run(max(20, 2 * concurrency))).ok
        await settle(stack)
        recorders = {}
        for name in ("api", "worker"):
            out = work_dir / f"profile-{name}-{mode}-c{concurrency}.txt"
            argv = [py_spy, "record", "--pid", str(stack.groups[name][0]), "--rate", str(PROFILE_RATE_HZ),
                    "--gil", "--format", "raw", "--output", str(out)]
            recorders[name] = (subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), out)
        try:
            await asyncio.sleep(1.5)
            before = await reading(stack)
            batch = await load.run(requests)
            after = await reading(stack)
        finally:
            for proc, _ in recorders.values():
                proc.send_signal(signal.SIGINT)
            for proc, _ in recorders.values():
                proc.wait(timeout=60)
        stack.usage_expected += batch.ok
    measured = window(stack, before, after, batch.ok)
    result: dict[str, Any] = {"mode": mode, "concurrency": concurrency, **batch.summary(),
                              "cpu_ms_per_request": measured["cpu_ms_per_request"]}
    for name, (proc, out) in recorders.items():
        if not out.exists():
            result[name] = {"problem": (proc.stderr.read() if proc.stderr else b"").decode()[-400:]}
            continue
        grouped = group(out.read_text())
        result[name] = {"busy_samples": grouped.busy, "idle_samples_dropped": grouped.idle, "raw_profile": str(out),
                        "areas": per_request(grouped, measured["cpu_ms_per_request"][name]),
                        "top_leaves": {leaf: round(n / grouped.busy, 4) for leaf, n in grouped.leaves.most_common(15)}}
    log(f"profile {cell_name}: {batch.ok} requests, API {measured['cpu_ms_per_request']['api']:.2f} ms, "
        f"worker {measured['cpu_ms_per_request']['worker']:.2f} ms per request")
    return result


def parse_cell(name: str) -> tuple[str, int]:
    """`plain/c16` -> ("plain", 16); the profiled cells are named as the measured ones."""
    mode, _, level = name.partition("/c")
    if mode not in ("plain", "stream") or not level.isdigit():
        raise ValueError(f"a profile cell is plain/cN or stream/cN, not {name!r}")
    return mode, int(level)


_ID_PART = re.compile(r"[0-9a-f]{8,}|[0-9a-f-]{32,}|\d+|[A-Za-z0-9_-]{20,}")


def key_census(port: int) -> dict[str, Any]:
    """What Redis holds after the run, by key pattern (ids replaced by `*`): keys, bytes (MEMORY USAGE), and
    the median TTL left: what a request leaves behind, and for how long."""
    client = redis.Redis(port=port)
    names = list(client.scan_iter(count=1000))
    patterns: dict[str, dict[str, Any]] = {}
    for start in range(0, len(names), 500):
        chunk = names[start:start + 500]
        pipe = client.pipeline(transaction=False)
        for name in chunk:
            pipe.memory_usage(name, samples=0)
            pipe.ttl(name)
            pipe.type(name)
        answers = pipe.execute()
        for index, name in enumerate(chunk):
            size, ttl, kind = answers[3 * index:3 * index + 3]
            pattern = ":".join(_ID_PART.sub("*", part) for part in name.decode(errors="replace").split(":"))
            row = patterns.setdefault(pattern, {"type": kind.decode(), "keys": 0, "bytes": 0, "ttls": []})
            row["keys"] += 1
            row["bytes"] += size or 0
            row["ttls"].append(ttl)
    for row in patterns.values():
        ttls = sorted(row.pop("ttls"))
        row["median_ttl_s"] = ttls[len(ttls) // 2]
    return {"keys": len(names), "used_memory": int(client.info("memory")["used_memory"]),
            "patterns": dict(sorted(patterns.items(), key=lambda kv: -int(kv[1]["bytes"])))}


async def measure(args: argparse.Namespace, started: tuple[Gateway, Upstreams, int, Child],
                  work_dir: Path) -> dict[str, Any]:
    gateway, upstreams, port, redis_child = started
    stack = await connect(gateway, upstreams, port, redis_child)
    log(f"stack up (Redis on :{port}, database {DATABASE}); warming up")
    for mode in ("plain", "stream"):
        async with users(stack, MODELS["instant"], mode == "stream", 4) as load:
            warm = await load.run(100)
            if warm.errors:
                raise RuntimeError(f"warm-up {mode}: {warm.errors[0]}")
            stack.usage_expected += warm.ok
    await settle(stack)
    results: dict[str, Any] = {"idle": await idle(stack), "cells": {}}
    for mode, concurrency in CELLS:
        results["cells"][f"{mode}/c{concurrency}"] = await cell(stack, mode, concurrency, args.requests)
    results["hold_streams"] = await hold_streams(stack, args.hold_streams)
    results["monitor"] = {mode: await calibrate(stack, mode, MONITOR_REQUESTS) for mode in ("plain", "stream")}
    if args.profile:
        # c1 cells get half the requests: they take longer per request and their profile settles sooner.
        results["profile"] = {
            name: await profile(stack, args.py_spy, name,
                                args.profile_requests // (2 if parse_cell(name)[1] == 1 else 1), work_dir)
            for name in args.profile_cells.split(",")}
    results["redis_census"] = key_census(port)
    results["rss_final_mib"] = rss_mib(stack)
    stack.info.close()
    await stack.pg.close()
    return results


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.unit_costs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="measured requests per cell")
    parser.add_argument("--hold-streams", type=int, default=100, help="streams held open at once")
    parser.add_argument("--profile", action="store_true", help="py-spy the API and the worker in --profile-cells")
    parser.add_argument("--profile-cells", default="plain/c1,plain/c16",
                        help="comma-separated cells to profile, e.g. plain/c1,plain/c64,stream/c1")
    parser.add_argument("--profile-requests", type=int, default=2000, help="profiled requests per cell (half at c1)")
    parser.add_argument("--py-spy", default="/tmp/pyspy-venv/bin/py-spy")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/unit-costs.json")
    args = parser.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    started, started_at, load_at_start, git_at_start = time.monotonic(), datetime.now(UTC), load_average(), git_state()
    work_dir = Path(tempfile.mkdtemp(prefix="bench-unit-costs-"))
    children = Children(work_dir)
    log(f"logs in {work_dir}")
    try:
        upstreams = start_upstreams(children, {"instant": PROFILES["instant"], "slow": SLOW})
        gateway, port, redis_child = launch(children, upstreams, work_dir, MODELS)
        results = uvloop.run(measure(args, (gateway, upstreams, port, redis_child), work_dir))
    finally:
        children.stop_all()
        drop_database(DATABASE)
    results["machine"] = machine_info(None, started_at, load_at_start, git_at_start)
    results["command"] = " ".join(["flock /tmp/llmgw-tests.lock .venv/bin/python -m bench.unit_costs",
                                   *map(shlex.quote, argv)])
    results["elapsed_s"] = time.monotonic() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    log(f"raw results in {args.out}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}): every started process was stopped")
        sys.exit(130)
