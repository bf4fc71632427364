"""The image's entrypoint script: valid shell that passes shellcheck, and run against a stub `llm-gateway` to
check it empties the Prometheus multiprocess directory before it execs the gateway."""

import os
import subprocess
from pathlib import Path

from tests.deploy.support import ROOT, tool

ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"


def test_entrypoint_is_executable_and_valid_shell() -> None:
    assert os.access(ENTRYPOINT, os.X_OK), "chmod +x docker/entrypoint.sh"
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    syntax = subprocess.run(["bash", "-n", str(ENTRYPOINT)], capture_output=True, text=True, timeout=10, check=False)
    assert syntax.returncode == 0, syntax.stderr
    lint = subprocess.run([tool("shellcheck"), str(ENTRYPOINT)], capture_output=True, text=True, timeout=30,
                          check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def run_entrypoint(tmp_path: Path, multiproc_dir: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """The entrypoint with a stub `llm-gateway` first on PATH that prints its arguments and exits 7."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "llm-gateway"
    stub.write_text('#!/bin/sh\necho "args:$*"\nls -A "${PROMETHEUS_MULTIPROC_DIR:-/nonexistent}" 2>/dev/null | wc -l\n'
                    'echo "dir:${PROMETHEUS_MULTIPROC_DIR-unset}"\nexit 7\n')
    stub.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin"}
    if multiproc_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
    return subprocess.run([str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=10,
                          check=False)


def test_entrypoint_empties_the_multiprocess_dir_then_execs_the_gateway(tmp_path: Path) -> None:
    metrics = tmp_path / "prometheus"
    (metrics / "leftover").mkdir(parents=True)
    (metrics / "counter_123.db").write_bytes(b"stale")
    (metrics / "leftover" / "gauge_livesum_9.db").write_bytes(b"stale")
    (metrics / ".hidden").write_text("stale")

    result = run_entrypoint(tmp_path, str(metrics), "serve", "--host", "0.0.0.0")

    assert result.returncode == 7, result.stderr  # the gateway's exit status, unchanged
    assert result.stdout.split() == ["args:serve", "--host", "0.0.0.0", "0", f"dir:{metrics}"]
    assert metrics.is_dir() and list(metrics.iterdir()) == []


def test_entrypoint_creates_a_missing_multiprocess_dir(tmp_path: Path) -> None:
    metrics = tmp_path / "new" / "prometheus"
    result = run_entrypoint(tmp_path, str(metrics), "worker")
    assert result.returncode == 7, result.stderr
    assert metrics.is_dir()


def test_entrypoint_refuses_to_empty_the_root(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, "/", "worker")
    assert result.returncode == 64
    assert "args:" not in result.stdout


def test_entrypoint_runs_without_the_multiprocess_dir_where_it_cannot_be_made(tmp_path: Path) -> None:
    """`docker run --read-only IMAGE --help` (no tmpfs on /tmp): the command runs, and the warning says what
    multi-process metrics would need."""
    blocker = tmp_path / "read-only"
    blocker.write_text("a file, so nothing can be made under it")
    result = run_entrypoint(tmp_path, str(blocker / "prometheus"), "--help")
    assert result.returncode == 7, result.stderr
    assert result.stdout.split() == ["args:--help", "0", "dir:unset"]
    assert "--tmpfs /tmp" in result.stderr
