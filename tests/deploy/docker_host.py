"""A Docker engine for the live container tests: found, or started and later stopped; base images pulled, or
stand-ins built from Debian's packages when no registry answers (scripts/standin-images.sh); commands run with
their output kept for failure reports; and the time each phase took, printed at the end of the run."""

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.support import ROOT

STANDIN_SCRIPT = ROOT / "scripts" / "standin-images.sh"
# Debian's client first: it matches Debian's engine and Compose v1; a newer client on PATH may lack buildx.
DOCKER_CANDIDATES = ("/usr/bin/docker", "docker")
DAEMON_START_S = 60


class DockerUnavailable(Exception):
    """No Docker engine can be had on this machine; the message says why."""


@dataclass
class PhaseLog:
    """Wall time of each phase, in order, for the report the run prints."""

    phases: list[tuple[str, float]] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases.append((name, time.monotonic() - started))

    def report(self) -> str:
        width = max((len(name) for name, _ in self.phases), default=0)
        lines = ["live container tests:", *(f"  {fact}" for fact in self.facts)]
        lines += [f"  {name:<{width}}  {seconds:7.1f} s" for name, seconds in self.phases]
        return "\n".join(lines)


def run(argv: Sequence[str], *, timeout: float = 300, check: bool = True, env: dict[str, str] | None = None,
        cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise with its output, which pytest then shows."""
    result = subprocess.run(list(argv), cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True,
                            text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout[-4000:]}\n"
                             f"{result.stderr[-4000:]}")
    return result


def docker_client() -> str:
    for candidate in DOCKER_CANDIDATES:
        path = shutil.which(candidate)
        if path:
            return path
    raise DockerUnavailable("no docker client (apt-get install docker.io; ./scripts/test.sh installs it)")


def compose_client() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        raise DockerUnavailable("no docker-compose (apt-get install docker-compose; ./scripts/test.sh installs it)")
    return path


class DockerHost:
    """The engine the tests use. `start` starts dockerd only when none answers, and `stop` stops only that."""

    def __init__(self, log_dir: Path) -> None:
        self.docker = docker_client()
        self.compose = compose_client()
        self._log_dir = log_dir
        self._daemon: subprocess.Popen[bytes] | None = None

    def answers(self) -> bool:
        return run([self.docker, "info", "--format", "{{.ServerVersion}}"], check=False, timeout=20).returncode == 0

    def start(self) -> None:
        if self.answers():
            return
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise DockerUnavailable("no Docker engine answers and dockerd is not installed")
        if os.geteuid() != 0:
            raise DockerUnavailable("no Docker engine answers, and starting dockerd needs root")
        log = (self._log_dir / "dockerd.log").open("wb")
        self._daemon = subprocess.Popen([dockerd], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + DAEMON_START_S
        while time.monotonic() < deadline:
            if self._daemon.poll() is not None:
                raise DockerUnavailable(f"dockerd exited {self._daemon.returncode}: see {log.name}")
            if self.answers():
                return
            time.sleep(0.5)
        self.stop()
        raise DockerUnavailable(f"dockerd did not answer within {DAEMON_START_S} s: see {log.name}")

    def stop(self) -> None:
        """Stop the daemon this run started (its containers are gone by then); leave one we found alone."""
        if self._daemon is None:
            return
        self._daemon.terminate()
        try:
            self._daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._daemon.kill()
            self._daemon.wait()
        self._daemon = None

    @property
    def started_daemon(self) -> bool:
        return self._daemon is not None

    def has_image(self, name: str) -> bool:
        return run([self.docker, "image", "inspect", name], check=False, timeout=30).returncode == 0

    def ensure_base_images(self, names: Sequence[str]) -> list[str]:
        """Pull each missing image; build stand-ins for those no registry gives. Returns the stand-ins used."""
        missing = [name for name in names if not self.has_image(name)]
        unpullable = [name for name in missing
                      if run([self.docker, "pull", name], check=False, timeout=600).returncode != 0]
        if unpullable:
            run(["bash", str(STANDIN_SCRIPT), *unpullable], timeout=1500, env={"DOCKER": self.docker})
        return [name for name in names if self.is_standin(name)]

    def is_standin(self, name: str) -> bool:
        label = run([self.docker, "image", "inspect", "--format",
                     '{{index .Config.Labels "io.llm-gateway.standin"}}', name], check=False, timeout=30)
        return label.stdout.strip() == "true"

    def image_size_mb(self, name: str) -> float:
        size = run([self.docker, "image", "inspect", "--format", "{{.Size}}", name], timeout=30).stdout
        return int(size.strip()) / 1e6
