"""A second API and worker with a routes file of their own, next to the session's end-to-end gateway (same
fake provider, Redis, PostgreSQL and tenants), so a group of end-to-end tests adds routes without touching
the shared ROUTES. Used by the fixtures in tests/e2e/{count_gateway,endpoints_gateway,real_clients}.py."""

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from tests.support.processes import Process, free_port, wait_http


class SessionGateway(Protocol):
    """What the helper reads of the session's gateway (tests/e2e/conftest.py's `Gateway`)."""

    env: dict[str, str]
    fake_url: str
    log_dir: Path


@dataclass(frozen=True)
class RoutedGateway:
    """A running API + worker. `upstream`, when given, maps a routed name to the upstream model of its serving
    target, so `upstream_requests` takes routed names (only those listed) instead of upstream models."""

    base_url: str
    fake_url: str
    upstream: Mapping[str, str] | None = None

    @property
    def openai_url(self) -> str:
        return f"{self.base_url}/v1"

    def upstream_requests(self, model: str) -> list[dict[str, Any]]:
        """What the fake provider received for `model` (see `upstream`), oldest first."""
        upstream_model = model if self.upstream is None else self.upstream[model]
        response = httpx.get(f"{self.fake_url}/_requests", params={"model": upstream_model}, timeout=10)
        entries: list[dict[str, Any]] = response.json()["requests"]
        return entries


@contextmanager
def run_routed_gateway(name: str, routes: str, session: SessionGateway,
                       upstream: Mapping[str, str] | None = None) -> Iterator[RoutedGateway]:
    """Starts an API and a worker on `routes` (a template whose `{f}` is the fake provider's URL) with the
    session's environment and a queue of their own; both are stopped on exit. Processes and files are named
    after `name`."""
    routes_file = session.log_dir / f"routes-{name}.yaml"
    routes_file.write_text(routes.format(f=session.fake_url))
    own_env = {**session.env, "ROUTES_FILE": str(routes_file), "QUEUE_NAME": f"gw:{name}:{uuid.uuid4().hex[:8]}"}
    port = free_port()
    api = Process(f"api-{name}", ["serve", "--port", str(port)], own_env, session.log_dir)
    worker = Process(f"worker-{name}", ["worker"], own_env, session.log_dir)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", api)
        yield RoutedGateway(f"http://127.0.0.1:{port}", session.fake_url, upstream)
    finally:
        worker.stop()
        api.stop()
