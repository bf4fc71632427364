"""Load generator of the soak test: an open loop that starts one request every 1/rate seconds whatever the
answers do (a closed loop would slow down with the gateway and hide overload), in a fixed mix of kinds.

Each request checks its whole answer (a stream read to its terminal event, a job polled or followed to its
end) and is classified by `soak_checks.classify`; the job ids of admitted requests and the cache hits go to
per-tenant ledgers that the usage check compares with PostgreSQL at the end."""

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.gateway_stats import summarise_ms
from bench.soak_checks import (
    LIMITED,
    OK,
    UNEXPECTED,
    TenantLedger,
    anthropic_stream_problem,
    classify,
    job_events_problem,
    job_id_from,
    mix_sequence,
    openai_stream_problem,
    parse_json,
    sse_fields,
)

# Shares of the total rate, in twentieths (5 % steps).
MIX = {"plain": 8, "stream": 3, "messages": 2, "job": 3, "cache": 3, "limited": 1}
CACHED_PROMPTS = 8
MAX_TOKENS = 64
REQUEST_TIMEOUT_S = 60.0
JOB_DEADLINE_S = 60.0
POLL_INTERVAL_S = 0.25
TERMINAL = {"succeeded", "failed", "cancelled"}
MAX_REASON_SAMPLES = 20


@dataclass
class Tenant:
    label: str
    id: str
    key: str
    rate_limited: bool = False


@dataclass
class Answer:
    """What one request function found: HTTP status (None: no answer), a problem in the answer, the job id
    of an admitted request, and whether it was a cache hit."""

    status: int | None
    problem: str | None = None
    job_id: str | None = None
    hit: bool = False
    expected_status: int = 200


@dataclass
class Outcome:
    kind: str
    tenant: str
    started_s: float
    latency_s: float
    outcome: str
    reason: str | None


@dataclass
class Traffic:
    """Everything the load generator recorded; `ledgers` is keyed by tenant id."""

    outcomes: list[Outcome] = field(default_factory=list)
    ledgers: dict[str, TenantLedger] = field(default_factory=dict)
    scheduled: int = 0
    max_lag_s: float = 0.0
    late_starts: int = 0  # requests started more than 100 ms after their slot
    max_in_flight: int = 0
    unfinished: int = 0


