"""The deployment files, checked offline with validators from PyPI only (the `test` extra): the Dockerfile
(structure, hadolint, the build context), its entrypoint (shellcheck, and run against a stub), the compose
file (the Compose Specification's JSON schema, shipped by check-jsonschema), the Kubernetes manifests (the
1.30 OpenAPI schemas in strict mode, shipped by kubernetes-validate, plus the cross-references between them)
and the Terraform module (parsed by python-hcl2). Nothing here needs Docker, a cluster or a network."""

import fnmatch
import functools
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import hcl2
import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "k8s"
TERRAFORM = ROOT / "terraform"

K8S_VERSION = "1.30.0"
GATEWAY_UID = 10001
SETTINGS = {name.upper() for name in Settings.model_fields}
DRAIN_S = Settings.model_fields["worker_drain_s"].default
WORKER_METRICS_PORT = Settings.model_fields["worker_metrics_port"].default
QUEUE_METRIC = "llm_gateway_queue_depth"
# Manifests kustomization.yaml must not apply: placeholders, and a rule for the monitoring stack.
K8S_TEMPLATES = {"secret.example.yaml", "prometheus-adapter.yaml"}
GATEWAY_SERVICES = ("migrate", "api", "worker")


def tool(name: str) -> str:
    """A linter installed by the `test` extra next to this interpreter (never skipped: missing is a failure)."""
    path = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert path, f"{name} is missing: install the test extra (pip install -e '.[test]')"
    return path


# ---- Dockerfile -----------------------------------------------------------------------------------------

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, backslash continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}".strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, args = pending.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


@functools.cache
def docker_stages() -> list[list[tuple[str, str]]]:
    """The build stages, each starting with its FROM."""
    stages: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions(DOCKERFILE.read_text()):
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def global_args() -> dict[str, str]:
    args = {}
    for keyword, rest in dockerfile_instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
    return args


def instruction_args(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for key, rest in stage if key == keyword]


def test_dockerfile_is_multi_stage_with_a_python_311_slim_runtime() -> None:
    stages = docker_stages()
    assert len(stages) >= 2
    base = stages[-1][0][1].split()[0]
    for name, value in global_args().items():
        base = base.replace(f"${{{name}}}", value)
    assert base == "python:3.11-slim"
    builder = stages[0][0][1].split()
    assert builder[-2:] == ["AS", "builder"]


def test_dockerfile_runtime_copies_only_the_venv_and_the_entrypoint() -> None:
    runtime = docker_stages()[-1]
    copies = instruction_args(runtime, "COPY")
    assert "--from=builder /opt/venv /opt/venv" in copies
    others = [c for c in copies if not c.startswith("--from=builder")]
    assert others == ["--chmod=0755 docker/entrypoint.sh /usr/local/bin/docker-entrypoint.sh"]
    assert not any("pip " in run for run in instruction_args(runtime, "RUN")), "no installs in the final stage"


def test_dockerfile_runtime_runs_as_the_unprivileged_uid() -> None:
    runtime = docker_stages()[-1]
    users = instruction_args(runtime, "USER")
    assert users, "the final stage must set USER"
    # Numeric, so Kubernetes' runAsNonRoot can verify it.
    assert users[-1].split(":")[0] == str(GATEWAY_UID)
    assert any(f"--uid {GATEWAY_UID}" in run for run in instruction_args(runtime, "RUN"))


def test_dockerfile_healthcheck_calls_health_with_urllib() -> None:
    checks = instruction_args(docker_stages()[-1], "HEALTHCHECK")
    assert len(checks) == 1
    assert "urllib.request" in checks[0]
    assert "http://127.0.0.1:8000/health" in checks[0]
    assert "curl" not in checks[0] and "wget" not in checks[0]


def test_dockerfile_exposes_the_api_and_the_worker_metrics_ports() -> None:
    exposed = {port for rest in instruction_args(docker_stages()[-1], "EXPOSE") for port in rest.split()}
    assert {"8000", str(WORKER_METRICS_PORT)} <= exposed


