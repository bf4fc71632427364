"""The Grafana dashboard, the Prometheus configs and the alerting rules against shared/metrics.py: every metric
they query is one the gateway exports (under its exposed name, labels included), every exported metric has a
panel, the dashboard is well-formed, and promtool (Debian's `prometheus` package) accepts configs and rules
and the alerts fire when they should."""

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import shared.metrics as metrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "grafana" / "dashboards" / "llm-gateway.json"
DATASOURCES = REPO / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = REPO / "grafana" / "provisioning" / "dashboards" / "llm-gateway.yml"
PROMETHEUS = REPO / "prometheus" / "prometheus.yml"
PROMETHEUS_K8S = REPO / "prometheus" / "prometheus-k8s.yml"
ALERTS = REPO / "prometheus" / "alerts.yml"

METRIC = re.compile(r"\bllm_gateway_[A-Za-z0-9_:]*")
SELECTOR = re.compile(r"\b(llm_gateway_\w+)\s*\{([^}]*)\}")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
RANGE = re.compile(r"\[([^\]]+)\]")
# Labels that Prometheus adds to every series (target labels) or that a histogram's buckets have.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container"}
SUFFIXES = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"],
            "summary": ["", "_sum", "_count"]}
REQUIRED_ALERTS = {"LLMGatewayHighErrorRate", "LLMGatewayQueueBacklog", "LLMGatewayQueueWaitHigh",
                   "LLMGatewayNoWorkers", "LLMGatewayBudgetExhausted", "LLMGatewayCircuitBreakerOpen",
                   "LLMGatewayHighOverhead"}
INSTALL_HINT = "install Debian's `prometheus` package: apt-get install -y --no-install-recommends prometheus"


# ---------------------------------------------------------------- what shared/metrics.py exports


def _metric_objects() -> list[MetricWrapperBase]:
    return [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]


def _exported() -> dict[str, tuple[str, set[str]]]:
    """Exposed series name -> (metric name in shared/metrics.py, its label names)."""
    series: dict[str, tuple[str, set[str]]] = {}
    for metric in _metric_objects():
        assert metric._type in SUFFIXES, f"{metric._name}: no rule for metric type {metric._type}"
        for suffix in SUFFIXES[metric._type]:
            labels = set(metric._labelnames) | ({"le"} if suffix == "_bucket" else set())
            series[metric._name + suffix] = (metric._name, labels)
    return series


# ---------------------------------------------------------------- what the dashboard and the rules query


def _dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def _alerts() -> dict[str, Any]:
    return dict(yaml.safe_load(ALERTS.read_text()))


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _panel_exprs() -> list[tuple[str, str]]:
    return [(f"panel {p['id']} '{p['title']}'", t["expr"]) for p in _panels(_dashboard()["panels"])
            for t in p.get("targets", []) if t.get("expr")]


def _variable_queries() -> list[tuple[str, str]]:
    return [(f"variable {v['name']}", v["query"]) for v in _dashboard()["templating"]["list"]
            if v.get("type") == "query"]


def _alert_exprs() -> list[tuple[str, str]]:
    return [(f"rule {r.get('alert') or r.get('record')}", r["expr"]) for g in _alerts()["groups"]
            for r in g["rules"]]


def _all_exprs() -> list[tuple[str, str]]:
    return _panel_exprs() + _variable_queries() + _alert_exprs()


# ---------------------------------------------------------------- metric names and labels


def test_every_queried_metric_is_exported_by_shared_metrics() -> None:
    exported = _exported()
    unknown = sorted({f"{where}: {name}" for where, expr in _all_exprs() for name in METRIC.findall(expr)
                      if name not in exported})
    assert unknown == [], f"not exported by shared/metrics.py (counters end in _total): {unknown}"


def test_every_exported_metric_has_a_dashboard_panel() -> None:
    exported = _exported()
    shown = {exported[name][0] for _, expr in _panel_exprs() for name in METRIC.findall(expr) if name in exported}
    missing = sorted({m._name for m in _metric_objects()} - shown)
    assert missing == [], f"metrics of shared/metrics.py without a panel: {missing}"


