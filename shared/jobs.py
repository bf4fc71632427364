"""Job records in Redis: who owns a job, its request, status and outcome. The API creates and cancels them;
the worker moves them through running to a terminal state, committing the terminal stream event and the
usage record in the same transaction so none of the three can exist without the others."""

import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.append_batch import AppendBatch
from shared.cache import CachedAnswer, Chunk
from shared.endpoint import Endpoint
from shared.endpoint_requests import JobRequest, endpoint_of
from shared.errors import GatewayError
from shared.fair_queue import FairQueue, Priority
from shared.finish_batch import FinishBatch
from shared.keys import (
    ARQ_ABORT_KEY,
    USAGE_STREAM,
    WEBHOOK_STREAM,
    cache_entry_key,
    cache_inflight_key,
    job_events_key,
    job_key,
)
from shared.limits import SETTLE_ARGS, SETTLE_KEYS, Admission, queue_settlement, settlement_call
from shared.models import Completion, JobStatus, WireFormat
from shared.queue_end import QUEUE_END_KEYS, QueueEnd
from shared.redis import decode_hash
from shared.scripts import LuaScript, lua_source
from shared.streams import EventKind, add_event, encode_data
from shared.tenant_jobs import TenantJobsIndex

__all__ = ["CancelOutcome", "JobOptions", "JobOutcome", "JobRecord", "JobStore", "claimed", "new_record", "usage_row"]

USAGE_STREAM_MAXLEN = 1_000_000
CLAIM = LuaScript(lua_source("claim.lua"))


class JobRecord(BaseModel):
    id: str
    tenant_id: str
    status: JobStatus
    wire_format: WireFormat
    request: JobRequest  # tagged by kind; a record from before job kinds holds a chat request
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempt: int = 0
    worker_id: str | None = None
    provider: str | None = None
    model: str | None = None
    fallback_used: bool = False
    cost_usd: float | None = None
    result: Completion | None = None
    error: dict[str, object] | None = None
    cache_digest: str | None = None
    cache_ttl_s: int = 0
    cache_leader: bool = False
    admission: Admission | None = None
    followers: int = 0
    request_id: str | None = None
    callback_url: str | None = None
    priority: Priority = Priority.INTERACTIVE  # records from before priorities were all served first-come
    drop_params: list[str] = []
    key_id: str | None = None
    end_user: str | None = None
    tags: dict[str, str] = {}
    content_days: int = 0

    @property
    def endpoint(self) -> Endpoint:
        """The kind of provider call this job makes (its request's tag: one source of truth)."""
        return endpoint_of(self.request)


class JobOptions(BaseModel):
    """What the API decided at submission that the job's end must honour: the cache entry to write (and
    the in-flight marker to clear) and the limits admission to settle."""

    cache_digest: str | None = None
    cache_ttl_s: int = 0
    cache_leader: bool = False
    admission: Admission | None = None
    request_id: str | None = None
    # Webhook: POSTed the final job when the job ends (its end commits the delivery, see finish.lua).
    callback_url: str | None = None
    # Scheduling class (shared/fair_queue.py): interactive jobs start before batch ones.
    priority: Priority = Priority.INTERACTIVE
    # Parameters the client allows a target to drop when it cannot honour them (`x-gateway-drop-params`);
    # the worker adds the route's `drop_params` (shared/wire/capabilities.py says what a target honours).
    drop_params: list[str] = []
    # Attribution (shared/attribution.py): copied onto the usage row, so spend is reported by key, user, tag.
    key_id: str | None = None
    end_user: str | None = None
    tags: dict[str, str] = {}
    # The tenant's `log_content_days`: keep the prompt and answer text this many days (0: never stored).
    content_days: int = 0


