"""Groups a py-spy profile (`py-spy record --format raw`: one `frame;frame;... count` line per stack, root first)
into the areas the issue-17 work is planned by, so that "where does a request's CPU go" reads as microseconds
per request per area rather than as a flame graph.

A sample belongs to the area of the frame nearest its leaf that is not *transparent*: asyncio, selectors,
sockets, anyio, h11 and the like do work on behalf of whoever called them (a socket write is the Redis
client's when redis-py called it, the HTTP server's when uvicorn did). Samples whose whole stack is transparent
are the event loop's own. Idle samples (py-spy leaves out threads waiting in a system call unless `--idle`)
never reach the file. Each area also says which area called into it (`via`), so JSON encoding inside the
OpenAI SDK is told apart from our own.

Run on a stored profile: `python -m bench.profile_groups PROFILE.txt [--cpu-ms 2.7]` (with `--cpu-ms`, the
shares become microseconds per request)."""

import argparse
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

EVENT_LOOP = "event loop (asyncio/uvloop: socket I/O, scheduling)"
# A leaf that is the loop's entry point means the loop's C code (uvloop) was running: its socket reads and
# writes and its scheduling, for whoever is above it.
LOOP_LEAVES = ("Runner.run", "BaseEventLoop.run_forever", "BaseEventLoop.run_until_complete", "BaseEventLoop._run_once")
OTHER_LIBRARY = "other libraries"
# Packages (first component of a frame's path) doing work for their caller.
TRANSPARENT = {
    "asyncio", "selectors", "socket", "ssl", "contextlib", "functools", "typing", "typing_extensions", "abc",
    "enum", "_weakrefset", "weakref", "threading", "concurrent", "anyio", "sniffio", "h11", "copy", "dataclasses",
    "inspect", "re", "collections", "uvloop", "<frozen", "types", "operator", "base64", "hashlib", "uuid", "datetime",
    "time", "random", "string", "codecs", "encodings", "email", "urllib", "http", "ipaddress", "idna", "certifi",
    "async_timeout", "queue", "traceback", "linecache", "warnings", "os", "posixpath", "genericpath",
    "_collections_abc", "llm-gateway", "cli", "worker/main.py",
}
# Leaf frames of a thread waiting, should py-spy count one as busy (without `--gil` it can).
IDLE_LEAVES = (("select", "selectors.py"), ("_worker", "concurrent/futures/thread.py"), ("wait", "threading.py"))
LIBRARY_AREAS = {
    "json": "JSON encode/decode", "orjson": "JSON encode/decode", "msgspec": "JSON encode/decode",
    "logging": "logging", "structlog": "logging",
    "prometheus_client": "metrics",
    "redis": "Redis client", "hiredis": "Redis client",
    "openai": "SDK request pipeline (openai/anthropic)", "anthropic": "SDK request pipeline (openai/anthropic)",
    "httpx": "httpx/httpcore transport", "httpcore": "httpx/httpcore transport",
    "httpx2": "httpx/httpcore transport", "httpcore2": "httpx/httpcore transport",
    "uvicorn": "HTTP server (uvicorn/httptools)", "httptools": "HTTP server (uvicorn/httptools)",
    "starlette": "FastAPI/Starlette routing + middleware", "fastapi": "FastAPI/Starlette routing + middleware",
    "pydantic": "pydantic validation/serialisation", "pydantic_core": "pydantic validation/serialisation",
    "arq": "arq + our poll loop",
    "asyncpg": "usage writer + PostgreSQL", "sqlalchemy": "usage writer + PostgreSQL",
    "sqlmodel": "usage writer + PostgreSQL",
    "tiktoken": "auth + admission (limits, estimate, budget)",
}
# Our modules (path from the repository root), most specific first.
OWN_AREAS: tuple[tuple[str, str], ...] = (
    ("shared/json_input.py", "JSON encode/decode"),
    ("shared/logs.py", "logging"),
    ("shared/metrics", "metrics"), ("api/metrics.py", "metrics"),
    ("shared/redis.py", "Redis client"), ("shared/scripts.py", "Redis client"),
    ("api/http_protocol.py", "HTTP server (uvicorn/httptools)"),
    ("api/middleware.py", "API middleware + request context (ours)"),
    ("api/request_context.py", "API middleware + request context (ours)"),
    ("api/errors.py", "API middleware + request context (ours)"),
    *((path, "auth + admission (limits, estimate, budget)") for path in (
        "api/deps.py", "api/admission", "api/budget_refusal.py", "shared/tenant_cache.py", "shared/limits.py",
        "shared/reservation.py", "shared/api_keys.py", "shared/key_usage.py", "shared/estimate.py",
        "shared/token_count.py", "shared/tiktoken_files.py", "shared/pricing.py", "shared/budget",
        "shared/attribution.py", "shared/tenants.py", "shared/keys.py")),
    *((path, "arq + our poll loop") for path in (
        "worker/gateway_worker.py", "worker/doorbell.py", "worker/lease.py", "shared/fair_queue.py",
        "shared/queue.py")),
    *((path, "usage writer + PostgreSQL") for path in (
        "worker/usage_writer.py", "shared/usage_stream.py", "shared/db/")),
    *((path, "job records + event streams (ours)") for path in (
        "shared/jobs.py", "shared/streams.py", "shared/job_view.py", "api/relay.py", "worker/stream_output.py")),
    *((path, "wire formats + request model (ours)") for path in (
        "shared/wire/", "shared/models.py", "shared/content.py", "shared/endpoint", "api/body.py",
        "api/responses.py", "api/streaming.py", "worker/providers/")),
    ("api/", "API routes + completion flow (ours, other)"),
    ("worker/", "worker job code (ours, other)"),
    ("shared/", "shared code (ours, other)"),
    ("cli/", "shared code (ours, other)"),
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*?)(?::\d+)?\)$")
_OWN_ROOT = re.compile(r"(?:^|/)((?:api|worker|shared|cli|bench)/.*)$")
_STDLIB = re.compile(r"/python3\.\d+/(.*)$")


