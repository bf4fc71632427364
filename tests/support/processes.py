"""Starts the gateway's real processes (API, worker, fake provider, a private Redis) for end-to-end tests,
and stops them."""

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A child process running `llm-gateway <args>`, its output kept in a log file for failure reports."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args], cwd=REPO, env=full_env, stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 15) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_exit(self, timeout_s: float) -> int:
        """The exit code once the process has ended; raises subprocess.TimeoutExpired after `timeout_s`."""
        return self.proc.wait(timeout=timeout_s)

    def wait_log(self, pattern: str, timeout_s: float = 30) -> re.Match[str]:
        """The first match of `pattern` in the process's output, waiting up to `timeout_s` for it."""
        deadline = time.monotonic() + timeout_s
        compiled = re.compile(pattern)
        while time.monotonic() < deadline:
            found = compiled.search(self.log_path.read_text(errors="replace"))
            if found:
                return found
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no {pattern!r} after {timeout_s}s:\n{self.log_tail()}")


class RedisServer:
    """A private `redis-server` on its own port, for tests that stop and restart Redis (never the machine's
    shared one). With `appendonly`, its data survives a restart (fsync on every write)."""

    def __init__(self, data_dir: Path, *, appendonly: bool = True) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = data_dir
        self._appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir",
                str(self._dir), "--appendonly", "yes" if self._appendonly else "no", "--appendfsync", "always"]
        log = (self._dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not start")

    def stop(self, timeout_s: float = 10) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def wait_http(url: str, process: Process, *, timeout_s: float = 30, expect: int = 200) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.proc.returncode}:\n{process.log_tail()}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == expect:
                return
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout_s}s ({last}):\n{process.log_tail()}")
