"""The soak test's judgements (`bench/soak_checks.py`) on made-up input: a soak that can never fail proves
nothing, so each check is shown to fail on the case it exists for."""

import pytest

from bench.soak_checks import (
    LIMITED,
    OK,
    UNEXPECTED,
    TenantLedger,
    UsageRow,
    anthropic_stream_problem,
    check_usage,
    classify,
    job_events_problem,
    job_id_from,
    least_squares_slope,
    mix_sequence,
    openai_stream_problem,
    rss_summary,
    sse_fields,
)


@pytest.mark.parametrize(("status", "limited_tenant", "problem", "expected", "outcome"), [
    (200, False, None, 200, OK),
    (202, False, None, 202, OK),
    (429, True, None, 200, LIMITED),
    (429, False, None, 200, UNEXPECTED),  # 429 from a tenant without a limit
    (500, False, None, 200, UNEXPECTED),
    (503, True, None, 200, UNEXPECTED),  # the rate-limited tenant may get 429, nothing else
    (200, False, "stream ended without [DONE]", 200, UNEXPECTED),
    (200, False, None, 202, UNEXPECTED),  # a job submission must be 202
    (None, False, "ReadTimeout", 200, UNEXPECTED),
])
def test_classify(status: int | None, limited_tenant: bool, problem: str | None, expected: int, outcome: str) -> None:
    assert classify(status, rate_limited_tenant=limited_tenant, problem=problem, expected_status=expected)[0] == outcome


def test_classify_keeps_the_reason() -> None:
    assert classify(None, rate_limited_tenant=False, problem="ConnectError")[1] == "ConnectError"
    assert classify(502, rate_limited_tenant=False, problem="bad gateway")[1] == "HTTP 502: bad gateway"


@pytest.mark.parametrize(("response_id", "job_id"), [
    ("chatcmpl-job_abc", "job_abc"), ("msg_job_abc", "job_abc"), ("job_abc", "job_abc"),
    ("chatcmpl-4f2e9a", None), ("", None), (None, None),
])
def test_job_id_from(response_id: str | None, job_id: str | None) -> None:
    assert job_id_from(response_id) == job_id


GOOD_OPENAI = ('data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'
               'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\ndata: [DONE]\n\n')


def test_openai_stream_problem() -> None:
    assert openai_stream_problem(sse_fields(GOOD_OPENAI, "data")) is None
    truncated = GOOD_OPENAI.replace("data: [DONE]\n\n", "")
    assert "without [DONE]" in str(openai_stream_problem(sse_fields(truncated, "data")))
    failed = 'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: {"error": {"code": "stream_interrupted"}}\n\n'
    assert "error event" in str(openai_stream_problem(sse_fields(failed, "data")))
    no_usage = 'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: [DONE]\n\n'
    assert openai_stream_problem(sse_fields(no_usage, "data")) == "no usage chunk before [DONE]"
    assert openai_stream_problem([]) == "empty stream"


def test_anthropic_and_job_event_streams() -> None:
    assert anthropic_stream_problem(["message_start", "content_block_delta", "message_stop"]) is None
    assert anthropic_stream_problem(["message_start", "content_block_delta"]) is not None
    assert anthropic_stream_problem(["message_start", "error"]) == "error event"
    assert job_events_problem(["start", "token", "done"]) is None
    assert job_events_problem(["start", "error"]) is not None
    assert job_events_problem([]) is not None
    assert sse_fields("event: start\ndata: {}\n\nevent: done\n", "event") == ["start", "done"]


def test_least_squares_slope() -> None:
    assert least_squares_slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
    assert least_squares_slope([(0, 1), (1, 0), (2, 1), (3, 0)]) == pytest.approx(-0.2)
    assert least_squares_slope([(0, 1)]) is None
    assert least_squares_slope([(1, 1), (1, 2)]) is None


