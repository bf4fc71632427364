#!/usr/bin/env python3
"""Evaluates every query of the Grafana dashboard and every alerting rule against a REAL Prometheus that
scrapes a running gateway, and fails when Prometheus rejects one.

It writes a throwaway prometheus.yml (scrape interval 1 s, static targets: the API's metrics port
(API_METRICS_PORT; the API port itself has no /metrics) and each worker's metrics port, plus
prometheus/alerts.yml), starts the Prometheus binary (Debian's `prometheus`
package: /usr/bin/prometheus) on a free loopback port with a temporary storage directory, waits until every
target has been scraped, then sends each expression to /api/v1/query with the Grafana variables replaced
($__rate_interval -> 1m, $__range -> 1h, $tenant/$model -> .*). Exit status: 0 when every query and rule
evaluates, 1 when one fails, 2 when Prometheus or a scrape target cannot be brought up. Queries that evaluate
to nothing are listed, and fail the run only with --fail-on-empty-panels.

    .venv/bin/python scripts/check_dashboard_queries.py --api-metrics-url http://127.0.0.1:9101 \
        --worker-metrics-url http://127.0.0.1:9100
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "grafana" / "dashboards" / "llm-gateway.json"
ALERTS = REPO / "prometheus" / "alerts.yml"

# Grafana's built-in variables, as a 1 s scrape interval and a one-hour dashboard range would set them.
GRAFANA_BUILTINS = {
    "__rate_interval": "1m", "__interval": "15s", "__interval_ms": "15000",
    "__range": "1h", "__range_s": "3600", "__range_ms": "3600000",
}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<metric>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$")
QUERY_RESULT = re.compile(r"^\s*query_result\((?P<query>.*)\)\s*$")


class SetupError(Exception):
    """Prometheus or a scrape target could not be brought up: nothing was checked."""


@dataclass(frozen=True)
class Query:
    where: str  # "panel 3 'Latency' A", "alert LLMGatewayNoWorkers", "variable tenant"
    expr: str
    panel: bool  # a dashboard query (panel or variable), as opposed to an alerting rule


@dataclass
class Outcome:
    query: Query
    sent: str
    error: str | None = None
    empty: bool = False


# ---------------------------------------------------------------- reading the dashboard and the rules


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # panels nested in collapsed rows


def dashboard_queries(dashboard: dict) -> list[Query]:
    queries = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                where = f"panel {panel.get('id')} '{panel.get('title', '')}' {target.get('refId', '')}".strip()
                queries.append(Query(where, target["expr"], panel=True))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") == "query" and query:
            queries.append(Query(f"variable {variable['name']}", query, panel=True))
    return queries


def alert_queries(rules: dict) -> list[Query]:
    return [Query(f"{'alert' if 'alert' in rule else 'record'} {rule.get('alert') or rule.get('record')}",
                  rule["expr"], panel=False)
            for group in rules.get("groups", []) for rule in group.get("rules", [])]


def variable_values(dashboard: dict) -> dict[str, str]:
    """What each dashboard variable stands for in a query: 'All' (.*) for multi-value ones."""
    values = dict(GRAFANA_BUILTINS)
    for variable in dashboard.get("templating", {}).get("list", []):
        kind, name = variable.get("type"), variable["name"]
        current = variable.get("current", {}).get("value")
        if kind == "interval":
            values[name] = "1m"
        elif kind == "query" or variable.get("includeAll") or variable.get("multi") or isinstance(current, list):
            values[name] = ".*"
        else:
            values[name] = str(current if current not in (None, "") else variable.get("query", ""))
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"unknown Grafana variable ${name}")
        return values[name]

    return VARIABLE.sub(replace, expr)


# ---------------------------------------------------------------- running Prometheus


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_prometheus(explicit: str | None = None) -> str:
    for candidate in (explicit, shutil.which("prometheus"), "/usr/bin/prometheus"):
        if candidate and Path(candidate).is_file():
            return candidate
    raise SetupError("the Prometheus binary was not found: install Debian's `prometheus` package "
                     "(apt-get install -y --no-install-recommends prometheus)")


def static_job(name: str, url: str) -> dict:
    parts = urlsplit(url)
    if not parts.hostname or not parts.port:
        raise SetupError(f"{url}: give a URL with a host and a port, e.g. http://127.0.0.1:9100")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return {"job_name": name, "scheme": parts.scheme or "http", "metrics_path": parts.path or "/metrics",
            "static_configs": [{"targets": [f"{host}:{parts.port}"]}]}


def scrape_config(api_metrics_url: str, worker_urls: list[str], rule_files: list[Path]) -> dict:
    jobs = [static_job("llm-gateway-api", api_metrics_url)]
    jobs += [static_job(f"llm-gateway-worker-{i}", url) for i, url in enumerate(worker_urls)]
    return {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files], "scrape_configs": jobs}


@contextlib.contextmanager
def running_prometheus(config: dict, binary: str | None = None, ready_timeout_s: float = 30) -> Iterator[str]:
    """Starts Prometheus on `config` (a prometheus.yml as a dict); yields its base URL; stops it."""
    executable = find_prometheus(binary)
    with tempfile.TemporaryDirectory(prefix="check-dashboard-") as tmp:
        config_path = Path(tmp) / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        log_path = Path(tmp) / "prometheus.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [executable, f"--config.file={config_path}", f"--storage.tsdb.path={Path(tmp) / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(process, base, ready_timeout_s, log_path)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(process: subprocess.Popen, base: str, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SetupError(f"Prometheus exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/-/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise SetupError(f"Prometheus was not ready after {timeout_s:.0f} s:\n{log_path.read_text()[-3000:]}")


def active_targets(client: httpx.Client, base: str) -> list[dict]:
    reply = client.get(f"{base}/api/v1/targets", params={"state": "active"}).json()
    return list(reply["data"]["activeTargets"])


def wait_for_scrapes(client: httpx.Client, base: str, timeout_s: float, settle_s: float) -> None:
    """Until every target answered a scrape, then `settle_s` more so rate() has several samples."""
    deadline = time.monotonic() + timeout_s
    targets: list[dict] = []
    while time.monotonic() < deadline:
        targets = active_targets(client, base)
        if targets and all(t["health"] == "up" for t in targets):
            time.sleep(settle_s)
            return
        time.sleep(0.25)
    down = [f"{t['scrapeUrl']}: {t['health']} {t.get('lastError', '')}".strip() for t in targets
            if t["health"] != "up"] or ["no target discovered"]
    raise SetupError("scrape targets not up after {:.0f} s:\n  {}".format(timeout_s, "\n  ".join(down)))


# ---------------------------------------------------------------- evaluating


def evaluate(client: httpx.Client, base: str, query: Query, values: dict[str, str]) -> Outcome:
    try:
        sent = substitute(query.expr, values)
    except KeyError as exc:
        return Outcome(query, query.expr, error=str(exc.args[0]))
    if match := LABEL_VALUES.match(sent):
        params: dict[str, str] = {"match[]": match["metric"]} if match["metric"] else {}
        return _reply(query, sent, client.get(f"{base}/api/v1/label/{match['label']}/values", params=params))
    if match := QUERY_RESULT.match(sent):
        sent = match["query"]
    return _reply(query, sent, client.post(f"{base}/api/v1/query", data={"query": sent}))


def _reply(query: Query, sent: str, response: httpx.Response) -> Outcome:
    try:
        body = response.json()
    except json.JSONDecodeError:
        return Outcome(query, sent, error=f"HTTP {response.status_code}: {response.text[:300]}")
    if body.get("status") != "success":
        return Outcome(query, sent, error=f"{body.get('errorType', 'error')}: {body.get('error', body)}")
    data = body["data"]
    result = data.get("result") if isinstance(data, dict) else data
    return Outcome(query, sent, empty=not result)


def rule_errors(client: httpx.Client, base: str) -> list[str]:
    """Rules Prometheus itself evaluated and found broken (health 'err')."""
    groups = client.get(f"{base}/api/v1/rules").json()["data"]["groups"]
    return [f"rule {rule['name']}: {rule.get('lastError', '')}" for group in groups for rule in group["rules"]
            if rule.get("health") == "err"]


def report(outcomes: list[Outcome], broken_rules: list[str], fail_on_empty_panels: bool) -> int:
    errors = [o for o in outcomes if o.error]
    empty = [o for o in outcomes if not o.error and o.empty]
    print(f"{len(outcomes)} queries evaluated: {len(errors)} failed, {len(empty)} empty")
    for outcome in errors:
        print(f"FAILED  {outcome.query.where}\n        {outcome.error}\n        query: {outcome.sent}")
    for line in broken_rules:
        print(f"FAILED  {line}")
    for outcome in empty:
        print(f"empty   {outcome.query.where}: {outcome.sent}")
    empty_panels = [o for o in empty if o.query.panel]
    if errors or broken_rules:
        return 1
    if fail_on_empty_panels and empty_panels:
        print(f"{len(empty_panels)} dashboard queries returned no data (--fail-on-empty-panels)")
        return 1
    print("OK: every dashboard and alert query evaluates")
    return 0


def check(args: argparse.Namespace) -> int:
    dashboard = json.loads(Path(args.dashboard).read_text())
    rules = yaml.safe_load(Path(args.alerts).read_text())
    queries = dashboard_queries(dashboard) + alert_queries(rules)
    values = variable_values(dashboard)
    config = scrape_config(args.api_metrics_url, args.worker_metrics_url or [], [Path(args.alerts).resolve()])
    with running_prometheus(config, args.prometheus) as base, httpx.Client(timeout=10) as client:
        print(f"Prometheus at {base}, scraping {1 + len(args.worker_metrics_url or [])} targets every 1 s")
        wait_for_scrapes(client, base, args.scrape_timeout, args.settle)
        outcomes = [evaluate(client, base, query, values) for query in queries]
        broken_rules = rule_errors(client, base)
    return report(outcomes, broken_rules, args.fail_on_empty_panels)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api-metrics-url", required=True,
                        help="the API's metrics port (API_METRICS_PORT), e.g. http://127.0.0.1:9101 (path: /metrics)")
    parser.add_argument("--worker-metrics-url", action="append", metavar="URL",
                        help="a worker's metrics endpoint, e.g. http://127.0.0.1:9100 (repeat for several)")
    parser.add_argument("--dashboard", default=str(DASHBOARD))
    parser.add_argument("--alerts", default=str(ALERTS))
    parser.add_argument("--prometheus", help="the Prometheus binary (default: prometheus on PATH)")
    parser.add_argument("--scrape-timeout", type=float, default=30, help="seconds to wait for targets to be up")
    parser.add_argument("--settle", type=float, default=4, help="seconds to keep scraping once targets are up")
    parser.add_argument("--fail-on-empty-panels", action="store_true",
                        help="also fail when a dashboard query returns no data")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return check(args)
    except SetupError as exc:
        print(f"SETUP FAILED: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
