"""Pure judgements of the soak test (`bench/soak.py`), kept apart so tests can feed them made-up input:
which answers were expected, whether a stream ended properly, how fast a process's memory grows, and
whether the usage table holds exactly one record per admitted request.

Nothing here does I/O; the soak's driver and stack modules collect the data and call these."""

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

OK, LIMITED, UNEXPECTED = "ok", "limited", "unexpected"
# A process's RSS is "flat" when, after the warm-up, it grows (end minus start) by at most GROWTH_LIMIT_MIB, and
# either its least-squares slope is at most SLOPE_LIMIT_MIB_PER_MIN or its growth stays within NOISE_MIB (over a
# short window a few hundred KiB of allocator noise make a steep slope). A per-request leak of 1 KiB at 40
# requests/s is 2.3 MiB/min, over 9 minutes 21 MiB: caught by both limits.
SLOPE_LIMIT_MIB_PER_MIN = 1.0
GROWTH_LIMIT_MIB = 16.0
NOISE_MIB = 4.0
JOB_PREFIXES = ("chatcmpl-", "msg_")


def classify(status: int | None, *, rate_limited_tenant: bool, problem: str | None = None,
             expected_status: int = 200) -> tuple[str, str | None]:
    """(outcome, reason) of one request. `status` is None for a transport error or timeout; `problem` is what
    the client found wrong in an answer whose status was fine (a stream without its terminal event, a job
    that failed, a missing job id). 429 is expected only from the tenant driven above its limit."""
    if status is None:
        return UNEXPECTED, problem or "no response"
    if status == 429 and rate_limited_tenant:
        return LIMITED, None
    if status != expected_status:
        return UNEXPECTED, f"HTTP {status}" + (f": {problem}" if problem else "")
    if problem:
        return UNEXPECTED, problem
    return OK, None


def job_id_from(response_id: str | None) -> str | None:
    """The job behind a completion id: `chatcmpl-job_x` and `msg_job_x` give `job_x`; cache hits (whose ids
    hold no job) and anything else give None."""
    if not response_id:
        return None
    for prefix in JOB_PREFIXES:
        if response_id.startswith(prefix + "job_"):
            return response_id[len(prefix):]
    return response_id if response_id.startswith("job_") else None


def openai_stream_problem(lines: Sequence[str]) -> str | None:
    """None when an OpenAI SSE body (its `data:` payloads, in order) ended with a usage chunk and
    `[DONE]` and held no error event."""
    data = [line for line in lines if line]
    if not data:
        return "empty stream"
    errors = [line for line in data if line.startswith('{"error"')]
    if errors:
        return f"error event: {errors[0][:160]}"
    if data[-1] != "[DONE]":
        return f"stream ended without [DONE]: {data[-1][:120]}"
    if len(data) < 2 or '"usage":{' not in data[-2].replace(" ", ""):
        return "no usage chunk before [DONE]"
    return None


def anthropic_stream_problem(events: Sequence[str]) -> str | None:
    """None when an Anthropic SSE body (its `event:` names, in order) ended with `message_stop`."""
    if "error" in events:
        return "error event"
    if not events or events[-1] != "message_stop":
        return f"stream ended without message_stop: {events[-1:] or 'nothing'}"
    return None


def job_events_problem(events: Sequence[str]) -> str | None:
    """None when a job event stream ended with `done` (`error` or `cancelled` are failures here)."""
    if not events:
        return "empty event stream"
    if events[-1] != "done":
        return f"job event stream ended with {events[-1]!r}"
    return None


def sse_fields(body: str, name: str) -> list[str]:
    """The values of one SSE field (`data` or `event`) in a whole SSE body, in order."""
    prefix = f"{name}:"
    return [line[len(prefix):].strip() for line in body.splitlines() if line.startswith(prefix)]


def least_squares_slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Slope of the least-squares line through (x, y) points; None with fewer than two distinct x."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var_x = sum((x - mean_x) ** 2 for x, _ in points)
    if var_x == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var_x


