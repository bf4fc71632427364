"""Paired A/B of two commits of the gateway: both run side by side (API + worker each, own Redis db and
database) on one fake upstream, and the load alternates between them, so the noise of a shared 2-core machine
(other processes, CPU frequency, a test suite) hits both alike. Sequential cells (c1) alternate request by
request; concurrent cells drive both at the same concurrency at the same time, so the cheaper one completes
more requests. This is the instrument for "within N % of the commit before": back-to-back runs of
`bench.gateway` on a noisy machine moved single cells by 10-20 % between identical runs (docs/PERFORMANCE.md).

Run: `.venv/bin/python -m bench.paired --baseline a50bc3f [--rounds 3] [--out bench/results/paired.json]`
(the baseline is checked out into a temporary git worktree and removed afterwards; "current" is this
checkout)."""

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.gateway_proc import Children, proc_cpu_s, process_tree
from bench.gateway_stack import PROFILES, REPO, drop_database, flush_redis, start_gateway, start_upstreams

SIDES = {"current": ("redis://127.0.0.1:6379/9", "llm_gw_paired_current"),
         "baseline": ("redis://127.0.0.1:6379/10", "llm_gw_paired_baseline")}
MODEL = "bench-instant"
PROMPT = "hello there, benchmark"
CELLS = [("plain", 1), ("stream", 1), ("plain", 16), ("stream", 16), ("plain", 64), ("stream", 64)]


