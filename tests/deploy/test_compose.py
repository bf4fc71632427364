"""docker-compose.yml, checked against the Compose Specification's JSON schema (shipped by check-jsonschema)
and for what the gateway needs: one image and environment, migrations first, scalable draining workers."""

import functools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.support import API_METRICS_PORT, DRAIN_S, ROOT, SETTINGS, WORKER_METRICS_PORT

COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "prometheus" / "prometheus.yml"
GATEWAY_SERVICES = ("migrate", "api", "worker")


@functools.cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # resolves the anchors and `<<` merges like Compose does


def validate_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(path)], capture_output=True, text=True, timeout=60, check=False)


def test_compose_file_matches_the_compose_specification(tmp_path: Path) -> None:
    result = validate_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    # The schema is strict: an unknown key in a service is refused (the check is not vacuous).
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["worker"]["stop_grace_periodd"] = "30s"
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(broken))
    assert validate_compose(tmp_path / "docker-compose.yml").returncode != 0


def test_compose_worker_can_be_scaled_and_drains_before_sigkill() -> None:
    worker = compose()["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["command"] == ["worker"]
    assert _seconds(worker["stop_grace_period"]) > DRAIN_S
    assert "healthcheck" not in worker  # the image's check knows the worker role (docker/healthcheck.py)
    assert str(WORKER_METRICS_PORT) in worker["expose"]


def test_compose_api_metrics_port_is_exposed_to_prometheus_never_published() -> None:
    """The metrics list every tenant: on the stack's network for Prometheus, never on a host port."""
    services = compose()["services"]
    assert compose()["x-gateway-env"]["API_METRICS_PORT"] == str(API_METRICS_PORT)
    assert str(API_METRICS_PORT) in services["api"]["expose"]
    assert services["api"]["ports"] == ["${PUBLISH_HOST:-127.0.0.1}:${API_PORT:-8000}:8000"]
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert [p for p in published if str(API_METRICS_PORT) in p or str(WORKER_METRICS_PORT) in p] == []
    scrape = {job["job_name"]: job for job in yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]}
    assert scrape["llm-gateway-api"]["static_configs"][0]["targets"] == [f"api:{API_METRICS_PORT}"]


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and duration, f"unexpected duration {duration!r}"
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def test_compose_migrations_run_once_before_the_api_and_the_workers() -> None:
    services = compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["postgres"]["condition"] == "service_healthy", name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["api"]["ports"] == ["${PUBLISH_HOST:-127.0.0.1}:${API_PORT:-8000}:8000"]


def test_compose_gateway_services_share_one_image_and_environment() -> None:
    services = compose()["services"]
    env = compose()["x-gateway-env"]
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://postgres:")
    assert env["DATABASE_URL"].endswith("@postgres:5432/llm_gateway")
    # No `:?` guards: they break `logs`, `ps` and `down` when unset; the gateway refuses to start without them.
    assert env["ADMIN_API_KEY"] == "${ADMIN_API_KEY:-}"
    assert env["SECRET_KEY"] == "${SECRET_KEY:-}"
    assert env["ENVIRONMENT"] == "${ENVIRONMENT:-production}"
    assert env["OPENAI_API_KEY"] == "${OPENAI_API_KEY:-}"
    assert env["ANTHROPIC_API_KEY"] == "${ANTHROPIC_API_KEY:-}"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/prometheus"
    assert set(env) <= SETTINGS, f"not settings: {sorted(set(env) - SETTINGS)}"
    for name in GATEWAY_SERVICES:
        assert services[name]["environment"] == env, name
        assert services[name]["image"] == services["api"]["image"], name
        assert services[name]["build"]["dockerfile"] == "Dockerfile", name
        assert "/tmp" in services[name]["tmpfs"], name  # PROMETHEUS_MULTIPROC_DIR on a read-only root


def test_compose_mounts_the_monitoring_files() -> None:
    services = compose()["services"]
    assert services["redis"]["image"] == "redis:7-alpine"
    assert services["postgres"]["image"] == "postgres:16-alpine"
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    expected = {
        "prometheus": {"./prometheus/prometheus.yml": "/etc/prometheus/prometheus.yml",
                       "./prometheus/alerts.yml": "/etc/prometheus/alerts.yml"},
        "grafana": {"./grafana/provisioning": "/etc/grafana/provisioning",
                    "./grafana/dashboards": "/var/lib/grafana/dashboards"},
    }
    for service, mounts in expected.items():
        volumes = {v.split(":")[0]: v.split(":")[1] for v in services[service]["volumes"]}
        for host, container in mounts.items():
            assert volumes.get(host) == container, f"{service}: {host} -> {container}"
    assert services["grafana"]["ports"][0].endswith(":3000")


def test_compose_publishes_ports_on_loopback_unless_told_otherwise() -> None:
    published = {name: service["ports"] for name, service in compose()["services"].items() if "ports" in service}
    assert set(published) == {"api", "prometheus", "grafana"}  # never Redis or PostgreSQL
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("${PUBLISH_HOST:-127.0.0.1}:"), f"{name}: {port}"


def test_compose_passes_the_extra_ca_certificates_to_the_build() -> None:
    build = compose()["services"]["api"]["build"]
    assert build["args"] == {"EXTRA_CA_CERTS": "${EXTRA_CA_CERTS:-}"}
