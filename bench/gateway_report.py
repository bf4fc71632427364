"""Reporting of the gateway benchmark: the machine it ran on, issue 5's targets checked against the results,
and the markdown printed and written into `docs/PERFORMANCE.md` (between markers, so the hand-written
interpretation around it survives a re-run)."""

import asyncio
import os
import platform
import subprocess
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import redis

from bench.gateway_stack import PG_ADMIN_DSN, REDIS_URL, REPO
from bench.gateway_stats import ratio

BEGIN = "<!-- bench.gateway: generated section, rewritten by `python -m bench.gateway` -->"
END = "<!-- bench.gateway: end of generated section -->"
GROUPS = ("api", "worker", "redis", "postgres", "litellm", "upstream")


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git(*args: str, strip: bool = True) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout
        return out.strip() if strip else out
    except (OSError, subprocess.TimeoutExpired):
        return ""


async def _postgres_version() -> str:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def load_average() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def git_state() -> tuple[str, list[str]]:
    """The commit and the tracked files changed in the work tree: read when the run starts, since that is the
    code the gateway's processes load (edits made during a run do not reach them)."""
    # `-z`: NUL-separated entries, never stripped (a stripped " M path" line lost the path's first letter)
    status = _git("status", "--porcelain", "-z", "--untracked-files=no", strip=False)
    changed = [entry[3:] for entry in status.split("\0") if entry]
    return _git("rev-parse", "--short", "HEAD"), changed


def machine_info(litellm_version: str | None, started: datetime, load_at_start: list[str],
                 git_at_start: tuple[str, list[str]]) -> dict[str, Any]:
    """The machine and software of a run; called at its end (date, load average and git state at start
    passed in)."""
    commit, changed = git_at_start
    return {
        "nproc": os.cpu_count(), "cpu_model": _cpu_model(), "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_version": redis.Redis.from_url(REDIS_URL).info("server")["redis_version"],
        "postgres_version": asyncio.run(_postgres_version()), "litellm_version": litellm_version,
        "date": started.strftime("%Y-%m-%d %H:%M UTC"), "git_commit": commit,
        "git_uncommitted_tracked_files": changed, "loadavg_start": load_at_start, "loadavg_end": load_average(),
    }


# --- targets ------------------------------------------------------------------------------------------------

def _target(name: str, where: str, value: float | None, limit: float, kind: str, unit: str) -> dict[str, Any]:
    """kind `max`: value must be <= limit; `min`: value must be >= limit."""
    if value is None:
        return {"target": name, "where": where, "value": None, "limit": limit, "kind": kind, "unit": unit,
                "met": None, "status": "not measured"}
    met = value <= limit if kind == "max" else value >= limit
    if kind == "max":
        gap = f"{abs(limit - value):.2f} {unit} {'under' if met else 'over'}"
    elif met:
        gap = f"{value / limit:.1f} times the bar"
    else:
        gap = f"a factor {limit / value:.1f} short" if value > 0 else "nothing measured"
    return {"target": name, "where": where, "value": value, "limit": limit, "kind": kind, "unit": unit,
            "met": met, "status": f"{'met' if met else 'MISSED'} ({gap})"}


def _derived(results: dict[str, Any], cell: str, key: str) -> float | None:
    value = results["matrix"].get(cell, {}).get("derived", {}).get(key)
    return float(value) if value is not None else None


def _queue_wait_target(results: dict[str, Any], concurrency: int, q: str, limit: float) -> dict[str, Any]:
    """The gateway cell at this concurrency with the smallest share of jobs within `limit` ms. Met or missed
    is exact, from the bucket bound at the limit (p50 <= 2 ms iff at least 50% waited <= 2 ms); the value
    shown is the percentile interpolated inside its bucket."""
    needed = {"p50": 0.5, "p99": 0.99}[q]
    key = f"share_le_{limit:g}ms"
    worst: tuple[float, str, dict[str, Any]] | None = None
    for label, cell in results["matrix"].items():
        queue = cell.get("gateway", {}).get("queue_wait_ms")
        if label.endswith(f"/c{concurrency}") and queue and queue.get(key) is not None and (
                worst is None or queue[key] < worst[0]):
            worst = (queue[key], label, queue)
    name = f"queue wait {q} <= {limit:g} ms"
    if worst is None:
        return _target(name, f"c{concurrency}", None, limit, "max", "ms")
    share, label, queue = worst
    out = _target(name, f"worst at c{concurrency}: {label}", queue[q], limit, "max", "ms")
    out["met"] = share >= needed
    out["status"] = (f"{'met' if out['met'] else 'MISSED'} ({100 * share:.1f}% of jobs waited <= {limit:g} ms, "
                     f"{100 * needed:g}% needed)")
    return out


