#!/usr/bin/env python3
"""The image's HEALTHCHECK, for every role, on the port the container was really started with.

Docker runs a health check as a separate process with the image's environment, not with the arguments the
container was started with, so a check that hard-codes port 8000 reports `serve --port 9000` unhealthy. This
script reads the gateway's own command line from /proc instead (PID 1 after the entrypoint's `exec`, or the
first `llm-gateway` process under an init such as `docker run --init`) and checks what that role serves:

- `serve`: GET /health on its --port answers 200 (Redis, the database and a worker are up);
- `worker`: its metrics port (WORKER_METRICS_PORT, default 9100) accepts a connection;
- `fake-provider`: its --port accepts a connection;
- anything else (`migrate`, `tenants`, ...): a one-shot command, healthy while it runs.

Standard library only: it runs every 15 s and must not import the gateway.
"""

import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

TIMEOUT_S = 4.0
DEFAULT_PORTS = {"serve": 8000, "fake-provider": 18000}


def gateway_argv(proc: Path = Path("/proc")) -> list[str] | None:
    """The arguments after `llm-gateway` of the lowest-numbered gateway process, or None if none runs."""
    pids = sorted(int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())
    for pid in pids:
        try:
            argv = (proc / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # the process ended while we looked
            continue
        for index, arg in enumerate(argv):
            if os.path.basename(arg) == "llm-gateway":
                return [a for a in argv[index + 1:] if a]
    return None


def option(argv: Sequence[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE`, the last one winning as in argparse."""
    value = None
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith(f"{name}="):
            value = arg.partition("=")[2]
    return value


def check(argv: Sequence[str]) -> str | None:
    """None when healthy, else why not."""
    command = argv[0] if argv else ""
    if command == "serve":
        port = int(option(argv, "--port") or DEFAULT_PORTS["serve"])
        return _http_ok(f"http://127.0.0.1:{port}/health")
    if command == "worker":
        return _accepts(int(os.environ.get("WORKER_METRICS_PORT", "9100")))
    if command == "fake-provider":
        return _accepts(int(option(argv, "--port") or DEFAULT_PORTS["fake-provider"]))
    return None


def _http_ok(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # a fixed local URL
            return None if response.status == 200 else f"{url}: {response.status}"
    except urllib.error.HTTPError as exc:
        return f"{url}: {exc.code} {exc.read(300).decode(errors='replace')}"
    except OSError as exc:
        return f"{url}: {exc}"


def _accepts(port: int) -> str | None:
    try:
        socket.create_connection(("127.0.0.1", port), TIMEOUT_S).close()
    except OSError as exc:
        return f"port {port}: {exc}"
    return None


def main() -> int:
    argv = gateway_argv()
    if argv is None:
        print("no llm-gateway process is running", file=sys.stderr)
        return 1
    problem = check(argv)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
