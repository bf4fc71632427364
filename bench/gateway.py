"""Benchmark of issue 5: the gateway as deployed (API + worker on Redis and PostgreSQL) against calling the
upstream directly and against the LiteLLM proxy, on this machine, in one interleaved run.

Upstream: the project's fake provider, `instant` (16 tokens, no latency) and `realistic` (200 ms, 50 tokens,
10 ms between tokens). Modes: plain and streaming, at concurrency 1, 16 and 64. Systems per cell, interleaved
per round: direct, gateway (`Cache-Control: no-cache, no-store`, so every request is queued), LiteLLM. Then
cache hits against direct, one versus two workers, idle worker CPU and peak memory per process. Prints a
markdown report, writes raw JSON to `--out` and the report into `docs/PERFORMANCE.md` (full runs).

Run: `.venv/bin/python -m bench.gateway [--quick] [--out bench/results/gateway.json]`."""

import argparse
import json
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench.gateway_phases import (
    Timing,
    log,
    measure_idle,
    memory,
    run_cache_hits,
    run_matrix,
    run_worker_scaling,
)
from bench.gateway_proc import Children, process_tree
from bench.gateway_report import check_targets, git_state, load_average, machine_info, markdown, write_docs
from bench.gateway_stack import (
    PROFILES,
    REPO,
    Gateway,
    LiteLLMLaunch,
    LiteLLMSetup,
    System,
    Upstreams,
    direct_systems,
    drop_database,
    ensure_litellm,
    flush_redis,
    launch_litellm,
    litellm_system,
    smoke_test,
    start_gateway,
    start_upstreams,
)

FULL = Timing(rounds=2, duration_s=5.0, warmup_s=1.0, slow_warmup_s=2.0, idle_s=10.0)
QUICK = Timing(rounds=1, duration_s=3.0, warmup_s=1.0, slow_warmup_s=1.0, idle_s=10.0)
SETTLE_S = 2.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s per system and cell (about 4 min)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/gateway.json", help="raw JSON results")
    parser.add_argument("--docs", type=Path, default=None,
                        help="markdown file to write the report into (default: docs/PERFORMANCE.md, full runs only)")
    parser.add_argument("--litellm-venv", type=Path, default=Path("/tmp/litellm-venv"))
    parser.add_argument("--skip-litellm", action="store_true", help="do not install or run LiteLLM")
    parser.add_argument("--client-cpu", type=int, default=None, help="pin the load generator to this CPU")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="do not measure: render the report of a stored run (with --docs to write it)")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def launch(args: argparse.Namespace, children: Children, upstreams: Upstreams,
           work_dir: Path) -> tuple[LiteLLMLaunch | None, LiteLLMSetup]:
    """Install (first time only) and start LiteLLM; its failure is recorded and never stops the run."""
    if args.skip_litellm:
        return None, LiteLLMSetup(args.litellm_venv, problem="skipped (--skip-litellm)")
    log("litellm: checking / installing ...")
    setup = ensure_litellm(args.litellm_venv, work_dir)
    if setup.problem:
        log(f"litellm unavailable: {setup.problem}")
        return None, setup
    return launch_litellm(children, setup, upstreams, work_dir), setup


def ready(started: LiteLLMLaunch | None, setup: LiteLLMSetup, upstreams: Upstreams) -> System | None:
    if started is None:
        return None
    try:
        system = litellm_system(started, upstreams)
    except RuntimeError as exc:
        setup.problem = f"did not start: {str(exc)[-600:]}"
    else:
        problem = next(filter(None, (smoke_test(system, p) for p in PROFILES)), None)
        if problem is None:
            return system
        setup.problem = f"smoke test failed: {problem}"
    log(f"litellm unavailable: {setup.problem}")
    return None


def measure(args: argparse.Namespace, timing: Timing, children: Children, work_dir: Path) -> dict[str, Any]:
    log(f"starting upstreams, LiteLLM and the gateway (logs in {work_dir})")
    upstreams = start_upstreams(children)
    started, setup = launch(args, children, upstreams, work_dir)
    gateway = start_gateway(children, upstreams, work_dir)
    directs = direct_systems(upstreams)
    queued = gateway.system("gateway", upstreams, {"Cache-Control": "no-cache, no-store"})
    for system, profile in [*((d, p) for p, d in directs.items()), *((queued, p) for p in PROFILES)]:
        if problem := smoke_test(system, profile):
            raise RuntimeError(f"smoke test failed: {problem}")
    litellm = ready(started, setup, upstreams)
    time.sleep(SETTLE_S)
    results: dict[str, Any] = {"litellm": {"version": setup.version, "problem": setup.problem,
                                           "install_s": setup.install_s}}
    results["idle"] = measure_idle(gateway, timing.idle_s)

    def systems_for(profile: str) -> list[System]:
        return [directs[profile], queued, *([litellm] if litellm and litellm.alive() else [])]

    results["matrix"] = run_matrix(systems_for, list(PROFILES), timing)
    results["cache_hit"] = run_cache_hits(directs["instant"], gateway, upstreams, timing)
    results["workers"] = run_worker_scaling(gateway, upstreams, timing)
    results["memory"] = memory(_named_pids(upstreams, gateway, litellm))
    if litellm is not None and not litellm.alive():
        results["litellm"]["problem"] = f"exited during the run: {litellm.children[0].log_tail(5)}"
    return results


def _named_pids(upstreams: Upstreams, gateway: Gateway, litellm: System | None) -> dict[str, int]:
    pids = {"gateway-api": gateway.api.pid, **{w.name: w.pid for w in gateway.workers}}
    pids.update({f"upstream-{p}": c.pid for p, c in upstreams.children.items()})
    if litellm is not None:
        tree = process_tree(litellm.children[0].pid)
        pids.update({("litellm" if i == 0 else f"litellm-child-{i}"): pid for i, pid in enumerate(tree)})
    return pids


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    timing = Timing(**{**(QUICK if args.quick else FULL).__dict__, "client_cpu": args.client_cpu})
    started, started_at, load_at_start = time.monotonic(), datetime.now(UTC), load_average()
    git_at_start = git_state()
    work_dir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    children = Children(work_dir)
    try:
        results = measure(args, timing, children, work_dir)
    finally:
        children.stop_all()
        drop_database()
        flush_redis()
    results["machine"] = machine_info(results["litellm"]["version"], started_at, load_at_start, git_at_start)
    results["command"] = command
    results["timing"] = timing.__dict__
    results["elapsed_s"] = time.monotonic() - started
    results["logs"] = str(work_dir)
    results["targets"] = check_targets(results)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: a background job inherits it ignored
        signal.signal(sig, _interrupt)
    if args.from_json is not None:  # re-render a stored run, e.g. after a change to the report's layout
        results = json.loads(args.from_json.read_text())
        results["targets"] = check_targets(results)
    else:
        results = run(args, " ".join([".venv/bin/python -m bench.gateway", *map(shlex.quote, argv)]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        log(f"raw results in {args.out}")
    report = markdown(results)
    print(report)
    docs = args.docs or (None if args.quick or args.from_json else REPO / "docs/PERFORMANCE.md")
    if docs is not None:
        write_docs(docs, report)
        log(f"report written into {docs}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc or 'Ctrl-C'}): every started process was stopped")
        sys.exit(130)
