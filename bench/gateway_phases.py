"""The measurement phases of the gateway benchmark. Each cell runs its systems interleaved (A, B, C, A, B,
C...) for a number of rounds, each round in a fresh load-generator process (`bench.gateway_client`); the
rounds of a cell are pooled. Also: idle CPU, cache hits, one versus two workers, and peak memory."""

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bench.gateway_proc import proc_cpu_s, proc_status_kb
from bench.gateway_stack import REPO, Gateway, System, Upstreams
from bench.gateway_stats import merge_rounds, minus, ratio

PROMPT = "Say hello to the benchmark."
CONCURRENCY = (1, 16, 64)
MODES = ("plain", "stream")
CACHE_CONCURRENCY = (1, 16)
CLIENT_GRACE_S = 90.0


@dataclass(frozen=True)
class Timing:
    rounds: int
    duration_s: float
    warmup_s: float
    slow_warmup_s: float  # for the realistic upstream, whose requests take up to 0.7 s before load
    idle_s: float
    client_cpu: int | None = None


STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def build_spec(system: System, profile: str, mode: str, concurrency: int, timing: Timing,
               expect_headers: dict[str, str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": system.models[profile], "messages": [{"role": "user", "content": PROMPT}]}
    if mode == "stream":
        body.update({"stream": True, "stream_options": {"include_usage": True}})
    warmup = timing.warmup_s if profile == "instant" else timing.slow_warmup_s
    return {"url": system.url, "headers": system.headers, "body": body, "stream": mode == "stream",
            "concurrency": concurrency, "warmup_s": warmup, "duration_s": timing.duration_s,
            "pid_groups": system.pid_groups, "pg_database": system.pg_database,
            "metrics_urls": system.metrics_urls, "expect_headers": expect_headers or {}, "cpu": timing.client_cpu}


def run_client(spec: dict[str, Any]) -> dict[str, Any]:
    """One round in a fresh load-generator process; a failure is returned as `{"failed": reason}`."""
    timeout = spec["warmup_s"] + spec["duration_s"] + CLIENT_GRACE_S
    try:
        done = subprocess.run([sys.executable, "-m", "bench.gateway_client"], input=json.dumps(spec), cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"failed": f"load generator timed out after {timeout:.0f}s"}
    if done.returncode != 0:
        return {"failed": f"load generator exited {done.returncode}: {done.stderr.strip()[-400:]}"}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run_round(system: System, spec: dict[str, Any]) -> dict[str, Any]:
    if not system.alive():
        dead = [c.name for c in system.children if not c.alive()]
        return {"failed": f"process exited before the round: {', '.join(dead)}"}
    return run_client(spec)


Cell = list[tuple[System, dict[str, Any]]]


def run_cell(label: str, cell: Cell, timing: Timing, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the systems of one cell interleaved for `timing.rounds` rounds; pool each system's rounds."""
    names = list(names or [system.name for system, _ in cell])
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for _ in range(timing.rounds):
        for name, (system, spec) in zip(names, cell, strict=True):
            rounds[name].append(run_round(system, spec))
    out = {name: pool(results) for name, results in rounds.items()}
    log(f"{label:24s} " + "  ".join(_brief(name, row) for name, row in out.items()))
    return out


def pool(results: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in results if "failed" not in r]
    failures = [r["failed"] for r in results if "failed" in r]
    if not good:
        return {"failed": failures[0] if failures else "no rounds"}
    merged = merge_rounds(good)
    merged["failed_rounds"] = failures
    merged["round_results"] = [{k: v for k, v in r.items() if k not in ("latencies_ms", "ttfts_ms")} for r in good]
    return merged


def _brief(name: str, row: dict[str, Any]) -> str:
    if "failed" in row:
        return f"{name}: FAILED ({row['failed'][:80]})"
    latency = row["latency_ms"]
    p50 = f"{latency['p50']:.1f}" if latency["p50"] is not None else "-"
    p99 = f"{latency['p99']:.1f}" if latency["p99"] is not None else "-"
    return f"{name}: {row['throughput_rps']:.0f} rps p50 {p50} p99 {p99} ms err {row['errors']}"


def derive(cell: dict[str, Any]) -> dict[str, Any]:
    """Added latency and TTFT over direct, and gateway/LiteLLM ratios, for one cell."""
    direct = cell.get("direct", {})
    out: dict[str, Any] = {}
    for name in ("gateway", "litellm"):
        row = cell.get(name)
        if not row or "failed" in row or "failed" in direct:
            continue
        for key, field in (("latency", "latency_ms"), ("ttft", "ttft_ms")):
            if row.get(field) and direct.get(field):
                for q in ("p50", "p99"):
                    out[f"{name}_added_{key}_{q}_ms"] = minus(row[field][q], direct[field][q])
    gateway, litellm = cell.get("gateway", {}), cell.get("litellm", {})
    if gateway and litellm and "failed" not in gateway and "failed" not in litellm:
        out["throughput_ratio_gateway_litellm"] = ratio(gateway["throughput_rps"], litellm["throughput_rps"])
        for key in ("latency_p50", "latency_p99", "ttft_p50", "ttft_p99"):
            out[f"added_{key}_ratio_gateway_litellm"] = ratio(out.get(f"gateway_added_{key}_ms"),
                                                              out.get(f"litellm_added_{key}_ms"))
    return out


SystemsFor = Callable[[str], list[System]]


def run_matrix(systems_for: SystemsFor, profiles: Sequence[str], timing: Timing) -> dict[str, Any]:
    matrix: dict[str, Any] = {}
    for profile in profiles:
        for mode in MODES:
            for concurrency in CONCURRENCY:
                label = f"{profile}/{mode}/c{concurrency}"
                cell = [(s, build_spec(s, profile, mode, concurrency, timing)) for s in systems_for(profile)]
                result = run_cell(label, cell, timing)
                result["derived"] = derive(result)
                matrix[label] = result
    return matrix


def run_cache_hits(direct: System, gateway: Gateway, upstreams: Upstreams, timing: Timing) -> dict[str, Any]:
    """Cache hits of the gateway (a request answered before, no Cache-Control) against the instant upstream
    called directly, interleaved, plain, at concurrency 1 and 16."""
    hit = gateway.system("gateway_hit", upstreams, {})
    prime = build_spec(hit, "instant", "plain", 1, timing)
    answers = [httpx.post(hit.url, json=prime["body"], headers=hit.headers, timeout=30) for _ in range(2)]
    states = [a.headers.get("x-cache") for a in answers]
    out: dict[str, Any] = {"priming": states}
    for concurrency in CACHE_CONCURRENCY:
        cell = [(direct, build_spec(direct, "instant", "plain", concurrency, timing)),
                (hit, build_spec(hit, "instant", "plain", concurrency, timing, {"x-cache": "HIT"}))]
        result = run_cell(f"cache-hit/c{concurrency}", cell, timing, ["direct", "gateway_hit"])
        row, base = result["gateway_hit"], result["direct"]
        if "failed" not in row and "failed" not in base:
            result["derived"] = {f"hit_added_{q}_ms": minus(row["latency_ms"][q], base["latency_ms"][q])
                                 for q in ("p50", "p99")}
        out[f"c{concurrency}"] = result
    return out


def run_worker_scaling(gateway: Gateway, upstreams: Upstreams, timing: Timing) -> dict[str, Any]:
    """Gateway throughput at concurrency 64, plain, instant upstream, with one and then two worker processes,
    alternated per round (the second worker is started and stopped each round)."""
    rounds: dict[str, list[dict[str, Any]]] = {"1": [], "2": []}
    for _ in range(timing.rounds):
        one = gateway.system("gateway", upstreams, {"Cache-Control": "no-cache, no-store"})
        rounds["1"].append(run_round(one, build_spec(one, "instant", "plain", 64, timing)))
        gateway.start_worker()
        try:
            two = gateway.system("gateway", upstreams, {"Cache-Control": "no-cache, no-store"})
            rounds["2"].append(run_round(two, build_spec(two, "instant", "plain", 64, timing)))
        finally:
            gateway.stop_last_worker()
    out: dict[str, Any] = {f"workers_{n}": pool(results) for n, results in rounds.items()}
    log("workers 1 vs 2 (c64)     " + "  ".join(_brief(n, r) for n, r in out.items()))
    one_row, two_row = out["workers_1"], out["workers_2"]
    if "failed" not in one_row and "failed" not in two_row:
        out["throughput_ratio_2_over_1"] = ratio(two_row["throughput_rps"], one_row["throughput_rps"])
    return out


def measure_idle(gateway: Gateway, seconds: float) -> dict[str, Any]:
    """CPU of the API and the worker over `seconds` with no traffic, in percent of one core."""
    pids = {"api": gateway.api.pid, "worker": gateway.workers[0].pid}
    before = {name: proc_cpu_s(pid) or 0.0 for name, pid in pids.items()}
    started = time.perf_counter()
    time.sleep(seconds)
    wall = time.perf_counter() - started
    used = {name: (proc_cpu_s(pid) or 0.0) - before[name] for name, pid in pids.items()}
    result = {"window_s": wall, **{f"{name}_core_pct": 100 * cpu / wall for name, cpu in used.items()}}
    log(f"idle {wall:.1f}s: worker {result['worker_core_pct']:.2f}% of a core, api {result['api_core_pct']:.2f}%")
    return result


def memory(processes: dict[str, int]) -> dict[str, Any]:
    """Peak (VmHWM) and current (VmRSS) resident memory per process, in MiB."""
    out = {}
    for name, pid in processes.items():
        peak, current = proc_status_kb(pid, "VmHWM"), proc_status_kb(pid, "VmRSS")
        out[name] = {"pid": pid, "peak_rss_mib": peak / 1024 if peak else None,
                     "rss_mib": current / 1024 if current else None}
    return out