def rss_summary(samples: Sequence[tuple[float, float]], warmup_s: float) -> dict[str, Any]:
    """From (seconds since start, RSS MiB) samples: start (first sample at or after the warm-up), end, peak,
    and the slope in MiB/min over the samples after the warm-up; `flat` against the limits above."""
    after = [(t, mib) for t, mib in samples if t >= warmup_s]
    if len(after) < 2:
        return {"start_mib": None, "end_mib": None, "peak_mib": None, "slope_mib_per_min": None,
                "growth_mib": None, "samples": len(samples), "flat": None}
    slope_per_s = least_squares_slope(after)
    slope = None if slope_per_s is None else slope_per_s * 60
    growth = after[-1][1] - after[0][1]
    flat = growth <= GROWTH_LIMIT_MIB and (slope is None or slope <= SLOPE_LIMIT_MIB_PER_MIN or growth <= NOISE_MIB)
    return {"start_mib": round(after[0][1], 2), "end_mib": round(after[-1][1], 2),
            "peak_mib": round(max(mib for _, mib in samples), 2),
            "slope_mib_per_min": None if slope is None else round(slope, 3), "growth_mib": round(growth, 2),
            "samples": len(samples), "flat": flat}


@dataclass
class TenantLedger:
    """What the client saw for one tenant: the job ids of admitted requests (one entry per answer, so a job
    shared by identical requests appears once per request) and the cache hits (no job id)."""

    label: str = ""
    job_answers: list[str] = field(default_factory=list)
    hits: int = 0
    refused: int = 0

    def expected(self) -> tuple[set[str], int]:
        """(job ids that each need one usage row, usage rows of cache hits and shared answers). A job id seen
        n times had one owner and n - 1 followers; each follower is recorded as a cache hit."""
        counts = Counter(self.job_answers)
        return set(counts), self.hits + sum(n - 1 for n in counts.values())


@dataclass(frozen=True)
class UsageRow:
    request_id: str
    tenant_id: str
    cache_hit: bool
    status: str


def check_usage(ledgers: Mapping[str, TenantLedger], rows: Iterable[UsageRow]) -> dict[str, Any]:
    """Every admitted request has exactly one usage record: each admitted job id once (with the same tenant),
    and per tenant as many `hit_` rows as hits plus shared answers, and no other rows (so none for refused
    requests). Returns the counts and the problems (empty when all is well)."""
    rows = list(rows)
    problems: list[str] = []
    duplicates = sorted(rid for rid, n in Counter(r.request_id for r in rows).items() if n > 1)
    if duplicates:
        problems.append(f"{len(duplicates)} request ids recorded more than once, e.g. {duplicates[:3]}")
    by_id = {r.request_id: r for r in rows}
    per_tenant: dict[str, Any] = {}
    for tenant, ledger in ledgers.items():
        job_ids, hits = ledger.expected()
        mine = [r for r in rows if r.tenant_id == tenant]
        missing = sorted(j for j in job_ids if j not in by_id)
        wrong_tenant = sorted(j for j in job_ids if j in by_id and by_id[j].tenant_id != tenant)
        hit_rows = [r for r in mine if r.request_id.startswith("hit_")]
        extra = sorted(r.request_id for r in mine
                       if not r.request_id.startswith("hit_") and r.request_id not in job_ids)
        failed = [r.request_id for r in mine if r.status != "succeeded"]
        per_tenant[tenant] = {"label": ledger.label, "admitted_jobs": len(job_ids), "expected_hit_rows": hits,
                              "rows": len(mine), "hit_rows": len(hit_rows), "missing": len(missing),
                              "extra": len(extra), "refused": ledger.refused, "failed_rows": len(failed)}
        if missing:
            problems.append(f"{tenant}: {len(missing)} admitted jobs without a usage row, e.g. {missing[:3]}")
        if wrong_tenant:
            problems.append(f"{tenant}: {len(wrong_tenant)} jobs recorded under another tenant")
        if extra:
            problems.append(f"{tenant}: {len(extra)} usage rows for no admitted request, e.g. {extra[:3]}")
        if len(hit_rows) != hits:
            problems.append(f"{tenant}: {len(hit_rows)} cache-hit rows, expected {hits}")
        if failed:
            problems.append(f"{tenant}: {len(failed)} usage rows not succeeded, e.g. {failed[:3]}")
    strangers = sorted({r.tenant_id for r in rows} - set(ledgers))
    if strangers:
        problems.append(f"usage rows of unknown tenants: {strangers[:3]}")
    return {"rows": len(rows), "tenants": per_tenant, "problems": problems}


def parse_json(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def mix_sequence(weights: Mapping[str, int]) -> list[str]:
    """One cycle of request kinds, each kind `weight` times, spread evenly (smooth weighted round robin), so
    any stretch of the open-loop schedule has close to the intended mix."""
    total = sum(weights.values())
    current = dict.fromkeys(weights, 0)
    sequence = []
    for _ in range(total):
        for kind, weight in weights.items():
            current[kind] += weight
        chosen = max(current, key=lambda k: current[k])
        current[chosen] -= total
        sequence.append(chosen)
    return sequence
