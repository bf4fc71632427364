"""docker/healthcheck.py, the image's HEALTHCHECK, run here against a fake /proc and real local sockets: it
checks the role and port the container was started with, never a hard-coded 8000."""

import http.server
import importlib.util
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.support import ROOT


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docker_healthcheck", ROOT / "docker" / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = load_healthcheck()


def fake_proc(tmp_path: Path, processes: dict[int, list[str]]) -> Path:
    proc = tmp_path / "proc"
    for pid, argv in processes.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
    (proc / "self").mkdir()
    return proc


def test_reads_the_gateway_command_of_pid_1(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {1: ["/opt/venv/bin/python", "/opt/venv/bin/llm-gateway", "serve", "--port", "9000"],
                                40: ["python", "-c", "from multiprocessing.spawn import spawn_main"]})
    assert healthcheck.gateway_argv(proc) == ["serve", "--port", "9000"]


def test_finds_the_gateway_under_an_init_process(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {1: ["/sbin/docker-init", "--", "docker-entrypoint.sh", "worker"],
                                7: ["/opt/venv/bin/python", "/opt/venv/bin/llm-gateway", "worker"]})
    assert healthcheck.gateway_argv(proc) == ["worker"]


def test_no_gateway_process(tmp_path: Path) -> None:
    assert healthcheck.gateway_argv(fake_proc(tmp_path, {1: ["sleep", "60"]})) is None


@pytest.mark.parametrize(("argv", "port"), [
    (["serve", "--host", "0.0.0.0", "--port", "9000"], "9000"),
    (["serve", "--port=9001"], "9001"),
    (["serve", "--port", "9000", "--port", "9002"], "9002"),
    (["serve"], None),
])
def test_port_option(argv: list[str], port: str | None) -> None:
    assert healthcheck.option(argv, "--port") == port


class HealthHandler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b'{"status": "degraded"}')

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), HealthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_serve_is_healthy_when_its_own_port_answers_200(health_server: http.server.HTTPServer) -> None:
    port = str(health_server.server_address[1])
    HealthHandler.status = 200
    assert healthcheck.check(["serve", "--host", "0.0.0.0", "--port", port]) is None
    HealthHandler.status = 503
    assert "503" in healthcheck.check(["serve", "--port", port])
    HealthHandler.status = 200


def test_serve_on_a_port_nobody_listens_on_is_unhealthy() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert healthcheck.check(["serve", "--port", str(closed)]) is not None


def test_worker_is_healthy_while_its_metrics_port_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        monkeypatch.setenv("WORKER_METRICS_PORT", str(listener.getsockname()[1]))
        assert healthcheck.check(["worker"]) is None
    assert healthcheck.check(["worker"]) is not None


def test_one_shot_commands_are_healthy() -> None:
    assert healthcheck.check(["migrate"]) is None