def relative_path(path: str) -> str:
    """A frame's file relative to where it was imported from: `openai/_base_client.py`, `json/decoder.py`,
    `api/deps.py`."""
    if "site-packages/" in path:
        return path.rsplit("site-packages/", 1)[1]
    if own := _OWN_ROOT.search(path):
        return own[1]
    if stdlib := _STDLIB.search(path):
        return stdlib[1]
    return path.lstrip("/")


def frame_area(path: str) -> str | None:
    """The area of one frame's file, or None when it is transparent."""
    rel = relative_path(path)
    top = rel.split("/", 1)[0].removesuffix(".py")
    if rel in TRANSPARENT:
        return None
    if top in LIBRARY_AREAS:
        return LIBRARY_AREAS[top]
    if top in TRANSPARENT or top.startswith("<frozen") or top.startswith("_"):
        return None
    for prefix, area in OWN_AREAS:
        if rel.startswith(prefix):
            return area
    return OTHER_LIBRARY


@dataclass
class Grouped:
    """Busy samples in all, per area, per area and the area that called into it, and per leaf frame; samples
    dropped as idle (IDLE_LEAVES)."""

    busy: int = 0
    idle: int = 0
    areas: Counter[str] = field(default_factory=Counter)
    via: Counter[tuple[str, str]] = field(default_factory=Counter)
    leaves: Counter[str] = field(default_factory=Counter)


def parse_frame(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    return (match["function"], match["path"]) if match else (frame.strip(), "")


def classify(frames: Sequence[str]) -> tuple[str, str]:
    """(area, calling area) of one stack, root first."""
    if frames and parse_frame(frames[-1])[0] in LOOP_LEAVES:
        return EVENT_LOOP, "-"
    areas = [frame_area(parse_frame(frame)[1]) for frame in frames]
    found = [area for area in areas if area is not None]
    if not found:
        return EVENT_LOOP, "-"
    area = found[-1]
    return area, next((a for a in reversed(found[:-1]) if a != area), "-")


def group(raw: str) -> Grouped:
    """Group py-spy raw output (lines of `frames count`)."""
    out = Grouped()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        count = int(count_text)
        function, path = parse_frame(frames[-1]) if frames else ("?", "")
        if any(function.endswith(name) and relative_path(path) == where for name, where in IDLE_LEAVES):
            out.idle += count
            continue
        area, caller = classify(frames)
        out.busy += count
        out.areas[area] += count
        out.via[(area, caller)] += count
        out.leaves[f"{function} ({relative_path(path)})"] += count
    return out


def per_request(grouped: Grouped, cpu_ms_per_request: float, top_via: int = 3) -> list[dict[str, object]]:
    """Areas by cost: share of busy samples and microseconds per request (the share of the CPU per request
    measured from /proc over the same window), with the largest callers of each."""
    rows: list[dict[str, object]] = []
    for area, samples in grouped.areas.most_common():
        share = samples / grouped.busy if grouped.busy else 0.0
        callers = sorted(((n, caller) for (a, caller), n in grouped.via.items() if a == area), reverse=True)
        via = {caller: round(n / samples, 3) for n, caller in callers[:top_via]}
        rows.append({"area": area, "samples": samples, "share": share,
                     "us_per_request": 1000 * cpu_ms_per_request * share, "via": via})
    return rows


def markdown(rows: Sequence[dict[str, object]], title: str) -> str:
    lines = [f"| {title}: area | share of busy samples | us per request | called from (share of the area) |",
             "|---|---|---|---|"]
    for row in rows:
        via = row["via"]
        callers = ", ".join(f"{k} {v:.0%}" for k, v in via.items()) if isinstance(via, dict) else ""
        lines.append(f"| {row['area']} | {float(str(row['share'])):.1%} | {float(str(row['us_per_request'])):.0f} "
                     f"| {callers} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_groups", description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, help="py-spy --format raw output")
    parser.add_argument("--cpu-ms", type=float, default=1.0, help="CPU ms per request over the profiled window")
    parser.add_argument("--leaves", type=int, default=15, help="also list this many hottest leaf frames")
    args = parser.parse_args(argv)
    grouped = group(args.profile.read_text())
    print(markdown(per_request(grouped, args.cpu_ms), args.profile.name))
    for leaf, samples in grouped.leaves.most_common(args.leaves):
        print(f"- {samples / grouped.busy:.1%} {leaf}")


if __name__ == "__main__":
    main()
