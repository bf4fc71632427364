"""CPU of one upstream call made by a worker's provider adapter, this checkout against a baseline commit's
adapters, in one run (issue 17, item 1).

Both implementations run in this process against one `llm-gateway fake-provider` (`--tokens 16`, no
latency): the current adapters are imported as usual, the baseline's `worker/providers/{openai,anthropic}.py`
are read with `git show <baseline>:...` and loaded as modules of their own (they import the unchanged
`worker.providers._common` and `sse`). Per cell (adapter kind x plain/stream) the two alternate batch by
batch over `--rounds`, each batch `--calls` calls at `--concurrency`, after a warm-up; the reading is this
process's CPU (`time.process_time`) per call, median over rounds, and the upstream's TCP connections as `ss`
sees them before and after the cell (ESTAB, and TIME-WAIT: connections this process closed) and the TIME-WAIT
sockets each side's batches added (the connections it closed after use), which show whether one SDK client
keeps its connections alive across calls. Results in `--out`, markdown on stdout.

Run: `.venv/bin/python -m bench.provider_call [--baseline main] [--calls 1000] [--rounds 5] [--concurrency 1]`
"""

import argparse
import asyncio
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.gateway_proc import Children
from bench.gateway_stack import REPO, start_upstreams
from shared.models import ChatRequest, Message, WireFormat
from shared.routing_table import Target
from worker.providers import anthropic as current_anthropic
from worker.providers import openai as current_openai

REQUEST = ChatRequest(model="bench", messages=[Message(role="user", content="hello there, benchmark")],
                      max_tokens=64)
KINDS = ("openai", "anthropic")
MODES = ("plain", "stream")
Call = Callable[[], Awaitable[None]]


def baseline_module(commit: str, path: str, name: str, work_dir: Path) -> ModuleType:
    """`path` as it is at `commit`, written to `work_dir` and imported as the module `name`."""
    source = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=REPO, check=True, capture_output=True,
                            text=True).stdout
    file = work_dir / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def adapter(module: ModuleType, kind: str, upstream: str) -> Any:
    provider = getattr(module, "OpenAIProvider" if kind == "openai" else "AnthropicProvider")
    return provider(api_key="bench-key", base_url=upstream + ("/v1" if kind == "openai" else ""),
                    timeout_s=30.0, api_key_lookup=lambda _: None)


def call_for(provider: Any, kind: str, mode: str) -> Call:
    target = Target(provider=kind, model="fake-gpt" if kind == "openai" else "fake-claude")
    source = WireFormat.OPENAI if kind == "openai" else WireFormat.ANTHROPIC
    request = REQUEST.model_copy(update={"source": source, "stream": mode == "stream"})

    async def plain() -> None:
        completion = await provider.complete(request, target)
        assert completion.usage.completion_tokens > 0

    async def stream() -> None:
        deltas: AsyncIterator[Any] = provider.stream(request, target)
        finish_reason = None
        async for delta in deltas:
            finish_reason = delta.finish_reason or finish_reason
        assert finish_reason is not None

    return plain if mode == "plain" else stream


async def batch(call: Call, calls: int, concurrency: int) -> float:
    """CPU seconds of this process per call over `calls` calls, `concurrency` at a time."""
    per_user = calls // concurrency

    async def user() -> None:
        for _ in range(per_user):
            await call()

    started = time.process_time()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    return (time.process_time() - started) / (per_user * concurrency)


def connections(port: int) -> dict[str, int]:
    out = subprocess.run(["ss", "-tan", f"dst 127.0.0.1:{port}"], check=True, capture_output=True,
                         text=True).stdout.splitlines()[1:]
    states = [line.split()[0] for line in out if line.strip()]
    return {state: states.count(state) for state in ("ESTAB", "TIME-WAIT")}


async def cell(sides: dict[str, Any], kind: str, mode: str, args: argparse.Namespace, port: int) -> dict[str, Any]:
    calls = {name: call_for(provider, kind, mode) for name, provider in sides.items()}
    for call in calls.values():
        await batch(call, max(50, args.concurrency * 10), args.concurrency)
    before = connections(port)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    closed = dict.fromkeys(calls, 0)
    for round_no in range(args.rounds):
        order = list(calls) if round_no % 2 == 0 else list(reversed(calls))
        for name in order:
            waiting = connections(port)["TIME-WAIT"]
            samples[name].append(await batch(calls[name], args.calls, args.concurrency))
            closed[name] += max(0, connections(port)["TIME-WAIT"] - waiting)
    after = connections(port)
    result: dict[str, Any] = {"kind": kind, "mode": mode, "connections_before": before, "connections_after": after}
    for name, values in samples.items():
        result[name] = {"cpu_us_median": statistics.median(values) * 1e6,
                        "cpu_us_rounds": [round(v * 1e6, 1) for v in values],
                        "connections_closed": closed[name]}
    result["saved_pct"] = 100 * (1 - result["current"]["cpu_us_median"] / result["baseline"]["cpu_us_median"])
    return result


async def run(args: argparse.Namespace, upstream: str, work_dir: Path) -> list[dict[str, Any]]:
    port = int(upstream.rsplit(":", 1)[1])
    modules = {kind: {"baseline": baseline_module(args.baseline, f"worker/providers/{kind}.py",
                                                  f"_baseline_{kind}", work_dir),
                      "current": current}
               for kind, current in (("openai", current_openai), ("anthropic", current_anthropic))}
    results = []
    for kind in KINDS:
        sides = {name: adapter(module, kind, upstream) for name, module in modules[kind].items()}
        for mode in MODES:
            results.append(await cell(sides, kind, mode, args, port))
            row = results[-1]
            print(f"{kind} {mode}: baseline {row['baseline']['cpu_us_median']:.0f} us, current "
                  f"{row['current']['cpu_us_median']:.0f} us ({row['saved_pct']:.0f} % less); connections closed "
                  f"{row['baseline']['connections_closed']} / {row['current']['connections_closed']}", flush=True)
        for provider in sides.values():
            await provider.aclose()
    return results


def load_average() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="commit whose adapters are the baseline")
    parser.add_argument("--calls", type=int, default=1000, help="calls per batch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "provider_call.json")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True, capture_output=True,
                            text=True).stdout.strip()
    baseline = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=REPO, check=True,
                              capture_output=True, text=True).stdout.strip()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-provider-call-") as log_dir:
        children = Children(Path(log_dir))
        try:
            upstreams = start_upstreams(children, {"instant": ["--tokens", "16"]})
            results = asyncio.run(run(args, upstreams.urls["instant"], Path(log_dir)))
        finally:
            children.stop_all()
    report = {"commit": commit, "baseline": baseline, "calls": args.calls, "rounds": args.rounds,
              "concurrency": args.concurrency, "python": platform.python_version(), "cpus": platform.machine(),
              "load_average_before": load_before, "load_average_after": load_average(), "cells": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n| call | baseline ({baseline}) us CPU | current ({commit}) us CPU | less | connections closed |"
          "\n|---|---|---|---|---|")
    for row in results:
        print(f"| {row['kind']} {row['mode']} | {row['baseline']['cpu_us_median']:.0f} | "
              f"{row['current']['cpu_us_median']:.0f} | {row['saved_pct']:.0f} % | "
              f"{row['baseline']['connections_closed']} / {row['current']['connections_closed']} |")


if __name__ == "__main__":
    main()
