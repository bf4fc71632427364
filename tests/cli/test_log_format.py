"""`llm-gateway serve` picks its log format by where stderr goes: text lines in a terminal (a real
pseudo-terminal here), JSON into a pipe; LOG_FORMAT overrides either."""

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import REPO


def first_log_line(tmp_path: Path, *, tty: bool, log_format: str | None = None) -> str:
    """The first line an embedded `serve` writes to stderr, which is a pseudo-terminal or a pipe."""
    env = {"PATH": "/usr/bin:/bin", "SQLITE_PATH": str(tmp_path / "gateway.db")}
    if log_format is not None:
        env["LOG_FORMAT"] = log_format
    reader, writer = pty.openpty() if tty else os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--port", "0"], cwd=REPO, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=writer)
    os.close(writer)
    output = b""
    try:
        deadline = time.monotonic() + 30
        while b"\n" not in output and time.monotonic() < deadline and proc.poll() is None:
            if select.select([reader], [], [], 0.2)[0]:
                output += os.read(reader, 4096)
    finally:
        proc.terminate()
        proc.wait(10)
        os.close(reader)
    assert b"\n" in output, f"no log line from serve: {output!r}"
    return output.decode().splitlines()[0]


def is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def test_serve_logs_text_lines_in_a_terminal(tmp_path: Path) -> None:
    line = first_log_line(tmp_path, tty=True)
    assert not is_json(line) and " INFO " in line, line


def test_serve_logs_json_into_a_pipe(tmp_path: Path) -> None:
    assert is_json(first_log_line(tmp_path, tty=False))


@pytest.mark.parametrize(("tty", "log_format"), [(True, "json"), (False, "text")])
def test_serve_explicit_log_format_wins(tmp_path: Path, tty: bool, log_format: str) -> None:
    assert is_json(first_log_line(tmp_path, tty=tty, log_format=log_format)) == (log_format == "json")