GATEWAY_PROCESSES = ("api", "worker", "redis", "postgres")
"""What issue 17's CPU target counts: every process of the gateway (API, worker, Redis, its PostgreSQL
backends), not the upstream or the load generator."""


def gateway_cpu_ms(results: dict[str, Any], cell: str) -> float | None:
    per = results["matrix"].get(cell, {}).get("gateway", {}).get("cpu_ms_per_request")
    if not per:
        return None
    return sum(float(per[name]) for name in GATEWAY_PROCESSES if per.get(name) is not None)


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = [_target("gateway CPU per plain request <= 1.2 ms (API + worker + Redis + PostgreSQL)",
                   "instant/plain/c64", gateway_cpu_ms(results, "instant/plain/c64"), 1.2, "max", "ms")]
    for profile in ("instant", "realistic"):
        for mode, name in (("plain", "plain throughput >= 10x LiteLLM"), ("stream", "streams throughput >= 10x")):
            cell = f"{profile}/{mode}/c64"
            out.append(_target(name, cell, _derived(results, cell, "throughput_ratio_gateway_litellm"), 10, "min", "x"))
    for profile in ("instant", "realistic"):
        for cell, q, limit in ((f"{profile}/plain/c1", "p50", 2), (f"{profile}/plain/c1", "p99", 5),
                               (f"{profile}/plain/c16", "p99", 15)):
            value = _derived(results, cell, f"gateway_added_latency_{q}_ms")
            out.append(_target(f"added latency {q} <= {limit} ms", cell, value, limit, "max", "ms"))
        cell = f"{profile}/stream/c1"
        out.append(_target("added TTFT p50 <= 2 ms", cell, _derived(results, cell, "gateway_added_ttft_p50_ms"),
                           2, "max", "ms"))
    for concurrency in (1, 16, 64):
        for q, limit in (("p50", 2), ("p99", 10)):
            out.append(_queue_wait_target(results, concurrency, q, limit))
    idle = results.get("idle", {}).get("worker_core_pct")
    out.append(_target("idle worker < 1% of a core", "10 s, no traffic", idle, 1, "max", "%"))
    for concurrency in (1, 16):
        hit = results.get("cache_hit", {}).get(f"c{concurrency}", {}).get("derived", {}).get("hit_added_p50_ms")
        out.append(_target("cache hit adds <= 1 ms at p50", f"c{concurrency}, vs direct instant", hit, 1, "max", "ms"))
    out.extend(_memory_targets(results.get("memory", {})))
    return out


def _memory_targets(memory: dict[str, Any]) -> Iterable[dict[str, Any]]:
    litellm = max((m["peak_rss_mib"] or 0 for n, m in memory.items() if n.startswith("litellm")), default=0)
    for name in ("gateway-api", "gateway-worker-1"):
        peak = memory.get(name, {}).get("peak_rss_mib")
        share = ratio(peak, litellm) if litellm else None
        yield _target("memory per process <= 1/4 of LiteLLM's", f"{name} peak RSS, % of LiteLLM's",
                      100 * share if share is not None else None, 25, "max", "%")


# --- markdown -----------------------------------------------------------------------------------------------

def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pair(a: float | None, b: float | None, digits: int = 1) -> str:
    return f"{_f(a, digits)} / {_f(b, digits)}"


def _cpu(row: dict[str, Any]) -> str:
    per = row.get("cpu_ms_per_request", {})
    return ", ".join(f"{g} {per[g]:.2f}" for g in GROUPS if per.get(g) is not None)