class JobOutcome(BaseModel):
    """What the worker hands `JobStore.finish`: the final status and everything billed for it."""

    status: JobStatus
    completion: Completion | None = None
    error: dict[str, object] | None = None
    cost_usd: float = 0.0
    fallback_used: bool = False
    provider: str | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    provider_ms: int = 0
    chunks: list[Chunk] = []  # the streamed output, as the cache keeps it (shared/cache.py)
    dropped_params: list[str] = []
    """Parameters the serving target left out (allowed to): the usage record's `dropped_params`. Taken from
    `completion.dropped_params` when this is empty and there is a completion."""


class CancelOutcome(BaseModel):
    status: JobStatus
    changed: bool


class JobStore:
    def __init__(self, redis: Redis, *, ttl_s: int, events_maxlen: int, queue_name: str | None = None) -> None:
        """With `queue_name`, cancelling a queued job also takes it out of that queue's fair queue."""
        self._redis = redis
        self._ttl_s = ttl_s
        self._events_maxlen = events_maxlen
        self._fair = FairQueue(queue_name) if queue_name else None
        self._finishes = FinishBatch(redis)  # ends in the same event-loop tick share one script call
        self._appends = AppendBatch(redis, events_maxlen)  # and output appends one pipeline
        self._index = TenantJobsIndex(ttl_s)

    async def create(self, job_id: str, tenant_id: str, request: JobRequest, wire: WireFormat,
                     options: JobOptions | None = None, *,
                     enqueue: Callable[[Pipeline, "JobRecord"], None] | None = None) -> JobRecord:
        """Write the record; `enqueue` adds the queue entry to the same transaction (all or nothing)."""
        record = new_record(job_id, tenant_id, request, wire, options)
        async with self._redis.pipeline(transaction=True) as pipe:
            self.write_on(pipe, record)
            if enqueue is not None:
                enqueue(pipe, record)
            await pipe.execute()
        return record

    def write_on(self, pipe: Pipeline, record: "JobRecord") -> None:
        """Queue the record's writes on the caller's pipeline: the record with its TTL, and its entry in the
        tenant's listing index. Admission runs them in its own script (shared/pending_writes.py)."""
        pipe.hset(job_key(record.id), mapping=_to_hash(record))
        pipe.expire(job_key(record.id), self._ttl_s)
        self._index.add_on(pipe, record.tenant_id, record.id, record.created_at)

    async def get(self, job_id: str) -> JobRecord | None:
        # redis-py's asyncio client shares the sync client's annotations (`Awaitable[dict] | dict`).
        raw = await cast("Awaitable[dict[bytes, bytes]]", self._redis.hgetall(job_key(job_id)))
        return _from_hash(decode_hash(raw)) if raw else None

    async def mark_running(self, job_id: str, attempt: int, worker_id: str) -> JobRecord | None:
        """Claim the job for an attempt in one atomic script; None when it is gone or already ended (e.g.
        cancelled while queued). A GatewayWorker claims in its pick script instead (`claimed`)."""
        kind = EventKind.RESET if attempt > 1 else EventKind.START
        before = await CLAIM.run(self._redis, [job_key(job_id), job_events_key(job_id)], [
            attempt, time.time(), worker_id, kind.value, encode_data({"attempt": attempt}),
            self._events_maxlen, self._ttl_s,
        ])
        if not isinstance(before, list) or not before:
            return None
        return claimed(decode_hash(dict(zip(before[::2], before[1::2], strict=True))), attempt, worker_id)

    async def finish(self, record: JobRecord, outcome: JobOutcome, usage_row: dict[str, object],
                     queue_end: QueueEnd | None = None) -> bool:
        """Commit the terminal state, the terminal event, the usage record, the limits settlement and the
        cache entry at once; False if the job had already ended (a duplicate delivery), in which case
        nothing is written and nothing billed twice. With `queue_end`, arq's end of the job commits in the same
        script, in either case."""
        keys, args = _finish_call(record, outcome, usage_row, ttl_s=self._ttl_s, events_maxlen=self._events_maxlen)
        if queue_end is None:
            keys += [keys[0]] * QUEUE_END_KEYS
            args += [0, record.id, 0]
        else:
            keys += queue_end.keys(keys[0])
            args += [1, record.id, queue_end.drained_ttl_s]
        committed = bool(await self._finishes.run(keys, args))
        if queue_end is not None:
            queue_end.committed = True
        return committed

    async def append_output(self, job_id: str, kind: EventKind, data: dict[str, object], *,
                            ttl_s: int | None) -> None:
        """Append an output entry to a running job's stream, in one pipeline with the other appends of this
        event-loop tick (shared/append_batch.py); with `ttl_s`, renew the stream's TTL too."""
        await self._appends.append(job_id, kind, data, ttl_s=ttl_s)

    async def fail(self, job_id: str, error: GatewayError) -> bool:
        """End a job that died outside our code (arq expired it or gave up on retries); False if it had ended."""
        record = await self.get(job_id)
        if record is None:
            return False
        outcome = JobOutcome(status=JobStatus.FAILED, error=error.to_dict())
        latency_ms = int((time.time() - record.created_at) * 1000)
        return await self.finish(record, outcome, usage_row(record, outcome, latency_ms))

    async def request_cancel(self, job_id: str, *, unless_shared: bool = False) -> CancelOutcome:
        """Cancel a queued job at once; ask arq to abort a running one (its worker writes the terminal event).
        With `unless_shared`, a job that other requests are waiting on (cache followers) is left to run."""
        key = job_key(job_id)

        async def cancel(pipe: Pipeline) -> CancelOutcome:
            # Immediate while WATCHing; redis-py's asyncio client shares the sync client's annotations.
            raw = await cast("Awaitable[dict[bytes, bytes]]", pipe.hgetall(key))
            record = _from_hash(decode_hash(raw)) if raw else None
            status = record.status if record else JobStatus.CANCELLED
            if record is None or status.is_terminal or (unless_shared and record.followers > 0):
                return CancelOutcome(status=status, changed=False)
            pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves Pipeline.multi unannotated
            pipe.hset(key, "cancel_requested", "1")
            pipe.zadd(ARQ_ABORT_KEY, {job_id: int(time.time() * 1000)})
            if status is not JobStatus.QUEUED:
                return CancelOutcome(status=status, changed=True)
            pipe.hset(key, mapping={"status": JobStatus.CANCELLED.value, "finished_at": str(time.time())})
            add_event(pipe, job_id, EventKind.CANCELLED, {"reason": "cancelled by client"},
                      maxlen=self._events_maxlen, ttl_s=self._ttl_s)
            _queue_job_end(pipe, record, JobOutcome(status=JobStatus.CANCELLED))
            if self._fair is not None:  # never to be picked: out of the fair queue (depth, backpressure)
                self._fair.unqueue_on(pipe, job_id=job_id, tenant_id=record.tenant_id, created_at=record.created_at)
            if record.callback_url:
                pipe.xadd(WEBHOOK_STREAM, {"job_id": job_id, "url": record.callback_url})
            return CancelOutcome(status=JobStatus.CANCELLED, changed=True)

        outcome: CancelOutcome = await self._redis.transaction(cancel, key, value_from_callable=True)
        return outcome

    async def add_follower(self, job_id: str) -> None:
        """Another request waits on this job's answer (an identical concurrent cache miss)."""
        # redis-py's asyncio client shares the sync client's annotations (`Awaitable[int] | int`).
        await cast("Awaitable[int]", self._redis.hincrby(job_key(job_id), "followers", 1))

    async def cancel_requested(self, job_id: str) -> bool:
        # redis-py's asyncio client shares the sync client's annotations (`Awaitable[bytes | None] | ...`).
        flag = await cast("Awaitable[bytes | None]", self._redis.hget(job_key(job_id), "cancel_requested"))
        return flag == b"1"


