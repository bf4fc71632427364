"""Load generator of the gateway benchmark, run in its own process: `python -m bench.gateway_client` reads one
cell's spec (JSON) on stdin and prints the cell's result (JSON) on stdout.

Closed loop: `concurrency` coroutines each send a request, wait for the whole answer and send the next, each
over its own httpx HTTP/1.1 keep-alive connection (so `concurrency` connections in all), on uvloop. Requests
run for `warmup_s` unrecorded, then for `duration_s`; a request counts when it completes inside that window.
At both window edges the client reads its own CPU time, the CPU ticks of the server processes named in the
spec (`/proc/<pid>/stat`), the machine's busy CPU (`/proc/stat`) and the workers' queue-wait histograms, so
every number covers the same window."""

import asyncio
import contextlib
import json
import os
import ssl
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvloop

from bench.gateway_proc import cpu_delta, machine_busy_s, pid_group_cpu
from bench.gateway_stats import parse_histogram, summarise_ms

DRAIN_TIMEOUT_S = 30.0
MAX_ERROR_SAMPLES = 5
STREAM_TAIL_BYTES = 4096
MAX_EXTRA_WARMUP_S = 20.0


@dataclass
class Sample:
    """One finished request: its start and end (perf_counter seconds), time to first token, and outcome."""

    start: float
    end: float
    ttft: float | None
    error: str | None


@dataclass
class Window:
    """The measured window's edges and the readings taken at each."""

    start: float = 0.0
    end: float = 0.0
    readings: list[dict[str, Any]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    warmed: set[int] = field(default_factory=set)  # users that have finished at least one request
    warmup_s: float = 0.0


async def plain_request(client: httpx.AsyncClient, spec: dict[str, Any]) -> tuple[float | None, str | None]:
    response = await client.post(spec["url"], content=spec["content"], headers=spec["headers"])
    if response.status_code != 200:
        return None, f"HTTP {response.status_code}: {response.text[:120]}"
    expected = spec.get("expect_headers") or {}
    for name, value in expected.items():
        if response.headers.get(name) != value:
            return None, f"header {name}={response.headers.get(name)!r}, expected {value!r}"
    if b'"choices"' not in response.content:
        return None, f"no choices in {response.content[:120]!r}"
    return None, None


def _first_content(lines: list[bytes]) -> bool:
    """True when one of these complete SSE lines is a chunk carrying non-empty content."""
    for line in lines:
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        try:
            choices = json.loads(line[6:]).get("choices") or []
        except ValueError:
            continue
        if any((choice.get("delta") or {}).get("content") for choice in choices):
            return True
    return False


async def stream_request(client: httpx.AsyncClient, spec: dict[str, Any]) -> tuple[float | None, str | None]:
    """Read an SSE stream; parse JSON only until the first content chunk, then keep just the tail to check
    that the stream ended with a usage chunk and `[DONE]`."""
    started = time.perf_counter()
    ttft: float | None = None
    partial = tail = b""
    async with client.stream("POST", spec["url"], content=spec["content"], headers=spec["headers"]) as response:
        if response.status_code != 200:
            return None, f"HTTP {response.status_code}: {(await response.aread())[:120]!r}"
        async for chunk in response.aiter_raw():
            tail = (tail + chunk)[-STREAM_TAIL_BYTES:]
            if ttft is None:
                *lines, partial = (partial + chunk).split(b"\n")
                if _first_content(lines):
                    ttft = time.perf_counter() - started
    if ttft is None:
        return None, "stream without content"
    if b"data: [DONE]" not in tail or b"completion_tokens" not in tail:
        return ttft, f"stream end without usage or [DONE]: {tail[-160:]!r}"
    return ttft, None


async def user_loop(user: int, client: httpx.AsyncClient, spec: dict[str, Any], window: Window,
                    out: list[Sample]) -> None:
    send = stream_request if spec["stream"] else plain_request
    while not window.stop.is_set():
        start = time.perf_counter()
        try:
            ttft, error = await send(client, spec)
        except httpx.HTTPError as exc:
            ttft, error = None, f"{type(exc).__name__}: {exc}"[:160]
        out.append(Sample(start, time.perf_counter(), ttft, error))
        window.warmed.add(user)


async def scrape(client: httpx.AsyncClient, urls: list[str]) -> dict[str, float]:
    """The workers' queue-wait histograms, added up: cumulative count per `le` bound."""
    total: dict[str, float] = {}
    for url in urls:
        try:
            text = (await client.get(url, timeout=5)).text
        except httpx.HTTPError:
            continue
        for bound, count in parse_histogram(text, "llm_gateway_queue_wait_seconds").items():
            total[bound] = total.get(bound, 0.0) + count
    return total


async def reading(client: httpx.AsyncClient, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "client_cpu_s": time.process_time(),
        "server_cpu_s": pid_group_cpu(spec.get("pid_groups") or {}, spec.get("pg_database")),
        "machine_busy_s": machine_busy_s(),
        "queue_wait": await scrape(client, spec.get("metrics_urls") or []),
    }


async def run_window(spec: dict[str, Any], window: Window) -> None:
    """Warm up for `warmup_s` and until every user has finished a request (steady state, at most
    MAX_EXTRA_WARMUP_S more), then measure for `duration_s`."""
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=10) as side:
        await asyncio.sleep(spec["warmup_s"])
        deadline = time.perf_counter() + MAX_EXTRA_WARMUP_S
        while len(window.warmed) < spec["concurrency"] and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        window.warmup_s = time.perf_counter() - started
        window.readings.append(await reading(side, spec))
        window.start = time.perf_counter()
        await asyncio.sleep(spec["duration_s"])
        window.end = time.perf_counter()
        window.readings.append(await reading(side, spec))
    window.stop.set()


