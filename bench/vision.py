"""Benchmark of issue 13: the cost of a chat request carrying a 5 MB image, against a plain text request measured
in the same run, on the gateway as deployed (API + one worker on Redis and a fresh PostgreSQL database, the fake
upstream), started with bench/gateway_stack.py.

Cells: client format (OpenAI `/v1/chat/completions` with an `image_url` data URL, Anthropic `/v1/messages` with a
base64 `image` block) x target provider (openai, anthropic) x plain/stream x concurrency 1 and 4. In each cell the
text and image requests alternate in rounds (text, image, text, image). Per kind: API, worker, upstream and Redis
CPU per request (utime + stime from /proc), wall latency p50/p95, and the peak RSS of the API and the worker
sampled every 5 ms during the batch. Every answer is checked: the fake provider names what it received
(`Received image/png <N> bytes`). With `--profile`, py-spy samples the API and the worker during extra image
requests, and a few in-process timings (JSON parse and encode, base64 decode of the payload) are taken.

Run: `.venv/bin/python -m bench.vision [--docs docs/PERFORMANCE.md] [--out bench/results/vision.json]`."""

import argparse
import asyncio
import base64
import itertools
import json
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import timeit
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from bench.gateway_proc import Children, cpu_delta, pid_group_cpu, proc_status_kb, process_tree
from bench.gateway_report import git_state, load_average, machine_info
from bench.gateway_stack import (
    BENCH_DB,
    REPO,
    UPSTREAM_KEY,
    Gateway,
    drop_database,
    flush_redis,
    start_gateway,
    start_upstreams,
)
from bench.gateway_stats import percentile
from bench.vision_report import IMAGE_BYTES, KINDS, ROUNDS, markdown, write_docs

MODELS = {"openai": "vision-openai", "anthropic": "vision-anthropic"}
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
FORMATS = ("openai", "anthropic")
MODES = ("plain", "stream")
SAMPLE_S = 0.005
IDLE_FRAMES = {"select", "poll", "epoll", "sleep", "_run_once"}


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def fake_png(size: int, seed: int = 13) -> bytes:
    """`size` bytes that start like a PNG (signature and a valid IHDR chunk), then random bytes."""
    ihdr = (1024).to_bytes(4, "big") * 2 + bytes([8, 6, 0, 0, 0])
    head = b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + b"IHDR" + ihdr
    head += zlib.crc32(b"IHDR" + ihdr).to_bytes(4, "big")
    return head + random.Random(seed).randbytes(size - len(head))


def body(client: str, target: str, mode: str, image_b64: str | None) -> bytes:
    """The request body, encoded once: the same text turn, with the image as the client format carries it."""
    text = {"type": "text", "text": "What is in this picture?"}
    payload: dict[str, Any] = {"model": MODELS[target], "max_tokens": 64}
    if client == "openai":
        image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image_b64}"}}
        payload["messages"] = [{"role": "user", "content": [text, image] if image_b64 else [text]}]
        if mode == "stream":
            payload.update(stream=True, stream_options={"include_usage": True})
    else:
        block = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image_b64}}
        payload["messages"] = [{"role": "user", "content": [block, text] if image_b64 else [text]}]
        if mode == "stream":
            payload["stream"] = True
    return json.dumps(payload).encode()


def answer_text(client: str, mode: str, raw: bytes) -> str:
    """The answer's text, from a JSON answer or by joining a stream's text deltas."""
    if mode == "plain":
        data = json.loads(raw)
        if client == "openai":
            return str(data["choices"][0]["message"].get("content") or "")
        return "".join(b.get("text", "") for b in data["content"] if b.get("type") == "text")
    parts: list[str] = []
    for line in raw.split(b"\n"):
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        event = json.loads(line[6:])
        if client == "openai":
            parts.extend((c.get("delta") or {}).get("content") or "" for c in event.get("choices") or [])
        elif event.get("type") == "content_block_delta":
            parts.append(event["delta"].get("text", ""))
    return "".join(parts)


def check(client: str, mode: str, kind: str, status: int, raw: bytes) -> str | None:
    """The problem with an answer, or None: 200, the stream's end marker, and the image seen whole (or none)."""
    if status != 200:
        return f"HTTP {status}: {raw[:160]!r}"
    end = b"data: [DONE]" if client == "openai" else b"message_stop"
    if mode == "stream" and end not in raw[-2048:]:
        return f"stream without {end.decode()}"
    text = answer_text(client, mode, raw)
    expected = f"Received image/png {IMAGE_BYTES} bytes" if kind == "image" else None
    if (expected is None and "Received" in text) or (expected is not None and expected not in text):
        return f"unexpected answer: {text[:120]!r}"
    return None