def test_dockerfile_entrypoint_and_default_command() -> None:
    runtime = docker_stages()[-1]
    assert instruction_args(runtime, "ENTRYPOINT") == ['["docker-entrypoint.sh"]']
    assert instruction_args(runtime, "CMD") == ['["serve", "--host", "0.0.0.0", "--port", "8000"]']
    env = " ".join(instruction_args(runtime, "ENV"))
    assert "PATH=/opt/venv/bin:$PATH" in env
    assert "PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus" in env


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = re.sub(r"\\\[([^\]]*)\\\]", r"[\1]", regex)
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def test_dockerignore_sends_the_build_sources_and_nothing_secret() -> None:
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    sources = [src for stage in docker_stages() for rest in instruction_args(stage, "COPY")
               if "--from=" not in rest for src in rest.split()[:-1] if not src.startswith("--")]
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not dockerignore_excludes(source, patterns), f"COPY {source}: excluded by .dockerignore"
        assert not dockerignore_excludes(f"{source}/x.py", patterns) or not (ROOT / source).is_dir()
    for private in (".env", ".git/config", ".venv/bin/python", "tests/conftest.py", "llm_gateway.db",
                    "shared/__pycache__/config.cpython-311.pyc"):
        assert dockerignore_excludes(private, patterns), f"{private} would be sent to the Docker daemon"


