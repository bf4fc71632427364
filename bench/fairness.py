"""Fair-scheduling benchmark of issue 7: does a tenant flooding the queue delay another tenant's interactive
requests? Target: the other tenant's queue wait at p99 with the flood at most its p99 with an empty queue
plus 20 ms.

Run: `.venv/bin/python -m bench.fairness` (about a minute). Holds /tmp/bench.lock while it runs (waits for
it if another benchmark holds it).

What it starts (real processes, each in its own group, all stopped at the end): the fake upstream
(`--latency-ms 60 --tokens 10 --inter-token-ms 3`: a job takes about 90 ms), one API process and
`--workers` workers (`--slots` each, `--interactive-slots` of them kept for interactive jobs) on Redis
db 13 and a fresh PostgreSQL database; two tenants (unlimited) made through the admin API.

Phases, in one run: (1) baseline: tenant B sends `--samples` interactive chat completions one at a time on
an empty queue; (2) flood: tenant A submits `--flood` batch jobs at once (POST /api/v1/jobs, 64 in
flight) while B sends interactive completions one at a time (each while A has jobs waiting), until A's
submissions are done and fewer than 5 % of A's jobs are still waiting. B's queue wait is read from each
job's record: `started_at - created_at` (enqueue to start, stamped by the API and by the worker's claim).
Writes bench/results/fairness.json (or `--output`) and prints a summary."""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from bench.gateway_proc import Children
from bench.gateway_stack import create_tenant, drop_database, start_gateway, start_upstreams

LOCK = Path("/tmp/bench.lock")
RESULTS = Path(__file__).resolve().parent / "results" / "fairness.json"
REDIS_URL = "redis://127.0.0.1:6379/13"
DATABASE = "llm_gateway_bench_fairness"
MODEL = "bench-fair"
PROFILE = "fair"
UPSTREAM_FLAGS = ["--latency-ms", "60", "--tokens", "10", "--inter-token-ms", "3"]
TARGET_MARGIN_S = 0.020
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "fairness"}]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(waits: list[float]) -> dict[str, float]:
    return {"n": len(waits), "p50_ms": round(percentile(waits, 0.50) * 1000, 2),
            "p99_ms": round(percentile(waits, 0.99) * 1000, 2), "max_ms": round(max(waits) * 1000, 2),
            "mean_ms": round(statistics.fmean(waits) * 1000, 2)}


async def queue_wait_s(redis: aioredis.Redis, job_id: str) -> float:
    created, started = await redis.hmget(f"gw:job:{job_id}", ["created_at", "started_at"])
    return float(started) - float(created)


async def interactive_once(http: httpx.AsyncClient, redis: aioredis.Redis, key: str) -> tuple[float, float]:
    """One interactive completion of tenant B: its queue wait and its whole latency."""
    body = {**BODY, "messages": [{"role": "user", "content": f"fairness {uuid.uuid4().hex}"}]}  # never a cache hit
    sent = time.perf_counter()
    response = await http.post("/v1/chat/completions", json=body, headers={"X-API-Key": key})
    latency = time.perf_counter() - sent
    response.raise_for_status()
    job_id = str(response.json()["id"]).removeprefix("chatcmpl-")
    return await queue_wait_s(redis, job_id), latency


async def flood(http: httpx.AsyncClient, key: str, count: int) -> list[str]:
    """Tenant A's batch jobs, submitted at once (64 requests in flight)."""
    gate = asyncio.Semaphore(64)

    async def one() -> str:
        async with gate:
            response = await http.post("/api/v1/jobs", json=BODY, headers={"X-API-Key": key})
            response.raise_for_status()
            return str(response.json()["id"])

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def waiting(redis: aioredis.Redis, queue_name: str) -> int:
    base = f"gw:fq:{queue_name}:ready"
    return int(await redis.zcard(f"{base}:interactive")) + int(await redis.zcard(f"{base}:batch"))


