"""The billing alerts of prometheus/alerts.yml fire when they should (promtool unit tests): a usage record
waiting too long, writers that stopped completing flushes, Redis losing the usage stream's consumer group; and
stay quiet for a writer that keeps up beside the API's unread copy of the gauges (exported as 0)."""

from pathlib import Path
from typing import Any

import yaml

from tests.observability.test_dashboard import _alerts, _promtool, _run

FIRING = [{"exp_labels": {"severity": "critical"}}]
USAGE_ALERT_TESTS: list[dict[str, Any]] = [
    # A record stuck since t=0 (its age grows 60 s a minute), writers still completing (empty) flushes.
    {"interval": "1m", "input_series": [
        {"series": 'llm_gateway_usage_oldest_unwritten_seconds{job="worker"}', "values": "0+60x10"},
        {"series": 'llm_gateway_usage_oldest_unwritten_seconds{job="api"}', "values": "0x10"},
        {"series": 'llm_gateway_usage_last_flush_timestamp_seconds{job="worker"}', "values": "1+60x10"}],
     "alert_rule_test": [
        {"eval_time": "2m", "alertname": "LLMGatewayBillingStalled", "exp_alerts": []},
        {"eval_time": "5m", "alertname": "LLMGatewayBillingStalled", "exp_alerts": FIRING}]},
    # The only writer stopped completing flushes at t=1m; nothing waits (yet).
    {"interval": "1m", "input_series": [
        {"series": 'llm_gateway_usage_oldest_unwritten_seconds{job="worker"}', "values": "0x10"},
        {"series": 'llm_gateway_usage_last_flush_timestamp_seconds{job="worker", instance="w1"}',
         "values": "1 60 60 60 60 60 60 60 60 60"},
        {"series": 'llm_gateway_usage_last_flush_timestamp_seconds{job="api"}', "values": "0x10"}],
     "alert_rule_test": [
        {"eval_time": "3m", "alertname": "LLMGatewayBillingStalled", "exp_alerts": []},
        {"eval_time": "6m", "alertname": "LLMGatewayBillingStalled", "exp_alerts": FIRING}]},
    # A healthy gateway: one writer keeps up, the other worker's writer died (its series stays at its last value
    # only while scraped; here it is gone), the API exports zeros. A group recreated at 3m.
    {"interval": "1m", "input_series": [
        {"series": 'llm_gateway_usage_oldest_unwritten_seconds{job="worker"}', "values": "0 1 0 2 0 1 0 0 1 0"},
        {"series": 'llm_gateway_usage_last_flush_timestamp_seconds{job="worker"}', "values": "1+60x10"},
        {"series": 'llm_gateway_usage_last_flush_timestamp_seconds{job="api"}', "values": "0x10"},
        {"series": "llm_gateway_usage_group_recreated_total", "values": "0 0 0 1 1 1 1 1 1 1"}],
     "alert_rule_test": [
        {"eval_time": "9m", "alertname": "LLMGatewayBillingStalled", "exp_alerts": []},
        {"eval_time": "2m", "alertname": "LLMGatewayRedisLostData", "exp_alerts": []},
        {"eval_time": "4m", "alertname": "LLMGatewayRedisLostData", "exp_alerts": [
            {"exp_labels": {"severity": "warning"}}]}]},
]


def test_billing_alerts_fire_on_a_stalled_writer_and_lost_redis_data(tmp_path: Path) -> None:
    promtool = _promtool()
    rules = _alerts()
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    tests = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": USAGE_ALERT_TESTS}
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    _run(promtool, "test", "rules", str(tmp_path / "alerts_test.yml"))