def test_the_wheel_the_image_installs_ships_every_data_file() -> None:
    """The image installs a wheel, not the source tree: a data file the code reads (a Lua script, a YAML
    table, a migration) that pyproject's package-data does not list is missing at run time."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_data: dict[str, list[str]] = setuptools.get("package-data", {})
    missing = []
    for package in ("api", "worker", "shared", "cli"):
        for path in sorted((ROOT / package).rglob("*")):
            if not path.is_file() or path.suffix in {".py", ".pyc"} or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(ROOT / package).parts
            if not any(_glob_matches(relative, pattern) for pattern in package_data.get(package, [])):
                missing.append(str(path.relative_to(ROOT)))
    assert missing == [], "add them to [tool.setuptools.package-data] in pyproject.toml"


def _glob_matches(parts: tuple[str, ...], pattern: str) -> bool:
    pattern_parts = PurePosixPath(pattern).parts
    return len(parts) == len(pattern_parts) and all(map(fnmatch.fnmatchcase, parts, pattern_parts))


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- entrypoint -----------------------------------------------------------------------------------------

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
    stub.write_text('#!/bin/sh\necho "args:$*"\nls -A "${PROMETHEUS_MULTIPROC_DIR:-/nonexistent}" | wc -l\nexit 7\n')
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
    assert result.stdout.split() == ["args:serve", "--host", "0.0.0.0", "0"]
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


# ---- docker-compose.yml ---------------------------------------------------------------------------------

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
    assert str(WORKER_METRICS_PORT) in " ".join(worker["healthcheck"]["test"])


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
    assert services["api"]["ports"] == ["${API_PORT:-8000}:8000"]


def test_compose_gateway_services_share_one_image_and_environment() -> None:
    services = compose()["services"]
    env = compose()["x-gateway-env"]
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://postgres:")
    assert env["DATABASE_URL"].endswith("@postgres:5432/llm_gateway")
    assert env["ADMIN_API_KEY"].startswith("${ADMIN_API_KEY:?")
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")
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


# ---- Kubernetes -----------------------------------------------------------------------------------------

def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@functools.cache
def documents(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc)


@functools.cache
def all_documents() -> tuple[dict[str, Any], ...]:
    return tuple(doc for path in manifest_files() for doc in documents(path.name))


def find(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in all_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def workloads() -> list[dict[str, Any]]:
    return [d for d in all_documents() if d["kind"] in {"Deployment", "StatefulSet", "Job"}]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def test_k8s_manifests_exist() -> None:
    names = {p.name for p in manifest_files()}
    assert names >= {"namespace.yaml", "configmap.yaml", "secret.example.yaml", "redis.yaml", "postgres.yaml",
                     "migrate-job.yaml", "api.yaml", "worker.yaml", "hpa-worker.yaml", "prometheus-adapter.yaml",
                     "pdb.yaml"}


@pytest.mark.parametrize("name", [p.name for p in manifest_files()])
def test_k8s_manifest_is_valid_for_kubernetes_in_strict_mode(name: str) -> None:
    docs = documents(name)
    assert docs, f"{name} holds no document"
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_k8s_strict_validation_refuses_unknown_fields() -> None:
    deployment = yaml.safe_load(yaml.safe_dump(find("Deployment", "llm-gateway-api")))
    pod_spec(deployment)["containers"][0]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def container_ports(container: dict[str, Any]) -> set[object]:
    ports = container.get("ports", [])
    return {p["containerPort"] for p in ports} | {p["name"] for p in ports if "name" in p}


def probe_port(probe: dict[str, Any]) -> object | None:
    for kind in ("httpGet", "tcpSocket", "grpc"):
        if kind in probe:
            return probe[kind]["port"]
    return None  # exec


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "Job"])
def test_k8s_containers_have_requests_and_limits(kind: str) -> None:
    for workload in (w for w in workloads() if w["kind"] == kind):
        for container in pod_spec(workload)["containers"]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(section, {})), f"{where}: {section}"


def test_k8s_long_running_containers_have_readiness_and_liveness_probes_on_real_ports() -> None:
    for workload in (w for w in workloads() if w["kind"] in {"Deployment", "StatefulSet"}):
        for container in pod_spec(workload)["containers"]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe_name not in container:
                    assert probe_name == "startupProbe", f"{where}: no {probe_name}"
                    continue
                port = probe_port(container[probe_name])
                assert port is None or port in container_ports(container), f"{where}: {probe_name} port {port}"


def test_k8s_api_readiness_and_liveness_do_not_depend_on_workers() -> None:
    api = pod_spec(find("Deployment", "llm-gateway-api"))["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/openapi.json"
    assert "tcpSocket" in api["livenessProbe"]
    assert all(api[p].get("httpGet", {}).get("path") != "/health" for p in ("readinessProbe", "livenessProbe"))


def test_k8s_worker_grace_period_outlasts_the_drain() -> None:
    worker = find("Deployment", "llm-gateway-worker")
    drain = int(find("ConfigMap", "llm-gateway-config")["data"].get("WORKER_DRAIN_S", DRAIN_S))
    grace = pod_spec(worker)["terminationGracePeriodSeconds"]
    assert grace > DRAIN_S and grace > drain
    assert "replicas" not in worker["spec"], "the HPA owns the worker replicas"
    container = pod_spec(worker)["containers"][0]
    assert container["args"] == ["worker"]
    metrics_port = pod_spec(worker)["containers"][0]["ports"][0]["containerPort"]
    assert metrics_port == WORKER_METRICS_PORT
    assert worker["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(metrics_port)
    assert "tcpSocket" in container["livenessProbe"] and "tcpSocket" in container["readinessProbe"]


def test_k8s_api_drains_from_the_load_balancer_before_stopping() -> None:
    api = pod_spec(find("Deployment", "llm-gateway-api"))
    container = api["containers"][0]
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert 0 < sleep < api["terminationGracePeriodSeconds"]
    assert container["args"][:1] == ["serve"] and "0.0.0.0" in container["args"]
    assert find("Deployment", "llm-gateway-api")["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_k8s_gateway_pods_run_unprivileged_on_a_read_only_root() -> None:
    gateway = [w for w in workloads() if pod_spec(w)["containers"][0]["image"].startswith("llm-gateway:")]
    assert {w["metadata"]["name"] for w in gateway} == {"llm-gateway-api", "llm-gateway-worker",
                                                        "llm-gateway-migrate"}
    assert len({pod_spec(w)["containers"][0]["image"] for w in gateway}) == 1, "one image for every role"
    for workload in gateway:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == GATEWAY_UID
        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in tmp_volumes, "PROMETHEUS_MULTIPROC_DIR needs a writable /tmp"


def test_k8s_env_references_resolve() -> None:
    config = find("ConfigMap", "llm-gateway-config")
    secret = find("Secret", "llm-gateway-secrets")
    assert config["data"]["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    for workload in workloads():
        for container in pod_spec(workload)["containers"]:
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef") or source.get("secretRef")
                assert ref["name"] in {config["metadata"]["name"], secret["metadata"]["name"]}
            for env in container.get("env", []):
                key_ref = env.get("valueFrom", {}).get("secretKeyRef")
                if key_ref:
                    assert key_ref["name"] == secret["metadata"]["name"]
                    assert key_ref["key"] in secret["stringData"]
    assert set(config["data"]) <= SETTINGS, f"not settings: {sorted(set(config['data']) - SETTINGS)}"
    assert {"REDIS_URL", "DATABASE_URL", "SECRET_KEY", "ADMIN_API_KEY"} <= set(secret["stringData"])


def test_k8s_secret_template_cannot_start_a_production_gateway() -> None:
    values = find("Secret", "llm-gateway-secrets")["stringData"]
    assert find("ConfigMap", "llm-gateway-config")["data"]["ENVIRONMENT"] == "production"
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment="production", secret_key=values["SECRET_KEY"],
                 admin_api_key="a-real-admin-key")
    with pytest.raises(ValidationError, match="ADMIN_API_KEY"):
        Settings(_env_file=None, environment="production", secret_key="x" * 48,
                 admin_api_key=values["ADMIN_API_KEY"])
    assert "TEMPLATE" in (K8S / "secret.example.yaml").read_text().splitlines()[0]


def pod_labels(kind: str, name: str) -> dict[str, str]:
    return find(kind, name)["spec"]["template"]["metadata"]["labels"]


def test_k8s_services_select_pods_and_ports_that_exist() -> None:
    pods = {w["metadata"]["name"]: w for w in workloads() if w["kind"] != "Job"}
    for service in (d for d in all_documents() if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        matched = [w for w in pods.values() if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matched) == 1, f"Service {service['metadata']['name']} selects {len(matched)} workloads"
        ports = container_ports(pod_spec(matched[0])["containers"][0])
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {service['metadata']['name']}: {port['targetPort']}"
    assert find("StatefulSet", "llm-gateway-postgres")["spec"]["serviceName"] == "llm-gateway-postgres"


def test_k8s_worker_autoscaler_follows_the_queue_depth() -> None:
    hpa = find("HorizontalPodAutoscaler", "llm-gateway-worker")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    find("Deployment", target["name"])
    assert target["name"] == "llm-gateway-worker"
    external = [m["external"] for m in hpa["spec"]["metrics"] if m["type"] == "External"]
    assert [m["metric"]["name"] for m in external] == [QUEUE_METRIC]
    assert external[0]["target"]["type"] == "AverageValue"
    assert int(external[0]["target"]["averageValue"]) > 0
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 20)
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 60
    assert "stabilizationWindowSeconds" in behavior["scaleUp"]


def test_k8s_prometheus_adapter_serves_the_queue_depth_as_an_external_metric() -> None:
    config = yaml.safe_load(find("ConfigMap", "prometheus-adapter")["data"]["config.yaml"])
    rules = [r for r in config["externalRules"] if QUEUE_METRIC in r["seriesQuery"]]
    assert len(rules) == 1
    rule = rules[0]
    assert re.fullmatch(rule["name"]["matches"], QUEUE_METRIC)
    assert rule["name"]["as"] == QUEUE_METRIC
    assert "<<.Series>>" in rule["metricsQuery"] and "<<.LabelMatchers>>" in rule["metricsQuery"]
    assert rule["metricsQuery"].startswith("max("), "every API pod reports the same queue: max, not sum"
    assert rule["resources"]["overrides"]["namespace"]["resource"] == "namespace"


def test_k8s_disruption_budgets_cover_the_api_and_the_workers() -> None:
    budgets = [d for d in all_documents() if d["kind"] == "PodDisruptionBudget"]
    covered = set()
    for budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"]
        for name in ("llm-gateway-api", "llm-gateway-worker"):
            if selector.items() <= pod_labels("Deployment", name).items():
                covered.add(name)
    assert covered == {"llm-gateway-api", "llm-gateway-worker"}
    assert find("PodDisruptionBudget", "llm-gateway-api")["spec"]["minAvailable"] >= 1
    assert find("PodDisruptionBudget", "llm-gateway-worker")["spec"]["maxUnavailable"] >= 1


def test_k8s_namespaced_objects_share_the_gateway_namespace() -> None:
    namespace = find("Namespace", "llm-gateway")["metadata"]["name"]
    for path in manifest_files():
        if path.name in {"namespace.yaml", "prometheus-adapter.yaml"}:
            continue
        for doc in documents(path.name):
            assert doc["metadata"].get("namespace") == namespace, f"{path.name}: {doc['metadata']['name']}"


def test_kustomization_lists_every_manifest_but_the_templates() -> None:
    text = (K8S / "kustomization.yaml").read_text()
    kustomization = yaml.safe_load(text)
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == {p.name for p in manifest_files()} - K8S_TEMPLATES
    for template in K8S_TEMPLATES:
        assert template in text, f"kustomization.yaml should say why {template} is left out"
    assert kustomization["namespace"] == "llm-gateway"
    assert [image["name"] for image in kustomization["images"]] == ["llm-gateway"]


# ---- Terraform ------------------------------------------------------------------------------------------

@functools.cache
def terraform() -> dict[str, dict[str, Any]]:
    return {path.name: hcl2.loads(path.read_text()) for path in sorted(TERRAFORM.glob("*.tf"))}


def unquote(value: object) -> object:
    return value[1:-1] if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' else value


def test_terraform_module_files_parse() -> None:
    assert set(terraform()) == {"main.tf", "variables.tf", "outputs.tf", "versions.tf"}
    assert (TERRAFORM / "README.md").is_file()


def test_terraform_requires_the_kubernetes_provider() -> None:
    block = terraform()["versions.tf"]["terraform"][0]
    providers = {name: spec for entry in block["required_providers"] for name, spec in entry.items()
                 if not name.startswith("__")}
    assert unquote(providers["kubernetes"]["source"]) == "hashicorp/kubernetes"
    assert unquote(providers["kubernetes"]["version"])
    assert unquote(block["required_version"]).startswith(">=")
    provider = terraform()["main.tf"]["provider"][0]
    assert "kubernetes" in {unquote(name) for name in provider}


def declared_variables() -> dict[str, dict[str, Any]]:
    return {unquote(name): body for entry in terraform()["variables.tf"]["variable"] for name, body in entry.items()}


def test_terraform_variables_used_are_declared_and_declared_are_used() -> None:
    text = "\n".join((TERRAFORM / name).read_text() for name in ("main.tf", "outputs.tf"))
    used = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)", text))
    declared = set(declared_variables())
    assert used - declared == set(), "used but not declared"
    assert declared - used == set(), "declared but never used"
    assert {"namespace", "image", "api_replicas", "kubeconfig_path", "secret_key", "admin_api_key"} <= declared


def test_terraform_secrets_are_sensitive() -> None:
    variables = declared_variables()
    for name in ("secret_key", "admin_api_key", "openai_api_key", "anthropic_api_key", "database_url",
                 "redis_url", "postgres_password"):
        assert variables[name].get("sensitive") is True, name


def test_terraform_reads_manifests_that_exist_and_rewrites_strings_they_contain() -> None:
    main = (TERRAFORM / "main.tf").read_text()
    files = set(re.findall(r'[/"]([a-z0-9.-]+\.yaml)"', main))
    assert files, "main.tf names no manifest"
    for name in files:
        assert (K8S / name).is_file(), f"main.tf reads k8s/{name}, which does not exist"
    assert files >= {p.name for p in manifest_files()} - K8S_TEMPLATES - {"namespace.yaml"}
    image = re.search(r'manifest_image\s*=\s*"([^"]+)"', main)
    namespace = re.search(r'manifest_namespace\s*=\s*"([^"]+)"', main)
    assert image and namespace
    for name in ("api.yaml", "worker.yaml", "migrate-job.yaml"):
        assert (K8S / name).read_text().count(image.group(1)) == 1, f"{name}: {image.group(1)!r}"
    for name in files - {"namespace.yaml", "secret.example.yaml"}:
        text = (K8S / name).read_text()
        assert text.count(namespace.group(1)) == len(documents(name)), f"{name}: one namespace per document"
    for key in ("Deployment/llm-gateway-api", "HorizontalPodAutoscaler/llm-gateway-worker"):
        kind, name = key.split("/")
        find(kind, name)
        assert f'"{key}"' in main