def test_selectors_match_only_labels_the_metric_has() -> None:
    exported = _exported()
    wrong = [f"{where}: {name}{{{label}}}" for where, expr in _all_exprs()
             for name, matchers in SELECTOR.findall(expr) if name in exported
             for label in MATCHER.findall(matchers) if label not in exported[name][1] | TARGET_LABELS]
    assert wrong == []


def test_aggregations_group_by_labels_the_queried_metrics_have() -> None:
    exported = _exported()
    wrong = []
    for where, expr in _all_exprs():
        available = set(TARGET_LABELS).union(*(exported[n][1] for n in METRIC.findall(expr) if n in exported))
        wrong += [f"{where}: by {label}" for group in GROUPING.findall(expr)
                  for label in (part.strip() for part in group.split(",")) if label and label not in available]
    assert wrong == []


# ---------------------------------------------------------------- the dashboard itself


def test_dashboard_is_valid_json_with_unique_panel_ids_and_the_provisioned_datasource() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 38
    assert dashboard["uid"] and dashboard["title"]
    assert "${DS_" not in DASHBOARD.read_text() and "__inputs" not in dashboard
    panels = list(_panels(dashboard["panels"]))
    ids = [p.get("id") for p in panels]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), ids
    bad = [f"panel {p['id']} '{p.get('title')}'" for p in panels
           if p.get("datasource", {}).get("uid") != "prometheus"
           or not any(t.get("expr", "").strip() for t in p.get("targets", []))
           or any(t.get("datasource", {"uid": "prometheus"}).get("uid") != "prometheus" for t in p["targets"])]
    assert bad == [], "panels without the `prometheus` datasource or without a target expression"