def _row(cells: Iterable[object]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _lat(row: dict[str, Any], field: str) -> str:
    stats = row.get(field) or {}
    return _pair(stats.get("p50"), stats.get("p99"), 2) if stats else ""


def _latency_row(label: str, name: str, row: dict[str, Any], derived: dict[str, Any]) -> str:
    profile, mode, conc = label.split("/")
    if "failed" in row:
        return _row([profile, mode, conc[1:], name, f"failed: {row['failed'][:60]}", *[""] * 6])
    added = _pair(derived.get(f"{name}_added_latency_p50_ms"), derived.get(f"{name}_added_latency_p99_ms"), 2)
    added_ttft = _pair(derived.get(f"{name}_added_ttft_p50_ms"), derived.get(f"{name}_added_ttft_p99_ms"), 2)
    streamed, relative = bool(row.get("ttft_ms")), name != "direct"
    return _row([profile, mode, conc[1:], name, f"{row['throughput_rps']:.0f}", row["requests"],
                 _lat(row, "latency_ms"), added if relative else "", _lat(row, "ttft_ms"),
                 added_ttft if streamed and relative else "", row["errors"]])


def _cpu_row(label: str, name: str, row: dict[str, Any]) -> str:
    if "failed" in row:
        return _row([label, name, "failed", "", "", "", ""])
    total = sum(v for v in row["cpu_ms_per_request"].values() if v is not None)
    return _row([label, name, _cpu(row), _f(total, 2), _lat(row, "queue_wait_ms"),
                 _f(row["client_cpu_core_pct"], 0), _f(row["other_cpu_core_pct"], 0)])


def _rows(matrix: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    for label, cell in matrix.items():
        for name in ("direct", "gateway", "litellm"):
            if name in cell:
                yield label, name, cell[name], cell.get("derived", {})


def latency_table(matrix: dict[str, Any]) -> list[str]:
    lines = [_row(["upstream", "mode", "conc.", "system", "req/s", "n", "latency p50 / p99 ms",
                   "added p50 / p99 ms", "TTFT p50 / p99 ms", "added TTFT p50 / p99 ms", "errors"]),
             "|" + "---|" * 11]
    lines += [_latency_row(label, name, row, derived) for label, name, row, derived in _rows(matrix)]
    return lines


def cpu_table(matrix: dict[str, Any]) -> list[str]:
    lines = [_row(["cell", "system", "server CPU ms per request, by process", "total", "queue wait p50 / p99 ms",
                   "client CPU % of a core", "other CPU % of a core"]), "|" + "---|" * 7]
    lines += [_cpu_row(label, name, row) for label, name, row, _ in _rows(matrix)]
    return lines


def ratio_table(matrix: dict[str, Any]) -> list[str]:
    lines = ["| cell | throughput gateway / LiteLLM | added p50 gateway / LiteLLM | added p99 gateway / LiteLLM | "
             "added TTFT p50 gateway / LiteLLM |", "|---|---|---|---|---|"]
    for label, cell in matrix.items():
        d = cell.get("derived", {})
        lines.append(f"| {label} | {_f(d.get('throughput_ratio_gateway_litellm'), 2)} | "
                     f"{_f(d.get('added_latency_p50_ratio_gateway_litellm'), 2)} | "
                     f"{_f(d.get('added_latency_p99_ratio_gateway_litellm'), 2)} | "
                     f"{_f(d.get('added_ttft_p50_ratio_gateway_litellm'), 2)} |")
    return lines


def cache_table(cache: dict[str, Any]) -> list[str]:
    lines = [_row(["conc.", "system", "req/s", "latency p50 / p99 ms", "hit adds p50 / p99 ms",
                   "server CPU ms/request", "errors"]), "|---|---|---|---|---|---|---|"]
    for key in ("c1", "c16"):
        cell = cache.get(key, {})
        derived = cell.get("derived", {})
        for name in ("direct", "gateway_hit"):
            row = cell.get(name) or {"failed": "not run"}
            if "failed" in row:
                lines.append(_row([key[1:], name, f"failed: {row['failed'][:60]}", "", "", "", ""]))
                continue
            added = _pair(derived.get("hit_added_p50_ms"), derived.get("hit_added_p99_ms"), 2)
            lines.append(_row([key[1:], name, f"{row['throughput_rps']:.0f}", _lat(row, "latency_ms"),
                               added if name == "gateway_hit" else "", _cpu(row), row["errors"]]))
    return lines


def workers_table(workers: dict[str, Any]) -> list[str]:
    lines = [_row(["workers", "req/s", "latency p50 / p99 ms", "queue wait p50 / p99 ms", "server CPU ms/request",
                   "errors"]), "|---|---|---|---|---|---|"]
    for n in ("1", "2"):
        row = workers.get(f"workers_{n}", {"failed": "not run"})
        if "failed" in row:
            lines.append(_row([n, f"failed: {row['failed'][:60]}", "", "", "", ""]))
            continue
        lines.append(_row([n, f"{row['throughput_rps']:.0f}", _lat(row, "latency_ms"), _lat(row, "queue_wait_ms"),
                           _cpu(row), row["errors"]]))
    return lines


def memory_table(memory: dict[str, Any]) -> list[str]:
    lines = ["| process | peak RSS MiB (VmHWM) | RSS at end MiB |", "|---|---|---|"]
    lines += [f"| {name} | {_f(m['peak_rss_mib'])} | {_f(m['rss_mib'])} |" for name, m in memory.items()]
    return lines


def targets_table(targets: list[dict[str, Any]]) -> list[str]:
    lines = ["| target (issues 5 and 17) | where | measured | status |", "|---|---|---|---|"]
    for t in targets:
        measured = "-" if t["value"] is None else f"{t['value']:.2f}{t['unit']}"
        lines.append(_row([t["target"], t["where"], measured, t["status"]]))
    return lines


def machine_lines(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    litellm = results["litellm"]
    changed = m["git_uncommitted_tracked_files"]
    return [
        f"- Machine: {m['nproc']} cores ({m['cpu_model']}), Linux {m['kernel']}; load average (1, 5, 15 min) "
        f"{' '.join(m['loadavg_start'])} at the start, {' '.join(m['loadavg_end'])} at the end.",
        f"- Python {m['python']}, Redis {m['redis_version']}, PostgreSQL {m['postgres_version']}, LiteLLM "
        f"{m['litellm_version'] or 'not available'}.",
        f"- Date {m['date']}, git commit {m['git_commit']} at the start of the run"
        + (f" with uncommitted changes in {len(changed)} tracked files ({', '.join(changed[:8])}"
           f"{', ...' if len(changed) > 8 else ''})." if changed else "."),
        f"- Command: `{results['command']}` ({results['elapsed_s'] / 60:.1f} min). Each cell: "
        f"{results['timing']['rounds']} round(s) x {results['timing']['duration_s']:g} s per system after a "
        f"{results['timing']['warmup_s']:g} s warm-up ({results['timing']['slow_warmup_s']:g} s for the realistic "
        "upstream), systems interleaved within each round (direct, gateway, LiteLLM).",
        *([f"- LiteLLM problem: {litellm['problem']}"] if litellm.get("problem") else []),
    ]


def markdown(results: dict[str, Any]) -> str:
    sections = [
        ("Run", machine_lines(results)),
        ("Targets", targets_table(results["targets"])),
        ("Latency and throughput per cell", latency_table(results["matrix"])),
        ("CPU per request and queue wait per cell", cpu_table(results["matrix"])),
        ("Gateway / LiteLLM ratios", ratio_table(results["matrix"])),
        ("Cache hits (instant upstream, plain)", cache_table(results.get("cache_hit", {}))),
        ("One and two workers (instant upstream, plain, concurrency 64)", workers_table(results.get("workers", {}))),
        ("Idle CPU", [f"- Worker: {_f(results['idle'].get('worker_core_pct'), 2)}% of a core, API: "
                      f"{_f(results['idle'].get('api_core_pct'), 2)}% of a core, over "
                      f"{results['idle'].get('window_s', 0):.1f} s with no traffic."]),
        ("Peak memory per process", memory_table(results.get("memory", {}))),
    ]
    return "\n\n".join(f"### {title}\n\n" + "\n".join(body) for title, body in sections) + "\n"


def write_docs(path: Path, generated: str) -> None:
    """Replace the generated section of `path` (creating the file or the section when missing)."""
    block = f"{BEGIN}\n\n{generated}\n{END}"
    text = path.read_text() if path.exists() else "# Performance\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