def body_for(mode: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
    if mode == "stream":
        body.update({"stream": True, "stream_options": {"include_usage": True}})
    return body


def cpu_s(pids: list[int]) -> float:
    return sum(proc_cpu_s(pid) or 0.0 for pid in pids)


class Side:
    """One gateway under test as the load generator drives it."""

    def __init__(self, name: str, url: str, key: str, pids: list[int], api_pids: list[int]) -> None:
        self.name, self.url, self.pids, self.api_pids = name, f"{url}/v1/chat/completions", pids, api_pids
        self.headers = {"X-API-Key": key, "Cache-Control": "no-cache, no-store"}


async def _post(client: httpx.AsyncClient, side: Side, body: dict[str, Any]) -> float:
    started = time.perf_counter()
    response = await client.post(side.url, json=body, headers=side.headers)
    if response.status_code != 200 or (body.get("stream") and "[DONE]" not in response.text):
        raise RuntimeError(f"{side.name}: HTTP {response.status_code} {response.text[:200]}")
    return (time.perf_counter() - started) * 1000


async def sequential(sides: list[Side], body: dict[str, Any], requests: int) -> dict[str, dict[str, float]]:
    """c1: A, B, B, A, ... one request at a time; CPU per request and latency percentiles per side."""
    latencies: dict[str, list[float]] = {side.name: [] for side in sides}
    cpu_before = {side.name: cpu_s(side.pids) for side in sides}
    api_before = {side.name: cpu_s(side.api_pids) for side in sides}
    async with httpx.AsyncClient(timeout=60) as client:
        for index in range(requests):
            for side in (sides if index % 2 == 0 else sides[::-1]):
                latencies[side.name].append(await _post(client, side, body))
    return {side.name: {"cpu_ms": (cpu_s(side.pids) - cpu_before[side.name]) / requests * 1000,
                        "api_cpu_ms": (cpu_s(side.api_pids) - api_before[side.name]) / requests * 1000,
                        "p50_ms": statistics.median(latencies[side.name]),
                        "p99_ms": statistics.quantiles(latencies[side.name], n=100)[98],
                        "rps": 0.0} for side in sides}


async def concurrent(sides: list[Side], body: dict[str, Any], concurrency: int,
                     duration_s: float) -> dict[str, dict[str, float]]:
    """Both sides at `concurrency` at once for `duration_s`: throughput and CPU per request per side."""
    counts = {side.name: 0 for side in sides}
    cpu_before = {side.name: cpu_s(side.pids) for side in sides}
    api_before = {side.name: cpu_s(side.api_pids) for side in sides}
    started = time.monotonic()
    stop_at = started + duration_s

    async def drive(side: Side) -> None:
        limits = httpx.Limits(max_connections=concurrency + 4)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            async def loop() -> None:
                while time.monotonic() < stop_at:
                    await _post(client, side, body)
                    counts[side.name] += 1
            await asyncio.gather(*(loop() for _ in range(concurrency)))

    await asyncio.gather(*(drive(side) for side in sides))
    elapsed = time.monotonic() - started
    done = {side.name: max(counts[side.name], 1) for side in sides}
    return {side.name: {"cpu_ms": (cpu_s(side.pids) - cpu_before[side.name]) / done[side.name] * 1000,
                        "api_cpu_ms": (cpu_s(side.api_pids) - api_before[side.name]) / done[side.name] * 1000,
                        "rps": counts[side.name] / elapsed} for side in sides}


def start_sides(children: Children, work: Path, baseline_tree: Path) -> list[Side]:
    upstreams = start_upstreams(children, {"instant": PROFILES["instant"]})
    sides = []
    for name, (redis_url, database) in SIDES.items():
        (work / name).mkdir()
        extra = {"PYTHONPATH": str(baseline_tree)} if name == "baseline" else {"PYTHONPATH": str(REPO)}
        gateway = start_gateway(children, upstreams, work / name, redis_url=redis_url, database=database,
                                models={"instant": MODEL}, extra_env=extra)
        api = process_tree(gateway.api.pid)
        sides.append(Side(name, gateway.url, gateway.tenant_key, api + [w.pid for w in gateway.workers], api))
    return sides


async def measure(sides: list[Side], rounds: int, requests: int, duration_s: float) -> list[dict[str, Any]]:
    await sequential(sides, body_for("plain"), 100)  # warm-up: connections, imports, JIT-free caches
    results = []
    for mode, concurrency in CELLS:
        for round_index in range(rounds):
            if concurrency == 1:
                figures = await sequential(sides, body_for(mode), requests)
            else:
                figures = await concurrent(sides, body_for(mode), concurrency, duration_s)
            results.append({"mode": mode, "concurrency": concurrency, "round": round_index, **figures})
            print(f"{mode}/c{concurrency} round {round_index}: {json.dumps(figures)}", file=sys.stderr, flush=True)
    return results


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| cell | current / baseline: throughput (c>1) | CPU ms per request (API + worker), current vs "
             "baseline | API CPU ms per request, current vs baseline | p50 ms (c1), current vs baseline |",
             "|---|---|---|---|---|"]
    for mode, concurrency in CELLS:
        rows = [r for r in results if r["mode"] == mode and r["concurrency"] == concurrency]
        cur = {k: statistics.mean(r["current"][k] for r in rows) for k in rows[0]["current"]}
        base = {k: statistics.mean(r["baseline"][k] for r in rows) for k in rows[0]["baseline"]}
        ratio = f"{cur['rps'] / base['rps']:.3f}" if concurrency > 1 else "(sequential)"
        latency = f"{cur['p50_ms']:.2f} vs {base['p50_ms']:.2f} ({cur['p50_ms'] / base['p50_ms']:.3f})" \
            if concurrency == 1 else ""
        lines.append(f"| {mode}/c{concurrency} | {ratio} | {cur['cpu_ms']:.2f} vs {base['cpu_ms']:.2f} "
                     f"({cur['cpu_ms'] / base['cpu_ms']:.3f}) | {cur['api_cpu_ms']:.2f} vs {base['api_cpu_ms']:.2f} "
                     f"({cur['api_cpu_ms'] / base['api_cpu_ms']:.3f}) | {latency} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.paired", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="the commit to compare this checkout with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=400, help="requests per side per sequential round")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per concurrent round")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/paired.json")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-paired-"))
    tree = work / "baseline-tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), args.baseline], check=True,
                   capture_output=True)
    children = Children(work)
    try:
        sides = start_sides(children, work, tree)
        results = asyncio.run(measure(sides, args.rounds, args.requests, args.duration))
    finally:
        children.stop_all()
        for redis_url, database in SIDES.values():
            drop_database(database)
            flush_redis(redis_url)
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    record = {"current": head, "baseline": args.baseline, "rounds": args.rounds, "requests": args.requests,
              "duration_s": args.duration, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