async def measure(url: str, queue_name: str, key_a: str, key_b: str, samples: int, count: int) -> dict[str, object]:
    redis = aioredis.Redis.from_url(REDIS_URL)
    async with httpx.AsyncClient(base_url=url, timeout=60,
                                 limits=httpx.Limits(max_connections=100, max_keepalive_connections=100)) as http:
        for _ in range(20):  # warm-up: connections, scripts, caches
            await interactive_once(http, redis, key_b)
        baseline = [await interactive_once(http, redis, key_b) for _ in range(samples)]
        started = time.perf_counter()
        submission = asyncio.create_task(flood(http, key_a, count))
        flooded: list[tuple[float, float]] = []
        depths: list[int] = []
        # B's requests, one at a time, from A's first submissions until fewer than 5 % of A's jobs wait.
        while not submission.done() or await waiting(redis, queue_name) > count * 0.05:
            depth = await waiting(redis, queue_name)
            if depth == 0:
                await asyncio.sleep(0.005)
                continue
            depths.append(depth)
            flooded.append(await interactive_once(http, redis, key_b))
        flood_ids = await submission
        submitted_s = time.perf_counter() - started
        while await waiting(redis, queue_name) > 0 or await redis.zcard(queue_name) > 0:
            await asyncio.sleep(0.05)
        drained_s = time.perf_counter() - started
        flood_waits = [await queue_wait_s(redis, job_id) for job_id in flood_ids]
    await redis.aclose()
    empty, busy = summary([w for w, _ in baseline]), summary([w for w, _ in flooded])
    return {
        "baseline_empty_queue": {**empty, "latency_p99_ms": summary([lat for _, lat in baseline])["p99_ms"]},
        "with_flood": {**busy, "latency_p99_ms": summary([lat for _, lat in flooded])["p99_ms"]},
        "flood": {"jobs": count, "submit_s": round(submitted_s, 2),
                  "waiting_at_b_samples_median": int(statistics.median(depths)), "waiting_max": max(depths),
                  "drain_s": round(drained_s, 2), "jobs_per_s": round(count / drained_s, 1),
                  "queue_wait_p50_ms": round(percentile(flood_waits, 0.5) * 1000, 1),
                  "queue_wait_max_ms": round(max(flood_waits) * 1000, 1)},
        "target": "p99 with flood <= p99 empty + 20 ms",
        "target_met": busy["p99_ms"] <= empty["p99_ms"] + TARGET_MARGIN_S * 1000,
    }


def machine() -> dict[str, object]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(), "os": platform.platform()}


@contextlib.contextmanager
def bench_lock() -> object:
    while True:
        try:
            LOCK.open("x").close()
            break
        except FileExistsError:
            time.sleep(20)
    try:
        yield None
    finally:
        LOCK.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as work, bench_lock():
        children = Children(Path(work))
        try:
            upstreams = start_upstreams(children, {PROFILE: UPSTREAM_FLAGS})
            env = {"WORKER_MAX_JOBS": str(args.slots), "WORKER_INTERACTIVE_SLOTS": str(args.interactive_slots),
                   "LOG_LEVEL": "WARNING"}
            gateway = start_gateway(children, upstreams, Path(work), redis_url=REDIS_URL, database=DATABASE,
                                    models={PROFILE: MODEL}, extra_env=env)
            for _ in range(args.workers - 1):
                gateway.start_worker()
            key_a, key_b = create_tenant(gateway.url, "flooder"), create_tenant(gateway.url, "interactive")
            figures = asyncio.run(measure(gateway.url, gateway.env["QUEUE_NAME"], key_a, key_b, args.samples,
                                          args.flood))
        finally:
            children.stop_all()
            drop_database(DATABASE)
    return {"benchmark": "fairness (issue 7)", "command": "python -m bench.fairness", "machine": machine(),
            "setup": {"workers": args.workers, "worker_max_jobs": args.slots, "upstream": " ".join(UPSTREAM_FLAGS),
                      "interactive_slots_per_worker": args.interactive_slots},
            **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=1000, help="tenant A's batch jobs")
    parser.add_argument("--samples", type=int, default=200, help="tenant B's requests on the empty queue")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=6, help="WORKER_MAX_JOBS of each worker (one kept interactive)")
    parser.add_argument("--interactive-slots", type=int, default=1, help="WORKER_INTERACTIVE_SLOTS")
    parser.add_argument("--output", type=Path, default=RESULTS)
    result = run(parser.parse_args())
    parser.parse_args().output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