class RssSampler(threading.Thread):
    """The largest VmRSS (summed over each group's processes) seen while running, sampled every SAMPLE_S."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        super().__init__(daemon=True)
        self.groups, self.peak_kb = groups, dict.fromkeys(groups, 0)
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            for name, pids in self.groups.items():
                rss = sum(proc_status_kb(pid, "VmRSS") or 0 for pid in pids)
                self.peak_kb[name] = max(self.peak_kb[name], rss)
            time.sleep(SAMPLE_S)

    def finish(self) -> dict[str, float]:
        self._done.set()
        self.join()
        return {name: kb / 1024 for name, kb in self.peak_kb.items()}


async def batch(gateway: Gateway, spec: dict[str, Any], n: int, concurrency: int,
                groups: dict[str, list[int]]) -> dict[str, Any]:
    """One warm-up request per user (it opens the connection), then `n` requests by `concurrency` users in a
    closed loop, with the server processes' CPU read at both edges and their RSS sampled in between."""
    url, content = f"{gateway.url}{PATHS[spec['client']]}", spec["content"]
    headers = {"X-API-Key": gateway.tenant_key, "Cache-Control": "no-cache, no-store",
               "Content-Type": "application/json", "anthropic-version": "2023-06-01"}
    latencies: list[float] = []
    errors: list[str] = []
    left = n

    async def one(client: httpx.AsyncClient, record: bool) -> None:
        started = time.perf_counter()
        try:
            response = await client.post(url, content=content, headers=headers)
            problem = check(spec["client"], spec["mode"], spec["kind"], response.status_code, response.content)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            problem = f"{type(exc).__name__}: {exc}"[:160]
        if record:
            latencies.append(time.perf_counter() - started)
            if problem:
                errors.append(problem)

    async def user(client: httpx.AsyncClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await one(client, True)

    clients = [httpx.AsyncClient(timeout=120) for _ in range(concurrency)]
    try:
        await asyncio.gather(*(one(c, False) for c in clients))
        sampler = RssSampler({"api": groups["api"], "worker": groups["worker"]})
        before, started = pid_group_cpu(groups, BENCH_DB), time.perf_counter()
        sampler.start()
        await asyncio.gather(*(user(c) for c in clients))
        window, after, peak = time.perf_counter() - started, pid_group_cpu(groups, BENCH_DB), sampler.finish()
    finally:
        for c in clients:
            await c.aclose()
    cpu = {g: cpu_delta(before[g], after.get(g, {})) for g in before}
    return {"latencies": latencies, "errors": errors, "cpu_s": cpu, "window_s": window, "peak_rss_mib": peak}


def summarise(batches: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [s * 1000 for b in batches for s in b["latencies"]]
    n = len(latencies)
    cpu: Counter[str] = Counter()
    for b in batches:
        cpu.update(b["cpu_s"])
    errors = [e for b in batches for e in b["errors"]]
    return {"n": n, "errors": len(errors), "error_samples": sorted(set(errors))[:3],
            "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "cpu_ms_per_request": {g: 1000 * s / n for g, s in cpu.items()} if n else {},
            "peak_rss_mib": {g: max(b["peak_rss_mib"][g] for b in batches) for g in ("api", "worker")},
            "throughput_rps": n / sum(b["window_s"] for b in batches)}


def run_matrix(gateway: Gateway, groups: dict[str, list[int]], bodies: dict[tuple[str, str, str, str], bytes],
               counts: dict[int, int]) -> dict[str, Any]:
    cells: dict[str, Any] = {}
    for (concurrency, n), client, target, mode in itertools.product(counts.items(), FORMATS, MODELS, MODES):
        label = f"{client}->{target}/{mode}/c{concurrency}"
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
        for _, kind in itertools.product(range(ROUNDS), KINDS):
            spec = {"client": client, "mode": mode, "kind": kind, "content": bodies[(client, target, mode, kind)]}
            runs[kind].append(asyncio.run(batch(gateway, spec, n // ROUNDS, concurrency, groups)))
        cells[label] = {kind: summarise(rs) for kind, rs in runs.items()}
        image, text = cells[label]["image"], cells[label]["text"]
        log(f"{label}: text p50 {text['p50_ms']:.1f} ms, image p50 {image['p50_ms']:.1f} ms, "
            f"errors {text['errors']}+{image['errors']}")
    return cells


def micro(image_b64: str, content: bytes) -> dict[str, float]:
    """In-process timings (ms, best of 5) of the steps a 5 MB image body goes through somewhere in the stack."""
    from shared.json_input import loads_strict

    payload = json.loads(content)
    steps: dict[str, Callable[[], object]] = {
        "json.loads(body)": lambda: json.loads(content), "loads_strict(body)": lambda: loads_strict(content),
        "json.dumps(payload)": lambda: json.dumps(payload),
        "b64decode(validate=True)": lambda: base64.b64decode(image_b64, validate=True)}
    return {name: 1000 * min(timeit.repeat(step, number=1, repeat=5)) for name, step in steps.items()}


def profile(gateway: Gateway, groups: dict[str, list[int]], content: bytes, py_spy: str,
            work_dir: Path) -> dict[str, Any]:
    """py-spy (collapsed stacks) on the API and the worker during 30 image requests at c1: `top_frames`."""
    recorders = {}
    for name, pid in (("api", groups["api"][0]), ("worker", groups["worker"][0])):
        out = work_dir / f"profile-{name}.txt"
        argv = [py_spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--output", str(out)]
        recorders[name] = (subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out)
    time.sleep(1.0)
    spec = {"client": "openai", "mode": "plain", "kind": "image", "content": content}
    asyncio.run(batch(gateway, spec, 30, 1, groups))
    result = {}
    for name, (proc, out) in recorders.items():
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        result[name] = top_frames(out.read_text() if out.exists() else "")
    return result


def top_frames(collapsed: str, top: int = 10) -> dict[str, Any]:
    """From py-spy raw output (`frame;frame;... count` per line), idle frames dropped (a thread-pool thread
    waiting for work, the selector): busy samples and the largest shares of them by leaf frame, each named
    with its three callers."""
    own: Counter[str] = Counter()
    busy = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [f.split(" (")[0] for f in stack.split(";")]
        if not stack or frames[-1].rsplit(".", 1)[-1] in IDLE_FRAMES or stack.endswith("thread.py:81)"):
            continue
        busy += int(count_text)
        own[" < ".join(frames[-1:-5:-1])] += int(count_text)
    return {"busy_samples": busy, "self_pct": {k: round(100 * v / busy, 1) for k, v in own.most_common(top)}}


def measure(args: argparse.Namespace, children: Children, work_dir: Path) -> dict[str, Any]:
    upstreams = start_upstreams(children, {"vision": ["--tokens", "16"]})
    url = upstreams.urls["vision"]
    routes = (f'models:\n  {MODELS["openai"]}:\n    - {{provider: openai, model: fake-model, base_url: "{url}/v1"}}\n'
              f'  {MODELS["anthropic"]}:\n    - {{provider: anthropic, model: fake-claude, base_url: "{url}"}}\n')
    gateway = start_gateway(children, upstreams, work_dir, routes_yaml=routes,
                            extra_env={"ANTHROPIC_API_KEY": UPSTREAM_KEY})
    groups = {"api": process_tree(gateway.api.pid), "worker": [w.pid for w in gateway.workers],
              "upstream": upstreams.pids(), **({"redis": [gateway.redis_pid]} if gateway.redis_pid else {})}
    image_b64 = base64.b64encode(fake_png(IMAGE_BYTES)).decode()
    bodies = {(c, t, m, k): body(c, t, m, image_b64 if k == "image" else None)
              for c in FORMATS for t in MODELS for m in MODES for k in KINDS}
    for key, content in bodies.items():  # smoke test, and a text-only warm-up before any image is sent
        if key[3] == "text":
            spec = {"client": key[0], "mode": key[2], "kind": key[3], "content": content}
            if errors := asyncio.run(batch(gateway, spec, 3, 1, groups))["errors"]:
                raise RuntimeError(f"smoke test {key}: {errors[0]}")
    hwm = {"text_only": {name: (proc_status_kb(pids[0], "VmHWM") or 0) / 1024
                         for name, pids in groups.items() if name in ("api", "worker")}}
    counts = {1: args.n, 4: args.n_c4}
    results: dict[str, Any] = {"cells": run_matrix(gateway, groups, bodies, counts)}
    hwm["end"] = {name: (proc_status_kb(pids[0], "VmHWM") or 0) / 1024
                  for name, pids in groups.items() if name in ("api", "worker")}
    results["vmhwm_mib"] = hwm
    results["body_bytes"] = {f"{c}/image": len(bodies[(c, "openai", "plain", "image")]) for c in FORMATS}
    if args.profile:
        py_spy = args.py_spy or shutil.which("py-spy")
        results["micro_ms"] = micro(image_b64, bodies[("openai", "openai", "plain", "image")])
        if py_spy:
            results["profile"] = profile(gateway, groups, bodies[("openai", "openai", "plain", "image")], py_spy,
                                         work_dir)
    return results


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.vision", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=30, help="requests per kind and cell at concurrency 1")
    parser.add_argument("--n-c4", type=int, default=40, help="requests per kind and cell at concurrency 4")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/vision.json")
    parser.add_argument("--docs", type=Path, default=None, help="markdown file to write the section into")
    parser.add_argument("--profile", action="store_true", help="py-spy the API and worker, time steps in-process")
    parser.add_argument("--py-spy", default=None, help="py-spy executable (default: on PATH)")
    args = parser.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    started, started_at, load_at_start, git_at_start = time.monotonic(), datetime.now(UTC), load_average(), git_state()
    work_dir = Path(tempfile.mkdtemp(prefix="bench-vision-"))
    children = Children(work_dir)
    log(f"starting the upstream and the gateway (logs in {work_dir})")
    try:
        results = measure(args, children, work_dir)
    finally:
        children.stop_all()
        drop_database()
        flush_redis()
    results["machine"] = machine_info(None, started_at, load_at_start, git_at_start)
    results["command"] = " ".join([".venv/bin/python -m bench.vision", *map(shlex.quote, argv)])
    results["elapsed_s"] = time.monotonic() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    report = markdown(results)
    print(report)
    if args.docs is not None:
        write_docs(args.docs, report)
        log(f"report written into {args.docs}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}): every started process was stopped")
        sys.exit(130)
