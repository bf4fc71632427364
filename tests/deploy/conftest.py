"""Fixtures of the live container tests: a Docker engine (started when none answers, stopped when the run
started it), the base images (pulled, or built as stand-ins), and the gateway image built with the README's
own command. Without Docker they are skipped with the reason; with CI=true they must run."""

import os
import re
import shlex
from collections.abc import Iterator

import pytest

from tests.deploy.docker_host import DockerHost, DockerUnavailable, PhaseLog, run
from tests.deploy.support import ROOT

GATEWAY_IMAGE = "llm-gateway:local"
BASE_IMAGES = ("python:3.11-slim", "redis:7-alpine", "postgres:16-alpine", "prom/prometheus:v2.53.0")
PHASES = pytest.StashKey[PhaseLog]()


def readme_command(prefix: str) -> str:
    """The README's command line that starts with `prefix`: the tests run what the README tells users to."""
    lines = [line.strip() for line in (ROOT / "README.md").read_text().splitlines()]
    found = [line for line in lines if line.startswith(prefix)]
    assert len(found) == 1, f"README.md must show exactly one command starting with {prefix!r}"
    return found[0]


def pytest_configure(config: pytest.Config) -> None:
    config.stash[PHASES] = PhaseLog()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    phases = config.stash[PHASES]
    if phases.phases:
        terminalreporter.write_line(phases.report())


@pytest.fixture(scope="session")
def phases(pytestconfig: pytest.Config) -> PhaseLog:
    return pytestconfig.stash[PHASES]


@pytest.fixture(scope="session")
def docker_host(tmp_path_factory: pytest.TempPathFactory, phases: PhaseLog) -> Iterator[DockerHost]:
    try:
        host = DockerHost(tmp_path_factory.mktemp("docker"))
        with phases.phase("Docker engine ready"):
            host.start()
    except DockerUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, but no Docker engine: {exc}")
        pytest.skip(f"no Docker engine: {exc}")
    phases.facts.append(f"engine: {'started by the tests' if host.started_daemon else 'already running'}")
    try:
        with phases.phase("base images (pulled or stand-ins)"):
            standins = host.ensure_base_images(BASE_IMAGES)
        if standins:
            phases.facts.append(f"stand-ins built from Debian's packages: {', '.join(standins)}")
        yield host
    finally:
        host.stop()


def readme_build(docker_host: DockerHost, tag: str, *, buildkit: bool) -> None:
    """Build the image with the README's command (the one that passes the host's CA certificates), as `tag`."""
    command = readme_command("docker build --build-arg EXTRA_CA_CERTS=")
    assert re.search(rf"-t {re.escape(GATEWAY_IMAGE)}\b", command), command
    command = command.replace(f"-t {GATEWAY_IMAGE}", f"-t {shlex.quote(tag)}")
    command = command.replace("docker build", f"{shlex.quote(docker_host.docker)} build", 1)
    run(["bash", "-c", command], timeout=1200, env={"DOCKER_BUILDKIT": "1" if buildkit else "0"})


@pytest.fixture(scope="session")
def gateway_image(docker_host: DockerHost, phases: PhaseLog) -> str:
    """The image, built by the README's command with the classic builder (Compose v1's, which refuses what
    only BuildKit knows); test_live_image builds it with BuildKit too."""
    with phases.phase("image build (README's command)"):
        readme_build(docker_host, GATEWAY_IMAGE, buildkit=False)
    size_mb = docker_host.image_size_mb(GATEWAY_IMAGE)
    phases.facts.append(f"image {GATEWAY_IMAGE}: {size_mb:.0f} MB")
    return GATEWAY_IMAGE


def container_log(docker_host: DockerHost, container: str) -> str:
    result = run([docker_host.docker, "logs", "--tail", "60", container], check=False, timeout=30)
    return result.stdout + result.stderr
