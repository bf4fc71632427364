"""The gateway's image, built for real with the README's command and run: unprivileged, no pip or setuptools
in its venv, usable with a read-only root filesystem, small, and healthy on whatever port it serves."""

import json
import subprocess
import time
import uuid

import pytest

from tests.deploy.conftest import container_log, readme_build
from tests.deploy.docker_host import DockerHost, PhaseLog, run
from tests.deploy.support import GATEWAY_UID

pytestmark = pytest.mark.timeout(1800)

SIZE_LIMIT_MB = 300
BUILDKIT_TAG = "llm-gateway:buildkit-check"


def test_image_runs_as_the_unprivileged_uid(docker_host: DockerHost, gateway_image: str) -> None:
    user = run([docker_host.docker, "image", "inspect", "--format", "{{.Config.User}}", gateway_image]).stdout
    assert user.strip() == f"{GATEWAY_UID}:{GATEWAY_UID}"
    whoami = run([docker_host.docker, "run", "--rm", "--entrypoint", "id", gateway_image, "-u"]).stdout
    assert whoami.strip() == str(GATEWAY_UID)


def test_image_builds_with_buildkit_too(docker_host: DockerHost, gateway_image: str, phases: PhaseLog) -> None:
    """The fixture built it with the classic builder (Compose v1's); BuildKit must take the same file without
    fetching a frontend image (no `# syntax=` line: no registry answers here)."""
    try:
        with phases.phase("image build with BuildKit"):
            readme_build(docker_host, BUILDKIT_TAG, buildkit=True)
        assert docker_host.image_size_mb(BUILDKIT_TAG) < SIZE_LIMIT_MB
    finally:
        run([docker_host.docker, "image", "rm", BUILDKIT_TAG], check=False)


def test_image_is_not_labelled_a_stand_in(docker_host: DockerHost, gateway_image: str) -> None:
    """Labels are inherited: built on a stand-in base, the gateway's image must still not claim to be one."""
    labels = json.loads(run([docker_host.docker, "image", "inspect", "--format", "{{json .Config.Labels}}",
                             gateway_image]).stdout)
    assert labels["io.llm-gateway.standin"] == "false"
    assert labels["org.opencontainers.image.title"] == "llm-gateway"
    assert "stand-in" not in labels["org.opencontainers.image.description"]


def test_image_venv_has_no_pip_or_setuptools(docker_host: DockerHost, gateway_image: str) -> None:
    probe = "import importlib.util as u; print([m for m in ('pip', 'setuptools', 'wheel') if u.find_spec(m)])"
    found = run([docker_host.docker, "run", "--rm", "--entrypoint", "python", gateway_image, "-c", probe]).stdout
    assert found.strip() == "[]"


def test_image_is_well_under_the_size_limit(docker_host: DockerHost, gateway_image: str) -> None:
    size_mb = docker_host.image_size_mb(gateway_image)
    assert size_mb < SIZE_LIMIT_MB, f"{gateway_image} is {size_mb:.0f} MB"


def test_read_only_root_without_tmpfs_runs_one_off_commands(docker_host: DockerHost, gateway_image: str) -> None:
    """`docker run --read-only IMAGE --help` works, and says why metrics are per process."""
    result = run([docker_host.docker, "run", "--rm", "--read-only", gateway_image, "--help"])
    assert "usage: llm-gateway" in result.stdout
    assert "--tmpfs /tmp" in result.stderr
    # `serve --workers 2` cannot add up its processes' metrics there: it refuses, naming what it needs.
    refused = run([docker_host.docker, "run", "--rm", "--read-only", "-e", "REDIS_URL=redis://nowhere:6379",
                   gateway_image, "serve", "--workers", "2"], check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "tmpfs on /tmp" in refused.stderr


def test_healthcheck_follows_the_port_the_container_serves(docker_host: DockerHost, gateway_image: str,
                                                           phases: PhaseLog) -> None:
    """The image's own HEALTHCHECK command, run in an embedded-mode container serving port 9000 (not 8000)."""
    name = f"llmgw-health-{uuid.uuid4().hex[:8]}"
    check = json.loads(run([docker_host.docker, "image", "inspect", "--format", "{{json .Config.Healthcheck.Test}}",
                            gateway_image]).stdout)
    assert check[0] == "CMD", check
    run([docker_host.docker, "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "--tmpfs", "/app:uid=10001",
         "-e", "ADMIN_API_KEY=check", gateway_image, "serve", "--host", "0.0.0.0", "--port", "9000"])
    try:
        with phases.phase("embedded container healthy on port 9000"):
            result = _wait_healthy(docker_host, name, check[1:])
        assert result.returncode == 0, result.stderr + container_log(docker_host, name)
        # The old check, hard-coded to port 8000, fails on this container: the port is what is being tested.
        old_check = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"
        assert run([docker_host.docker, "exec", name, "python", "-c", old_check], check=False).returncode != 0
    finally:
        run([docker_host.docker, "rm", "-f", name], check=False)


def _wait_healthy(docker_host: DockerHost, name: str, check: list[str],
                  timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        result = run([docker_host.docker, "exec", name, *check], check=False, timeout=30)
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(1)