def claimed(fields: dict[str, str], attempt: int, worker_id: str) -> JobRecord:
    """The record a claim returned (its fields before the claim), as it is now: running this attempt."""
    record = _from_hash(fields)
    return record.model_copy(update={"status": JobStatus.RUNNING, "attempt": attempt, "worker_id": worker_id})


def new_record(job_id: str, tenant_id: str, request: JobRequest, wire: WireFormat,
               options: JobOptions | None = None) -> JobRecord:
    """A queued job's record, created now."""
    return JobRecord(id=job_id, tenant_id=tenant_id, status=JobStatus.QUEUED, wire_format=wire, request=request,
                     created_at=time.time(), **(options or JobOptions()).model_dump())


def _to_hash(record: JobRecord) -> dict[str, str]:
    return {
        "id": record.id, "tenant_id": record.tenant_id, "status": record.status.value,
        "wire_format": record.wire_format.value, "request": record.request.model_dump_json(exclude_none=True),
        "created_at": str(record.created_at), "attempt": str(record.attempt),
        "cache_digest": record.cache_digest or "", "cache_ttl_s": str(record.cache_ttl_s),
        "cache_leader": "1" if record.cache_leader else "0", "request_id": record.request_id or "",
        "admission": record.admission.model_dump_json() if record.admission else "",
        "callback_url": record.callback_url or "", "priority": record.priority.value,
        "drop_params": ",".join(record.drop_params), "key_id": record.key_id or "",
        "end_user": record.end_user or "", "tags": json.dumps(record.tags) if record.tags else "",
        "content_days": str(record.content_days),
    }


