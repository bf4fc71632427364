"""The Kubernetes manifests in k8s/: valid for the 1.30 OpenAPI schemas in strict mode (shipped by
kubernetes-validate), and the cross-references between them (services, probes, secrets, autoscaling)."""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from shared.config import Settings
from tests.deploy.support import (
    API_METRICS_PORT,
    DRAIN_S,
    GATEWAY_UID,
    K8S,
    K8S_TEMPLATES,
    SETTINGS,
    WORKER_METRICS_PORT,
    all_documents,
    documents,
    find,
    manifest_files,
)

K8S_VERSION = "1.30.0"
QUEUE_METRIC = "llm_gateway_queue_depth"


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


def test_k8s_api_metrics_are_scraped_on_their_own_port_never_through_the_service() -> None:
    """The API port has no /metrics (they list every tenant): pods are scraped on the `metrics` port, which
    the Service that clients reach does not carry; a headless Service names it for a ServiceMonitor."""
    api = find("Deployment", "llm-gateway-api")
    assert find("ConfigMap", "llm-gateway-config")["data"]["API_METRICS_PORT"] == str(API_METRICS_PORT)
    ports = {p["name"]: p["containerPort"] for p in pod_spec(api)["containers"][0]["ports"]}
    assert ports == {"http": 8000, "metrics": API_METRICS_PORT}
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(API_METRICS_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"
    service_ports = find("Service", "llm-gateway-api")["spec"]["ports"]
    assert [p["targetPort"] for p in service_ports] == ["http"]
    headless = find("Service", "llm-gateway-api-metrics")["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["ports"] == [{"name": "metrics", "port": API_METRICS_PORT, "targetPort": "metrics"}]
    assert headless["selector"] == api["spec"]["selector"]["matchLabels"]


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
    assert rule["resources"]["overrides"]["namespace"]["resource"] == "namespace"


def test_k8s_adapter_query_sums_the_shards_and_counts_each_shard_once(tmp_path: Path) -> None:
    """Every API pod reports every shard's queue: the backlog is the max over pods per shard, summed over
    shards. Evaluated by promtool on two pods reporting two shards (30 + 45 jobs: 75, not 90 or 45)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: scripts/test.sh installs Debian's prometheus package")
    config = yaml.safe_load(find("ConfigMap", "prometheus-adapter")["data"]["config.yaml"])
    rule = next(r for r in config["externalRules"] if QUEUE_METRIC in r["seriesQuery"])
    query = rule["metricsQuery"].replace("<<.Series>>", QUEUE_METRIC).replace(
        "<<.LabelMatchers>>", 'namespace="llm-gateway"')
    series = [{"series": f'{QUEUE_METRIC}{{namespace="llm-gateway", pod="{pod}", shard="{shard}"}}',
               "values": f"{depth}x5"} for pod in ("api-1", "api-2") for shard, depth in (("a", 30), ("b", 45))]
    tests = {"evaluation_interval": "1m", "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": [
        {"expr": query, "eval_time": "3m", "exp_samples": [{"labels": '{namespace="llm-gateway"}', "value": 75}]}]}]}
    (tmp_path / "adapter_test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    run = subprocess.run([promtool, "test", "rules", str(tmp_path / "adapter_test.yml")], capture_output=True,
                         text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


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