def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    groups = after["server_cpu_s"]
    return {
        "client_cpu_s": after["client_cpu_s"] - before["client_cpu_s"],
        "server_cpu_s": {name: cpu_delta(before["server_cpu_s"].get(name, {}), pids) for name, pids in groups.items()},
        "machine_busy_s": after["machine_busy_s"] - before["machine_busy_s"],
        "queue_wait_buckets": {le: after["queue_wait"][le] - before["queue_wait"].get(le, 0.0)
                               for le in after["queue_wait"]},
    }


def result(samples: list[Sample], window: Window, spec: dict[str, Any]) -> dict[str, Any]:
    inside = [s for s in samples if window.start <= s.end <= window.end]
    ok = [s for s in inside if s.error is None]
    errors = [s.error for s in inside if s.error is not None]
    span = window.end - window.start
    usage = delta(*window.readings)
    return {
        "requests": len(ok), "errors": len(errors), "error_samples": sorted(set(errors))[:MAX_ERROR_SAMPLES],
        "window_s": span, "throughput_rps": len(ok) / span,
        "latency_ms": summarise_ms([s.end - s.start for s in ok]),
        "ttft_ms": summarise_ms([s.ttft for s in ok if s.ttft is not None]) if spec["stream"] else None,
        "latencies_ms": [round(1000 * (s.end - s.start), 4) for s in ok],
        "ttfts_ms": [round(1000 * s.ttft, 4) for s in ok if s.ttft is not None],
        "warmup_s": window.warmup_s, "finished_after_window": sum(1 for s in samples if s.end > window.end), **usage,
    }


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    """One keep-alive connection per simulated user: `concurrency` httpx clients with a pool of one each.
    (One client with a pool of N costs O(N) per request in httpcore's pool bookkeeping: at N = 64 that alone
    saturated a core at under 100 requests/s.)"""
    concurrency = int(spec["concurrency"])
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    tls = ssl.create_default_context()  # unused (plain HTTP), but shared: each client would load its own CA file
    window = Window()
    samples: list[Sample] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(httpx.AsyncClient(limits=limits, verify=tls,
                                                                     timeout=spec.get("timeout_s", 60)))
                   for _ in range(concurrency)]
        users = [asyncio.create_task(user_loop(i, client, spec, window, samples)) for i, client in enumerate(clients)]
        await run_window(spec, window)
        _, late = await asyncio.wait(users, timeout=DRAIN_TIMEOUT_S)
        for task in late:
            task.cancel()
    return result(samples, window, spec)


def main() -> None:
    spec = json.loads(sys.stdin.read())
    # Encoded once: the body is the same for every request of a cell.
    spec["content"] = json.dumps(spec["body"]).encode()
    spec["headers"] = {**spec["headers"], "Content-Type": "application/json"}
    if spec.get("cpu") is not None:
        os.sched_setaffinity(0, {int(spec["cpu"])})
    print(json.dumps(uvloop.run(run(spec))))


if __name__ == "__main__":
    main()