def _from_hash(fields: dict[str, str]) -> JobRecord:
    data: dict[str, Any] = {k: v for k, v in fields.items() if k != "cancel_requested"}
    for name in ("request", "result", "error", "admission", "tags"):
        if data.get(name):
            data[name] = json.loads(data[name])
        else:
            data.pop(name, None)
    for name in ("cache_digest", "request_id", "callback_url", "key_id", "end_user"):
        data[name] = data.get(name) or None  # stored as "" when unset
    for name in ("fallback_used", "cache_leader"):
        data[name] = data.get(name) == "1"
    data["drop_params"] = [name for name in data.get("drop_params", "").split(",") if name]
    return JobRecord.model_validate(data)


def _finish_call(record: JobRecord, outcome: JobOutcome, usage_row: dict[str, object], *, ttl_s: int,
                 events_maxlen: int) -> tuple[list[str], list[object]]:
    """Keys and arguments of finish.lua. Unused key slots carry the job's own key: Lua scripts must name
    every key they could touch, and these are never touched when their flag is off."""
    key = job_key(record.id)
    kind, data = _terminal_event(outcome)
    settle_keys: list[str] = [key] * SETTLE_KEYS
    settle_args: list[str | int] = [""] * SETTLE_ARGS
    if record.admission is not None:
        # Spent in the periods of the usage record's time, as a seed from the database would count it.
        settle_keys, settle_args = settlement_call(
            record.admission, record.id, tokens_used=outcome.prompt_tokens + outcome.completion_tokens,
            cost_usd=outcome.cost_usd, now=_row_time(usage_row))
    digest = record.cache_digest
    answer = _cached_answer(record, outcome)
    fields = _outcome_fields(outcome)
    keys = [key, job_events_key(record.id), USAGE_STREAM, *settle_keys,
            cache_inflight_key(digest) if digest else key, cache_entry_key(digest) if digest else key,
            WEBHOOK_STREAM]
    args: list[object] = [
        ttl_s, events_maxlen, kind.value, encode_data(data), USAGE_STREAM_MAXLEN, json.dumps(usage_row),
        1 if record.admission is not None else 0, *settle_args,
        1 if digest and record.cache_leader else 0, record.cache_ttl_s if answer else 0, answer or "",
        len(fields), *(item for pair in fields.items() for item in pair),
    ]
    return keys, args


def _row_time(usage_row: dict[str, object]) -> datetime:
    created = usage_row.get("created_at")
    return datetime.fromtimestamp(created, UTC) if isinstance(created, int | float) else datetime.now(UTC)


