"""The compose stack of the live tests: docker-compose.yml plus tests/deploy/live/compose.override.yml under a
project name of its own, its published ports on free loopback ports (never the machine's own Redis and
PostgreSQL, which the stack does not publish at all), and the calls the tests make to it."""

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.deploy.docker_host import DockerHost, run
from tests.support.processes import free_port

T = TypeVar("T")

OVERRIDE = "tests/deploy/live/compose.override.yml"
# Grafana has no Debian package, so no stand-in: its dashboard is checked offline (tests/observability).
SERVICES = ("redis", "postgres", "migrate", "api", "worker", "fake-provider", "prometheus")
WORKERS = 2


def ca_certificates() -> str:
    """The host's extra CA certificates (PEM), as the README's build command passes them."""
    return "".join(p.read_text() for p in sorted(Path("/usr/local/share/ca-certificates").glob("*.crt")))


class ComposeStack:
    def __init__(self, docker_host: DockerHost) -> None:
        self.host = docker_host
        self.project = f"llmgw-live-{secrets.token_hex(3)}"
        self.admin_key = secrets.token_urlsafe(24)
        self.api_port = free_port()
        self.prometheus_port = free_port()
        self.env = {
            "ADMIN_API_KEY": self.admin_key, "SECRET_KEY": secrets.token_urlsafe(32),
            "API_PORT": str(self.api_port), "PROMETHEUS_PORT": str(self.prometheus_port),
            "FAKE_PROVIDER_URL": "http://fake-provider:18000", "EXTRA_CA_CERTS": ca_certificates(),
            "COMPOSE_HTTP_TIMEOUT": "300",
        }
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=30)
        self.prometheus = httpx.Client(base_url=f"http://127.0.0.1:{self.prometheus_port}", timeout=30)

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        argv = [self.host.compose, "-p", self.project, "-f", "docker-compose.yml", "-f", OVERRIDE,
                "--profile", "demo", *args]
        result = run(argv, timeout=timeout, check=check, env=self.env)
        return result.stdout + result.stderr

    def up(self, *extra: str) -> None:
        self.compose("up", "-d", *extra, "--scale", f"worker={WORKERS}", *SERVICES)

    def down(self) -> None:
        self.api.close()
        self.prometheus.close()
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).split()

    def logs(self, *services: str) -> str:
        return self.compose("logs", "--no-color", "--tail", "80", *services, check=False)

    def wait_healthy(self, timeout_s: float = 180) -> None:
        def healthy() -> bool | None:
            try:
                return self.api.get("/health").status_code == 200 or None
            except httpx.TransportError:
                return None

        wait_for(healthy, timeout_s, lambda: f"the API never became healthy\n{self.logs()}")

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.api.request(method, path, headers={"X-API-Key": self.admin_key}, **kwargs)

    def submit(self, key: str, model: str, text: str) -> str:
        answer = self.api.post("/api/v1/jobs", headers={"X-API-Key": key},
                               json={"model": model, "messages": [{"role": "user", "content": text}]})
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])

    def job(self, key: str, job_id: str) -> dict[str, Any]:
        answer = self.api.get(f"/api/v1/jobs/{job_id}", headers={"X-API-Key": key})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def wait_job(self, key: str, job_id: str, until: Callable[[dict[str, Any]], bool],
                 timeout_s: float = 120) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job = self.job(key, job_id)
            return job if until(job) else None

        return wait_for(reached, timeout_s, lambda: f"{job_id}: {self.job(key, job_id)}\n{self.logs('worker')}")

    def worker_container_of(self, worker_id: str) -> str:
        """The container whose worker logged `worker <id> started`."""
        for container in self.containers("worker"):
            logs = run([self.host.docker, "logs", container], check=False, timeout=30)
            if f"worker {worker_id} started" in logs.stdout + logs.stderr:
                return container
        raise AssertionError(f"no worker container logged {worker_id}\n{self.logs('worker')}")


def wait_for(probe: Callable[[], T | None], timeout_s: float, explain: Callable[[], str]) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s: {explain()}")