class Driver:
    """Sends the mix to one gateway. `tenants` are the normal tenants (plain, stream, messages, jobs are
    spread over them), `cache_tenant` gets the repeated prompts, `limited_tenant` is driven above its limit."""

    def __init__(self, client: httpx.AsyncClient, url: str, tenants: list[Tenant], cache_tenant: Tenant,
                 limited_tenant: Tenant, model: str) -> None:
        self.client, self.url, self.model = client, url, model
        self.tenants, self.cache_tenant, self.limited_tenant = tenants, cache_tenant, limited_tenant
        self.run_id = uuid.uuid4().hex[:8]
        self.traffic = Traffic(ledgers={t.id: TenantLedger(t.label) for t in [*tenants, cache_tenant, limited_tenant]})
        self.cache_calls = itertools.count()
        self.started = time.monotonic()
        self.kinds: dict[str, Callable[[int, Tenant], Awaitable[Answer]]] = {
            "plain": self.plain, "stream": self.stream, "messages": self.messages, "job": self.job,
            "cache": self.cache, "limited": self.limited}

    # --- the open loop -------------------------------------------------------------------------------
    async def run(self, duration_s: float, rate: float, drain_s: float = 2 * REQUEST_TIMEOUT_S) -> Traffic:
        sequence = mix_sequence(MIX)
        loop = asyncio.get_running_loop()
        begin = loop.time()
        self.started = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        i = 0
        while i / rate < duration_s:
            lag = loop.time() - (begin + i / rate)
            if lag < 0:
                await asyncio.sleep(-lag)
            else:
                self.traffic.max_lag_s = max(self.traffic.max_lag_s, lag)
                self.traffic.late_starts += lag > 0.1
            task = asyncio.create_task(self.one(sequence[i % len(sequence)], i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            self.traffic.max_in_flight = max(self.traffic.max_in_flight, len(tasks))
            i += 1
        self.traffic.scheduled = i
        if tasks:
            _, late = await asyncio.wait(set(tasks), timeout=drain_s)
            self.traffic.unfinished = len(late)
            for task in late:
                task.cancel()
        return self.traffic

    async def one(self, kind: str, i: int) -> None:
        started = time.monotonic()
        tenant = {"cache": self.cache_tenant, "limited": self.limited_tenant}.get(kind) or self._tenant(i)
        try:
            answer = await self.kinds[kind](i, tenant)
        except Exception as exc:  # transport errors, timeouts, and any surprise in an answer: all unexpected
            answer = Answer(None, f"{type(exc).__name__}: {exc!r}"[:200])
        ledger = self.traffic.ledgers[tenant.id]
        if answer.job_id:
            ledger.job_answers.append(answer.job_id)
        elif answer.hit:
            ledger.hits += 1
        outcome, reason = classify(answer.status, rate_limited_tenant=tenant.rate_limited, problem=answer.problem,
                                   expected_status=answer.expected_status)
        if outcome == LIMITED:
            ledger.refused += 1
        self.traffic.outcomes.append(Outcome(kind, tenant.label, started - self.started,
                                             time.monotonic() - started, outcome, reason))

    # --- request kinds -------------------------------------------------------------------------------
    def _tenant(self, i: int) -> Tenant:
        return self.tenants[i % len(self.tenants)]

    def _body(self, prompt: str, **extra: Any) -> dict[str, Any]:
        return {"model": self.model, "max_tokens": MAX_TOKENS,
                "messages": [{"role": "user", "content": prompt}], **extra}

    def _unique(self, kind: str, i: int) -> str:
        return f"soak {self.run_id} {kind} request {i}"

    async def plain(self, i: int, tenant: Tenant) -> Answer:
        response = await self.client.post(f"{self.url}/v1/chat/completions", json=self._body(self._unique("plain", i)),
                                          headers={"X-API-Key": tenant.key})
        return completion_answer(response, "chat.completion")

    async def limited(self, i: int, tenant: Tenant) -> Answer:
        return await self.plain(i, tenant)

    async def stream(self, i: int, tenant: Tenant) -> Answer:
        body = self._body(self._unique("stream", i), stream=True, stream_options={"include_usage": True})
        return await self._openai_stream(tenant, body)

    async def _openai_stream(self, tenant: Tenant, body: dict[str, Any]) -> Answer:
        async with self.client.stream("POST", f"{self.url}/v1/chat/completions", json=body,
                                      headers={"X-API-Key": tenant.key}) as response:
            text = (await response.aread()).decode(errors="replace")
        if response.status_code != 200:
            return Answer(response.status_code, text[:160])
        answer = Answer(200, openai_stream_problem(sse_fields(text, "data")))
        return _with_job(answer, response)

    async def messages(self, i: int, tenant: Tenant) -> Answer:
        """Anthropic format; every other one streamed (its terminal event is `message_stop`)."""
        body = self._body(self._unique("messages", i), stream=(i // 20) % 2 == 1)
        headers = {"X-API-Key": tenant.key, "anthropic-version": "2023-06-01"}
        if not body["stream"]:
            response = await self.client.post(f"{self.url}/v1/messages", json=body, headers=headers)
            return completion_answer(response, "message")
        async with self.client.stream("POST", f"{self.url}/v1/messages", json=body, headers=headers) as response:
            text = (await response.aread()).decode(errors="replace")
        if response.status_code != 200:
            return Answer(response.status_code, text[:160])
        return _with_job(Answer(200, anthropic_stream_problem(sse_fields(text, "event"))), response)

    async def cache(self, i: int, tenant: Tenant) -> Answer:
        """A few prompts asked again and again by one tenant, plain and streamed: hits, and while a prompt's
        first answer is in flight, requests that join it."""
        prompt = f"soak {self.run_id} cached prompt {next(self.cache_calls) % CACHED_PROMPTS}"
        if (i // 20) % 3 == 2:
            body = self._body(prompt, stream=True, stream_options={"include_usage": True})
            answer = await self._openai_stream(tenant, body)
        else:
            response = await self.client.post(f"{self.url}/v1/chat/completions", json=self._body(prompt),
                                              headers={"X-API-Key": tenant.key})
            answer = completion_answer(response, "chat.completion")
        return answer

    async def job(self, i: int, tenant: Tenant) -> Answer:
        """Submit (202), then poll until the job ends, or (every third) follow its event stream to the end."""
        headers = {"X-API-Key": tenant.key}
        response = await self.client.post(f"{self.url}/api/v1/jobs", json=self._body(self._unique("job", i)),
                                          headers=headers)
        body = parse_json(response.text) or {}
        if response.status_code != 202:
            return Answer(response.status_code, response.text[:160], expected_status=202)
        job_id = str(body.get("id") or "")
        if not job_id.startswith("job_"):
            return Answer(202, f"no job id in {response.text[:120]}", expected_status=202)
        follow = self._follow_events if (i // 20) % 3 == 0 else self._poll
        problem = await follow(job_id, headers)
        return Answer(202, problem, job_id=job_id, expected_status=202)

    async def _poll(self, job_id: str, headers: dict[str, str]) -> str | None:
        deadline = time.monotonic() + JOB_DEADLINE_S
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_INTERVAL_S)
            response = await self.client.get(f"{self.url}/api/v1/jobs/{job_id}", headers=headers)
            if response.status_code != 200:
                return f"poll: HTTP {response.status_code} {response.text[:120]}"
            record = parse_json(response.text) or {}
            if record.get("status") in TERMINAL:
                return None if record["status"] == "succeeded" else f"job {record['status']}: {record.get('error')}"
        return f"job not finished after {JOB_DEADLINE_S:.0f}s"

    async def _follow_events(self, job_id: str, headers: dict[str, str]) -> str | None:
        async with self.client.stream("GET", f"{self.url}/api/v1/jobs/{job_id}/events", headers=headers) as response:
            text = (await response.aread()).decode(errors="replace")
        if response.status_code != 200:
            return f"events: HTTP {response.status_code} {text[:120]}"
        return job_events_problem(sse_fields(text, "event"))


def completion_answer(response: httpx.Response, object_type: str) -> Answer:
    """A non-streamed completion (OpenAI `chat.completion` or Anthropic `message`): status, the body's type,
    and its job id (header and body must agree) or its cache hit."""
    body = parse_json(response.text)
    if response.status_code != 200:
        return Answer(response.status_code, response.text[:160])
    if body is None or body.get("object", body.get("type")) != object_type:
        return Answer(200, f"not a {object_type}: {response.text[:120]}")
    answer = _with_job(Answer(200), response)
    body_job = job_id_from(str(body.get("id") or ""))
    if answer.job_id and body_job and body_job != answer.job_id:
        answer.problem = f"id {body.get('id')} but x-gateway-job-id {answer.job_id}"
    return answer


def _with_job(answer: Answer, response: httpx.Response) -> Answer:
    """Every admitted answer names its job, except cache hits; anything else is a problem."""
    answer.job_id = response.headers.get("x-gateway-job-id")
    answer.hit = answer.job_id is None and response.headers.get("x-cache") == "HIT"
    if answer.job_id is None and not answer.hit and answer.problem is None:
        answer.problem = "no x-gateway-job-id and not a cache hit"
    return answer


def summarise(traffic: Traffic, duration_s: float) -> dict[str, Any]:
    """Counts per kind and outcome, latency percentiles per kind, and the first unexpected reasons."""
    kinds: dict[str, Any] = {}
    for kind in MIX:
        mine = [o for o in traffic.outcomes if o.kind == kind]
        kinds[kind] = {"sent": len(mine), OK: sum(o.outcome == OK for o in mine),
                       LIMITED: sum(o.outcome == LIMITED for o in mine),
                       UNEXPECTED: sum(o.outcome == UNEXPECTED for o in mine),
                       "latency_ms": summarise_ms([o.latency_s for o in mine if o.outcome == OK])}
    unexpected = [o for o in traffic.outcomes if o.outcome == UNEXPECTED]
    return {"scheduled": traffic.scheduled, "finished": len(traffic.outcomes), "unfinished": traffic.unfinished,
            "offered_rps": traffic.scheduled / duration_s if duration_s else None,
            "max_lag_s": round(traffic.max_lag_s, 3), "late_starts": traffic.late_starts,
            "max_in_flight": traffic.max_in_flight, "unexpected": len(unexpected), "kinds": kinds,
            "unexpected_samples": [f"{o.kind} {o.tenant} at {o.started_s:.1f}s: {o.reason}"
                                   for o in unexpected[:MAX_REASON_SAMPLES]]}
