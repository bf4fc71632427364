"""Statistics of the gateway benchmark: percentiles of latency samples, Prometheus histogram parsing and
percentile estimates from bucket counts, and the merge of several rounds of one cell into one row."""

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_BUCKET = re.compile(r'^(?P<name>[a-z_]+)_bucket\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$')
_LE = re.compile(r'le="(?P<le>[^"]+)"')


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear between closest ranks; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarise_ms(seconds: Sequence[float]) -> dict[str, Any]:
    """n, p50, p90, p99, mean and max of durations given in seconds, in milliseconds."""
    ms = [value * 1000 for value in seconds]
    if not ms:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "mean": None, "max": None}
    return {"n": len(ms), "p50": percentile(ms, 50), "p90": percentile(ms, 90), "p99": percentile(ms, 99),
            "mean": sum(ms) / len(ms), "max": max(ms)}


def parse_histogram(text: str, name: str) -> dict[str, float]:
    """Cumulative bucket counts by `le` bound of one histogram in a Prometheus exposition, summed over any
    other labels."""
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        match = _BUCKET.match(line)
        if match is None or match["name"] != name:
            continue
        le = _LE.search(match["labels"])
        if le is not None:
            buckets[le["le"]] = buckets.get(le["le"], 0.0) + float(match["value"])
    return buckets


def histogram_quantile(buckets: Mapping[str, float], q: float) -> float | None:
    """Estimate the q-quantile (0-1), in seconds, from cumulative bucket counts, interpolating linearly inside
    the bucket as Prometheus does; None without observations. Beyond the last finite bound: that bound."""
    bounds = sorted((math.inf if le == "+Inf" else float(le), count) for le, count in buckets.items())
    total = bounds[-1][1] if bounds else 0.0
    if total <= 0:
        return None
    target = q * total
    lower, below = 0.0, 0.0
    for bound, count in bounds:
        if count >= target:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((target - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def add_buckets(parts: Sequence[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in parts:
        for le, count in part.items():
            total[le] = total.get(le, 0.0) + count
    return total


def merge_rounds(rounds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One cell of one system: samples pooled over its rounds, CPU and requests added up."""
    requests = sum(r["requests"] for r in rounds)
    window = sum(r["window_s"] for r in rounds)
    latencies = [ms / 1000 for r in rounds for ms in r["latencies_ms"]]
    ttfts = [ms / 1000 for r in rounds for ms in r["ttfts_ms"]]
    cpu: dict[str, float] = {}
    for r in rounds:
        for group, seconds in r["server_cpu_s"].items():
            cpu[group] = cpu.get(group, 0.0) + seconds
    client_cpu = sum(r["client_cpu_s"] for r in rounds)
    buckets = add_buckets([r["queue_wait_buckets"] for r in rounds])
    return {
        "rounds": len(rounds), "requests": requests, "errors": sum(r["errors"] for r in rounds),
        "error_samples": sorted({e for r in rounds for e in r["error_samples"]})[:5],
        "window_s": window, "throughput_rps": requests / window if window else 0.0,
        "throughput_rps_rounds": [r["throughput_rps"] for r in rounds],
        "latency_ms": summarise_ms(latencies), "ttft_ms": summarise_ms(ttfts) if ttfts else None,
        "server_cpu_s": cpu, "cpu_ms_per_request": {g: 1000 * s / requests if requests else None
                                                    for g, s in cpu.items()},
        "client_cpu_s": client_cpu, "client_cpu_core_pct": 100 * client_cpu / window if window else None,
        "client_cpu_ms_per_request": 1000 * client_cpu / requests if requests else None,
        "machine_busy_core_pct": 100 * sum(r["machine_busy_s"] for r in rounds) / window if window else None,
        "other_cpu_core_pct": _other(rounds, window),
        "queue_wait_ms": _queue_wait(buckets),
    }


def _other(rounds: Sequence[Mapping[str, Any]], window: float) -> float | None:
    """Busy CPU of the machine not attributed to the client or the system's processes, in % of a core: other
    users of this machine, kernel work, and Redis/Postgres for rows that do not read them."""
    if not window:
        return None
    attributed = sum(r["client_cpu_s"] + sum(r["server_cpu_s"].values()) for r in rounds)
    return 100 * (sum(r["machine_busy_s"] for r in rounds) - attributed) / window


def _queue_wait(buckets: Mapping[str, float]) -> dict[str, Any] | None:
    if not buckets or max(buckets.values()) <= 0:
        return None
    p50, p99 = histogram_quantile(buckets, 0.5), histogram_quantile(buckets, 0.99)
    return {"n": max(buckets.values()), "p50": p50 * 1000 if p50 is not None else None,
            "p99": p99 * 1000 if p99 is not None else None, "share_le_2ms": share_at(buckets, 0.002),
            "share_le_10ms": share_at(buckets, 0.01), "buckets": dict(buckets)}


def share_at(buckets: Mapping[str, float], bound_s: float) -> float | None:
    """Exact share of observations <= `bound_s` when that is a bucket bound (no interpolation needed)."""
    total = buckets.get("+Inf", 0.0)
    for le, count in buckets.items():
        if le != "+Inf" and math.isclose(float(le), bound_s):
            return count / total if total else None
    return None


def minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b