def _cached_answer(record: JobRecord, outcome: JobOutcome) -> str | None:
    """The answer to store in the cache: a complete, successful one, when the request asked for caching."""
    if record.cache_digest is None or record.cache_ttl_s <= 0:
        return None
    if outcome.status is not JobStatus.SUCCEEDED or outcome.completion is None:
        return None
    return CachedAnswer(completion=outcome.completion, chunks=outcome.chunks or [outcome.completion.content],
                        cost_usd=outcome.cost_usd).model_dump_json()


def _queue_job_end(pipe: Any, record: JobRecord, outcome: JobOutcome) -> None:
    """Side effects of a job's end, in its terminal transaction: settle limits, clear the in-flight marker,
    and cache a complete, successful answer."""
    if record.admission is not None:
        tokens = outcome.prompt_tokens + outcome.completion_tokens
        queue_settlement(pipe, record.admission, record.id, tokens_used=tokens, cost_usd=outcome.cost_usd,
                         now=datetime.now(UTC))
    if record.cache_digest is None:
        return
    if record.cache_leader:
        pipe.delete(cache_inflight_key(record.cache_digest))
    answer = _cached_answer(record, outcome)
    if answer is not None:
        pipe.set(cache_entry_key(record.cache_digest), answer, ex=record.cache_ttl_s)


def _outcome_fields(outcome: JobOutcome) -> dict[str, str]:
    fields = {"status": outcome.status.value, "finished_at": str(time.time()),
              "fallback_used": "1" if outcome.fallback_used else "0", "cost_usd": str(outcome.cost_usd)}
    fields.update({name: value for name, value in (("provider", outcome.provider), ("model", outcome.model)) if value})
    if outcome.completion is not None:
        fields["result"] = outcome.completion.model_dump_json()
    if outcome.error is not None:
        fields["error"] = json.dumps(outcome.error)
    return fields


def _terminal_event(outcome: JobOutcome) -> tuple[EventKind, dict[str, object]]:
    if outcome.status is JobStatus.SUCCEEDED and outcome.completion is not None:
        return EventKind.DONE, {"completion": outcome.completion.model_dump(mode="json"),
                                "cost_usd": outcome.cost_usd, "fallback_used": outcome.fallback_used,
                                "provider_ms": outcome.provider_ms}
    if outcome.status is JobStatus.CANCELLED:
        return EventKind.CANCELLED, {"reason": "cancelled"}
    return EventKind.ERROR, {"error": outcome.error or GatewayError("job failed").to_dict()}


def usage_row(record: JobRecord, outcome: JobOutcome, latency_ms: int) -> dict[str, object]:
    """The usage record of one job, as the usage writer inserts it (one row per job id); with the request and
    answer text when the tenant opted in (`content_days`), which the writer stores apart (request_content)."""
    now = time.time()
    row: dict[str, object] = {
        "request_id": record.id, "tenant_id": record.tenant_id, "public_model": record.request.model,
        "provider": outcome.provider or "", "model": outcome.model or "",
        "prompt_tokens": outcome.prompt_tokens, "completion_tokens": outcome.completion_tokens,
        "cost_usd": outcome.cost_usd, "latency_ms": latency_ms, "status": outcome.status.value,
        "error_code": str(outcome.error.get("code")) if outcome.error else None,
        "fallback_used": outcome.fallback_used, "cache_hit": False, "saved_cost_usd": 0.0,
        "cached_prompt_tokens": outcome.cached_prompt_tokens, "created_at": now,
        "dropped_params": ",".join(_dropped(outcome)), "endpoint": record.endpoint.value,
        "key_id": record.key_id, "end_user": record.end_user, "tags": record.tags,
    }
    if record.content_days > 0:
        row["content"] = {"request": record.request.model_dump(mode="json", exclude_none=True),
                          "answer": outcome.completion.content if outcome.completion else "",
                          "expires_at": now + record.content_days * 86_400}
    return row


def _dropped(outcome: JobOutcome) -> list[str]:
    if outcome.dropped_params or outcome.completion is None:
        return outcome.dropped_params
    return outcome.completion.dropped_params
