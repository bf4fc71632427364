"""Runs scripts/check_dashboard_queries.py, and so a real Prometheus (Debian's `prometheus` package), against a
fake metrics endpoint serving every metric of shared/metrics.py with sample labels; and checks the relabeling
of prometheus/prometheus-k8s.yml in that same Prometheus, with fake pods as static targets."""

import contextlib
import importlib.util
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import shared.metrics as metrics

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check_dashboard_queries.py"
K8S_CONFIG = REPO / "prometheus" / "prometheus-k8s.yml"
INSTALL_HINT = "install Debian's `prometheus` package: apt-get install -y --no-install-recommends prometheus"

# Runs in a fresh interpreter so that the samples never reach this process's REGISTRY (other tests read it).
# Every metric of the module gets two children, so that filters such as status=~"5.." or result="hit" match.
EXPOSITION_SNIPPET = """
import sys
from itertools import count
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics import MetricWrapperBase
import shared.metrics as m

CHOICES = {"status": ["200", "500"], "result": ["hit", "miss"], "direction": ["in", "out"],
           "stream": ["false", "true"], "limit": ["requests", "tokens"], "provider": ["openai", "anthropic"]}
amounts = count(1)
for metric in vars(m).values():
    if not isinstance(metric, MetricWrapperBase):
        continue
    for variant in range(2):
        names = metric._labelnames
        child = metric.labels(*[CHOICES.get(n, [f"sample-{n}"] * 2)[variant] for n in names]) if names else metric
        kind, amount = metric._type, next(amounts)
        if kind == "counter":
            child.inc(amount)
        elif kind == "gauge":
            child.set(2 if metric._name.endswith("circuit_breaker_state") else amount)
        else:
            for seconds in (0.003, 0.04, 0.3, 2.0):
                child.observe(seconds * amount)
sys.stdout.buffer.write(generate_latest(REGISTRY))
"""
GROWING = re.compile(r"^(\w+(?:_total|_bucket|_count|_sum))(\{.*\})? (\S+)$")


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_dashboard_queries", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


check_script = _load_script()


def _prometheus() -> str:
    with contextlib.suppress(check_script.SetupError):
        return str(check_script.find_prometheus())
    pytest.fail(f"the Prometheus binary is missing: {INSTALL_HINT}", pytrace=False)


def _exposition() -> str:
    done = subprocess.run([sys.executable, "-c", EXPOSITION_SNIPPET], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _scaled(text: str, factor: int) -> str:
    """The exposition with counters and histograms multiplied by `factor`: they grow from scrape to scrape."""
    lines = []
    for line in text.splitlines():
        match = GROWING.match(line)
        if match and not line.startswith("#"):
            line = f"{match[1]}{match[2] or ''} {float(match[3]) * factor}"
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def fake_metrics() -> Iterator[str]:
    text = _exposition()
    scrapes = iter(range(1, 1_000_000))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                body = _scaled(text, next(scrapes)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_fake_endpoint_serves_every_metric_of_shared_metrics(fake_metrics: str) -> None:
    text = httpx.get(f"{fake_metrics}/metrics", timeout=5).text
    names = [m._name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]
    assert [n for n in names if f"\n{n}" not in text and f"\n{n}_" not in text] == []


@pytest.mark.timeout(120)
def test_every_dashboard_and_alert_query_evaluates_in_a_real_prometheus(fake_metrics: str) -> None:
    prometheus = _prometheus()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--api-metrics-url", fake_metrics, "--worker-metrics-url", fake_metrics,
         "--prometheus", prometheus, "--fail-on-empty-panels"],
        cwd=REPO, capture_output=True, text=True, timeout=100, check=False)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "OK: every dashboard and alert query evaluates" in done.stdout


def _pod(ip: str, container_port: int, phase: str = "Running", **annotations: str) -> dict:
    labels = {"__address__": f"[{ip}]:{container_port}" if ":" in ip else f"{ip}:{container_port}",
              "__meta_kubernetes_pod_ip": ip, "__meta_kubernetes_pod_phase": phase,
              "__meta_kubernetes_namespace": "llm", "__meta_kubernetes_pod_name": f"pod-{ip}-{phase}",
              "__meta_kubernetes_pod_container_name": "app", "__meta_kubernetes_pod_label_app": "llm-gateway"}
    labels.update({f"__meta_kubernetes_pod_annotation_prometheus_io_{k}": v for k, v in annotations.items()})
    return {"targets": [labels.pop("__address__")], "labels": labels}


def _targets_once_all_discovered(base: str, count: int) -> dict:
    deadline = time.monotonic() + 30
    while True:
        reply = httpx.get(f"{base}/api/v1/targets", timeout=10).json()["data"]
        if len(reply["activeTargets"]) + len(reply["droppedTargets"]) >= count or time.monotonic() > deadline:
            return dict(reply)
        time.sleep(0.2)


@pytest.mark.timeout(120)
def test_k8s_config_scrapes_annotated_running_pods_on_their_annotated_port() -> None:
    """Debian's Prometheus has no Kubernetes discovery, so the pods the pod role would find are given as static
    targets carrying the same __meta_kubernetes_* labels; the config's relabeling is applied to them unchanged.
    Pod addresses are loopback ones: the scrapes that Prometheus may try go nowhere."""
    _prometheus()
    config = yaml.safe_load(K8S_CONFIG.read_text())
    config["rule_files"] = []
    config["global"]["scrape_interval"] = "1h"
    job = next(j for j in config["scrape_configs"] if "kubernetes_sd_configs" in j)
    job.pop("kubernetes_sd_configs")
    job["static_configs"] = [
        _pod("127.0.0.2", 8080, scrape="true", port="9100"),
        _pod("::1", 8080, scrape="true", port="9101", path="/metrics"),
        _pod("127.0.0.3", 8080, scrape="false", port="9100"),
        _pod("127.0.0.4", 8080),
        _pod("127.0.0.5", 8080, phase="Succeeded", scrape="true", port="9100"),
    ]
    with check_script.running_prometheus(config) as base:
        reply = _targets_once_all_discovered(base, count=len(job["static_configs"]))
    active = {t["labels"]["instance"]: t for t in reply["activeTargets"]}
    assert sorted(active) == ["127.0.0.2:9100", "[::1]:9101"]
    assert active["127.0.0.2:9100"]["scrapeUrl"] == "http://127.0.0.2:9100/metrics"
    assert active["[::1]:9101"]["labels"]["namespace"] == "llm"
    assert active["[::1]:9101"]["labels"]["app"] == "llm-gateway"
    assert len(reply["droppedTargets"]) == 3
