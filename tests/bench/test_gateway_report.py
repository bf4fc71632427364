"""The gateway benchmark's target check (bench/gateway_report.py): issue 17's CPU target counts every gateway
process, not the upstream, and says by how much it is met or missed."""

from typing import Any

from bench.gateway_report import check_targets


def _results(cpu: dict[str, float]) -> dict[str, Any]:
    return {"matrix": {"instant/plain/c64": {"gateway": {"cpu_ms_per_request": cpu}, "derived": {}}},
            "idle": {}, "memory": {}}


def test_cpu_target_sums_the_gateway_processes_and_leaves_the_upstream_out() -> None:
    cpu = {"api": 0.5, "worker": 0.4, "redis": 0.2, "postgres": 0.05, "upstream": 3.0}
    target = check_targets(_results(cpu))[0]
    assert target["where"] == "instant/plain/c64"
    assert abs(target["value"] - 1.15) < 1e-9
    assert target["met"] is True and target["status"] == "met (0.05 ms under)"


def test_cpu_target_missed_states_by_how_much() -> None:
    target = check_targets(_results({"api": 1.5, "worker": 1.3, "redis": 0.3, "postgres": 0.04}))[0]
    assert target["met"] is False and target["status"] == "MISSED (1.94 ms over)"


def test_cpu_target_not_measured_without_the_cell() -> None:
    target = check_targets({"matrix": {}, "idle": {}, "memory": {}})[0]
    assert target["value"] is None and target["status"] == "not measured"