def test_rss_summary_flat_after_warmup() -> None:
    # steep start (imports, caches) inside the warm-up, then flat with noise
    samples = [(0.0, 50.0), (10.0, 90.0), *((60.0 + 10 * i, 100.0 + (0.3 if i % 2 else 0.0)) for i in range(55))]
    summary = rss_summary(samples, warmup_s=60)
    assert summary["start_mib"] == 100.0
    assert summary["flat"] is True
    assert abs(summary["slope_mib_per_min"]) < 0.1


def test_rss_summary_catches_a_leak() -> None:
    leaking = [(10.0 * i, 100.0 + 0.5 * i) for i in range(60)]  # 3 MiB/min for 10 minutes
    summary = rss_summary(leaking, warmup_s=60)
    assert summary["slope_mib_per_min"] == pytest.approx(3.0)
    assert summary["flat"] is False


def test_rss_summary_ignores_noise_over_a_short_window_but_not_a_jump() -> None:
    short = [(3.0, 100.0), (13.0, 100.5), (23.0, 100.8)]  # steep slope, tiny growth
    assert rss_summary(short, warmup_s=3)["flat"] is True
    jump = [(60.0, 100.0), (300.0, 100.0), (600.0, 130.0)]
    assert rss_summary(jump, warmup_s=60)["flat"] is False
    assert rss_summary([(0.0, 1.0)], warmup_s=0)["flat"] is None


def test_ledger_counts_shared_answers_as_hits() -> None:
    ledger = TenantLedger("cache", job_answers=["job_a", "job_a", "job_a", "job_b"], hits=5)
    assert ledger.expected() == ({"job_a", "job_b"}, 7)


def _rows(*specs: tuple[str, str]) -> list[UsageRow]:
    return [UsageRow(rid, tenant, rid.startswith("hit_"), "succeeded") for rid, tenant in specs]


def test_check_usage_all_good() -> None:
    ledgers = {"t1": TenantLedger("t1", ["job_1", "job_2"]), "tc": TenantLedger("cache", ["job_3", "job_3"], hits=1),
               "tl": TenantLedger("limited", ["job_4"], refused=9)}
    rows = _rows(("job_1", "t1"), ("job_2", "t1"), ("job_3", "tc"), ("hit_x", "tc"), ("hit_y", "tc"), ("job_4", "tl"))
    result = check_usage(ledgers, rows)
    assert result["problems"] == []
    assert result["tenants"]["tc"]["hit_rows"] == 2


@pytest.mark.parametrize(("rows", "needle"), [
    (_rows(("job_1", "t1")), "without a usage row"),  # job_2 lost
    (_rows(("job_1", "t1"), ("job_2", "t1"), ("job_2", "t1")), "more than once"),
    (_rows(("job_1", "t1"), ("job_2", "t1"), ("job_9", "t1")), "for no admitted request"),  # e.g. a refused request
    (_rows(("job_1", "t1"), ("job_2", "t1"), ("hit_z", "t1")), "cache-hit rows, expected 0"),
    (_rows(("job_1", "t1"), ("job_2", "t2")), "under another tenant"),
    (_rows(("job_1", "t1"), ("job_2", "t1"), ("hit_q", "stranger")), "unknown tenants"),
])
def test_check_usage_finds_each_problem(rows: list[UsageRow], needle: str) -> None:
    ledgers = {"t1": TenantLedger("t1", ["job_1", "job_2"]), "t2": TenantLedger("t2")}
    problems = check_usage(ledgers, rows)["problems"]
    assert any(needle in p for p in problems), problems


def test_check_usage_flags_failed_rows() -> None:
    rows = [UsageRow("job_1", "t1", False, "failed")]
    assert any("not succeeded" in p for p in check_usage({"t1": TenantLedger("t1", ["job_1"])}, rows)["problems"])


def test_mix_sequence_has_the_weights_spread_out() -> None:
    weights = {"plain": 8, "stream": 3, "messages": 2, "job": 3, "cache": 3, "limited": 1}
    sequence = mix_sequence(weights)
    assert len(sequence) == 20
    assert {kind: sequence.count(kind) for kind in weights} == weights
    assert all(sequence[i:i + 2] != ["plain", "plain"] for i in range(19))  # never two plain in a row