def test_dashboard_panels_fit_the_grid_and_have_titles() -> None:
    for panel in _panels(_dashboard()["panels"]):
        grid = panel["gridPos"]
        assert panel["title"] and panel["type"], panel["id"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["id"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["id"]


def test_dashboard_has_tenant_and_model_variables_from_the_requests_counter() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    for name in ("tenant", "model"):
        variable = variables[name]
        assert variable["type"] == "query" and variable["datasource"]["uid"] == "prometheus"
        assert variable["query"] == f"label_values(llm_gateway_requests_total, {name})"
        assert variable["includeAll"] and variable["allValue"] == ".*"
    exprs = " ".join(expr for _, expr in _panel_exprs())
    assert 'tenant=~"$tenant"' in exprs and 'model=~"$model"' in exprs


def test_dashboard_rates_use_grafana_windows() -> None:
    """rate()/increase() windows follow the scrape interval or the time picker, never a fixed duration."""
    fixed = [f"{where}: [{window}]" for where, expr in _panel_exprs() for window in RANGE.findall(expr)
             if window not in ("$__rate_interval", "$__range")]
    assert fixed == []
    assert all("$__rate_interval" in expr for _, expr in _panel_exprs() if "rate(" in expr)


def test_dashboard_has_the_panels_operators_look_for() -> None:
    exprs = {expr for _, expr in _panel_exprs()}
    for quantile in ("0.5", "0.95", "0.99"):
        assert any(f"histogram_quantile({quantile}," in e and "request_duration_seconds_bucket" in e for e in exprs)
    for metric in ("overhead_seconds", "time_to_first_token_seconds", "queue_wait_seconds"):
        assert {q for q in ("0.5", "0.99") if any(f"histogram_quantile({q}," in e and metric in e for e in exprs)} \
            == {"0.5", "0.99"}, metric
    assert any('result="hit"' in e and "/" in e for e in exprs), "cache hit rate"
    for grouping, metric in (("status", "requests_total"), ("model", "requests_total"), ("direction", "tokens"),
                             ("model", "tokens"), ("tenant", "cost_usd"), ("limit", "rate_limit"),
                             ("target", "circuit_breaker_state"), ("status", "jobs_total"),
                             ("endpoint", "requests_total"), ("endpoint", "cost_usd")):
        assert any(f"by ({grouping})" in e and metric in e for e in exprs), (grouping, metric)


# ---------------------------------------------------------------- provisioning and Prometheus configs


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard_folder() -> None:
    datasource = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    assert (datasource["uid"], datasource["type"], datasource["url"]) == \
        ("prometheus", "prometheus", "http://prometheus:9090")
    provider = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_prometheus_scrapes_the_api_and_every_worker_container() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["llm-gateway-api"]["static_configs"][0]["targets"] == ["api:9101"]  # API_METRICS_PORT
    assert jobs["llm-gateway-api"].get("metrics_path", "/metrics") == "/metrics"
    assert jobs["llm-gateway-worker"]["dns_sd_configs"] == [
        {"names": ["worker"], "type": "A", "port": 9100, "refresh_interval": "15s"}]


def test_alert_rules_cover_the_failure_modes_and_are_documented() -> None:
    rules = [r for g in _alerts()["groups"] for r in g["rules"] if "alert" in r]
    assert {r["alert"] for r in rules} >= REQUIRED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


# ---------------------------------------------------------------- promtool


def _promtool() -> str:
    path = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").is_file() else None)
    if path is None:
        pytest.fail(f"promtool is missing: {INSTALL_HINT}", pytrace=False)
    return path


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"


def test_promtool_accepts_the_rules() -> None:
    _run(_promtool(), "check", "rules", str(ALERTS))


def test_promtool_accepts_the_compose_config() -> None:
    _run(_promtool(), "check", "config", str(PROMETHEUS))


def test_promtool_accepts_the_kubernetes_config(tmp_path: Path) -> None:
    """Debian builds Prometheus without Kubernetes discovery, so its promtool rejects `kubernetes_sd_configs`:
    the discovery blocks are checked here and replaced by a static target, and promtool checks all the rest
    (relabeling included). tests/observability/test_dashboard_queries.py runs that relabeling on fake pods."""
    promtool = _promtool()
    config = yaml.safe_load(PROMETHEUS_K8S.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = [job for job in config["scrape_configs"] if "kubernetes_sd_configs" in job]
    assert jobs, "no scrape config discovers Kubernetes pods"
    for job in jobs:
        for discovery in job.pop("kubernetes_sd_configs"):
            assert discovery["role"] == "pod"
            assert set(discovery) <= {"role", "namespaces", "selectors", "api_server", "kubeconfig_file",
                                      "attach_metadata", "follow_redirects", "tls_config", "authorization"}
        job["static_configs"] = [{"targets": ["127.0.0.1:9100"]}]
        keep = job["relabel_configs"][0]
        assert keep["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
        assert (keep["action"], keep["regex"]) == ("keep", "true")
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    _run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))


# ---------------------------------------------------------------- the alerts fire when they should

# promtool unit tests of alerts.yml (annotations stripped: they are checked by `check rules` above).
ALERT_TESTS: list[dict[str, Any]] = [
    {"interval": "1m", "input_series": [
        {"series": 'llm_gateway_requests_total{status="500"}', "values": "0+10x30"},
        {"series": 'llm_gateway_requests_total{status="200"}', "values": "0+50x30"},
        {"series": 'llm_gateway_requests_total{status="500", tenant="calm"}', "values": "0+0x30"}],
     "alert_rule_test": [
        {"eval_time": "4m", "alertname": "LLMGatewayHighErrorRate", "exp_alerts": []},
        {"eval_time": "15m", "alertname": "LLMGatewayHighErrorRate",
         "exp_alerts": [{"exp_labels": {"severity": "critical"}}]},
        # no llm_gateway_workers series at all: absent() fires after 2m
        {"eval_time": "1m", "alertname": "LLMGatewayNoWorkers", "exp_alerts": []},
        {"eval_time": "5m", "alertname": "LLMGatewayNoWorkers",
         "exp_alerts": [{"exp_labels": {"severity": "critical"}}]}]},
    {"interval": "1m", "input_series": [
        {"series": 'llm_gateway_requests_total{status="500"}', "values": "0+1x30"},
        {"series": 'llm_gateway_requests_total{status="200"}', "values": "0+99x30"},
        # the API reports 3 workers, a worker process exports its unread copy of the gauge as 0
        {"series": 'llm_gateway_workers{job="llm-gateway-api"}', "values": "3x30"},
        {"series": 'llm_gateway_workers{job="llm-gateway-worker"}', "values": "0x30"},
        {"series": 'llm_gateway_queue_depth{job="llm-gateway-api"}', "values": "500x30"},
        {"series": 'llm_gateway_circuit_breaker_state{target="openai:gpt-4o", instance="w1"}', "values": "2x30"},
        {"series": 'llm_gateway_circuit_breaker_state{target="openai:gpt-4o", instance="w2"}', "values": "0x30"},
        {"series": 'llm_gateway_circuit_breaker_state{target="anthropic:claude"}', "values": "1x30"},
        {"series": 'llm_gateway_budget_rejections_total{tenant="acme"}', "values": "0 0 0 0 0 1 1 1 1 1"}],
     "alert_rule_test": [
        {"eval_time": "15m", "alertname": "LLMGatewayHighErrorRate", "exp_alerts": []},
        {"eval_time": "15m", "alertname": "LLMGatewayNoWorkers", "exp_alerts": []},
        {"eval_time": "3m", "alertname": "LLMGatewayQueueBacklog", "exp_alerts": []},
        {"eval_time": "10m", "alertname": "LLMGatewayQueueBacklog",
         "exp_alerts": [{"exp_labels": {"severity": "warning"}}]},
        {"eval_time": "10m", "alertname": "LLMGatewayCircuitBreakerOpen",
         "exp_alerts": [{"exp_labels": {"severity": "warning", "target": "openai:gpt-4o"}}]},
        {"eval_time": "6m", "alertname": "LLMGatewayBudgetExhausted",
         "exp_alerts": [{"exp_labels": {"severity": "warning", "tenant": "acme"}}]}]},
    {"interval": "1m", "input_series": [
        # two shards of 60 jobs each, reported by the API and a worker process alike: 120 waiting, not 60 or 240
        {"series": f'llm_gateway_queue_depth{{job="llm-gateway-{job}", shard="{shard}"}}', "values": "60x30"}
        for job in ("api", "worker") for shard in ("a", "b")],
     "alert_rule_test": [
        {"eval_time": "10m", "alertname": "LLMGatewayQueueBacklog",
         "exp_alerts": [{"exp_labels": {"severity": "warning"}}]}]},
    {"interval": "1m", "input_series": [
        # 100 jobs a minute, 3 of them waiting over 5 s (le="+Inf" minus le="5.0"): p99 above 5 s
        {"series": 'llm_gateway_queue_wait_seconds_bucket{le="5.0"}', "values": "0+97x30"},
        {"series": 'llm_gateway_queue_wait_seconds_bucket{le="+Inf"}', "values": "0+100x30"},
        {"series": "llm_gateway_queue_wait_seconds_count", "values": "0+100x30"},
        # overhead: every request in the (0.5, 1] bucket
        {"series": 'llm_gateway_overhead_seconds_bucket{model="m", le="0.5"}', "values": "0x30"},
        {"series": 'llm_gateway_overhead_seconds_bucket{model="m", le="1.0"}', "values": "0+10x30"},
        {"series": 'llm_gateway_overhead_seconds_bucket{model="m", le="+Inf"}', "values": "0+10x30"}],
     "alert_rule_test": [
        {"eval_time": "15m", "alertname": "LLMGatewayQueueWaitHigh",
         "exp_alerts": [{"exp_labels": {"severity": "warning"}}]},
        {"eval_time": "20m", "alertname": "LLMGatewayHighOverhead",
         "exp_alerts": [{"exp_labels": {"severity": "warning"}}]}]},
]


def test_alerts_fire_on_matching_series_and_stay_quiet_otherwise(tmp_path: Path) -> None:
    promtool = _promtool()
    rules = _alerts()
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    tests = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": ALERT_TESTS}
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    _run(promtool, "test", "rules", str(tmp_path / "alerts_test.yml"))
