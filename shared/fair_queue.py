"""Fair scheduling of queued jobs, in Redis, in front of arq's FIFO queue.

arq's queue is one sorted set served oldest first: a tenant that submits 1,000 jobs makes every other tenant
wait behind all of them. So a new job does not enter arq's queue. The API's create transaction puts it in a
*fair queue* instead: one lexicographic sorted set per priority class, whose members `tenant|enqueue_ms|job`
group each tenant's jobs in submission order (one key per class, so depth is a ZCARD and a cancel is one
ZREM), and marks the tenant active in that class. Workers call `pick_jobs.lua` each poll: it takes as many
jobs as they have free slots, `interactive` before `batch`, and across the active tenants of a class by
stride scheduling (weighted fair queueing: each tenant carries a virtual "pass", advanced by 1/weight per
job; the lowest pass goes next), skipping tenants at their `max_running` cap. Each picked job is moved into
arq's queue already claimed (in-progress key with the lease, score pushed ahead, as arq's start_jobs does), so
arq runs it exactly as before: retries, aborts and results are arq's.

Aging: a batch job that waited longer than BATCH_MAX_WAIT_S is moved into the interactive class, where it
takes its tenant's turn among interactive work; batch therefore always progresses, and a flood of old batch
jobs still cannot starve another tenant's interactive requests (they share by round robin).

Running jobs are counted per tenant in a sorted set of job ids scored by lease expiry (`run:<tenant>`):
added at pick, renewed with the job's lease (worker/lease.py), removed at the job's end in arq's own finish
transaction, and pruned by score, so a dead worker's jobs stop counting within one lease.
"""

import math
import time
from dataclasses import dataclass, field
from enum import StrEnum

from arq.constants import in_progress_key_prefix, job_key_prefix
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.keys import ARQ_ABORT_KEY, PREFIX, job_events_key, job_key
from shared.scripts import LuaScript, lua_source

__all__ = [
    "DRAIN_WINDOW_S",
    "PICK",
    "Claim",
    "FairQueue",
    "PickResult",
    "Picked",
    "Priority",
    "TenantShare",
    "parse_priority",
]

PICK = LuaScript(lua_source("pick_jobs.lua"))
DRAIN_WINDOW_S = 60
DRAIN_BUCKET_TTL_S = 2 * DRAIN_WINDOW_S
RETRY_AFTER_NO_DRAIN_S = 60
RETRY_AFTER_MAX_S = 600


class Priority(StrEnum):
    INTERACTIVE = "interactive"
    BATCH = "batch"


def parse_priority(raw: str | None, default: Priority) -> Priority | None:
    """The priority an `X-Priority` header asks for; None when the value is not a priority."""
    if raw is None or not raw.strip():
        return default
    try:
        return Priority(raw.strip().lower())
    except ValueError:
        return None


@dataclass(frozen=True)
class TenantShare:
    """A tenant's scheduling limits: its weight among active tenants, and its cap on running jobs (0: none)."""

    weight: int = 1
    max_running: int = 0

    def encoded(self) -> str:
        return f"{max(1, self.weight)} {max(0, self.max_running)}"


@dataclass(frozen=True)
class Picked:
    job_id: str
    score: int  # enqueue time (ms), arq's queue score of the job before it started
    tenant_id: str
    # The class it was picked from, or "due": an interactive job already in arq's queue (a retry; a due batch
    # job is "batch", so it counts against the worker's batch slots).
    source: str = "interactive"
    # With a claim (FairQueue.pick_and_claim): "run" (claimed: the record is running this attempt), or why it
    # must end without running: "expired" (arq's payload is gone), "aborted" (a cancel was asked before it
    # started), "exhausted" (its attempts are used up).
    state: str = "run"
    payload: bytes | None = None  # arq's job payload
    attempt: int = 0
    record: dict[str, str] | None = None  # the job record's fields as they were before the claim


@dataclass(frozen=True)
class Claim:
    """What a pick needs to claim the jobs it starts for their attempt (pick_jobs.lua): the worker's id, arq's
    max tries, and the job event stream's maxlen and TTL."""

    worker_id: str
    max_tries: int
    events_maxlen: int
    ttl_s: int


@dataclass(frozen=True)
class PickResult:
    picked: list[Picked]
    left: bool  # jobs were left waiting (for want of a slot, or at their tenant's cap)
    aborts: list[str] = field(default_factory=list)  # arq's abort set, read in the same call when claiming


class FairQueue:
    """The fair queue of one arq queue: key names, the API's enqueue and cancel, depth and drain rate."""

    def __init__(self, queue_name: str) -> None:
        self.queue_name = queue_name
        base = f"{PREFIX}:fq:{queue_name}"
        self.ready = {p: f"{base}:ready:{p.value}" for p in Priority}
        self.active = {p: f"{base}:active:{p.value}" for p in Priority}
        self.virtual_time = f"{base}:vt"
        self.batch_heads = f"{base}:heads:batch"
        self.shares = f"{base}:shares"
        self.run_prefix = f"{base}:run:"
        self.drained_prefix = f"{base}:drained:"

    def running_key(self, tenant_id: str) -> str:
        """Sorted set of the tenant's running job ids, scored by when their lease expires (ms)."""
        return self.run_prefix + tenant_id

    def drained_key(self, second: int) -> str:
        """Jobs that left the queue (ended) in one wall-clock second: the drain rate's buckets."""
        return f"{self.drained_prefix}{second}"

    @staticmethod
    def entry(tenant_id: str, created_at: float, job_id: str) -> str:
        """A job's member in its class's ready set: tenant, enqueue time in microseconds (a tenant's jobs in
        submission order), job id. Derived from the record, so a cancel can find it."""
        if "|" in tenant_id:
            raise ValueError("tenant ids must not contain '|'")
        return f"{tenant_id}|{int(created_at * 1_000_000):016d}|{job_id}"

    def queue_on(self, pipe: Pipeline, *, job_id: str, tenant_id: str, created_at: float, priority: Priority,
                 share: TenantShare) -> None:
        """Add the job to its tenant's FIFO in its class, on the caller's transaction."""
        member = self.entry(tenant_id, created_at, job_id)
        pipe.zadd(self.ready[priority], {member: 0})
        pipe.zadd(self.active[priority], {tenant_id: 0}, nx=True)  # 0: the picker lifts it to the virtual time
        if priority is Priority.BATCH:
            pipe.zadd(self.batch_heads, {tenant_id: int(created_at * 1000)}, nx=True)
        pipe.hset(self.shares, tenant_id, share.encoded())

    def unqueue_on(self, pipe: Pipeline, *, job_id: str, tenant_id: str, created_at: float) -> None:
        """Take a cancelled job out of the fair queue (whichever class it is in) and drop arq's payload."""
        member = self.entry(tenant_id, created_at, job_id)
        for ready in self.ready.values():
            pipe.zrem(ready, member)
        pipe.delete(job_key_prefix + job_id)

    def scores_on(self, pipe: Pipeline, *, job_id: str, tenant_id: str, created_at: float) -> None:
        """Queue on the caller's transaction one ZSCORE per class: a score (not None) where the job waits."""
        member = self.entry(tenant_id, created_at, job_id)
        for ready in self.ready.values():
            pipe.zscore(ready, member)

    async def depth(self, redis: Redis) -> int:
        """Jobs waiting in the fair queue, both classes."""
        async with redis.pipeline(transaction=False) as pipe:
            for ready in self.ready.values():
                pipe.zcard(ready)
            counts = await pipe.execute()
        return sum(int(count) for count in counts)

    async def retry_after_s(self, redis: Redis, limit: int) -> tuple[int, float]:
        """How long until the queue is back under `limit` at the drain rate of the last minute: the seconds
        to wait (1..RETRY_AFTER_MAX_S; RETRY_AFTER_NO_DRAIN_S when nothing drained), and the rate (jobs/s)."""
        now = int(time.time())
        async with redis.pipeline(transaction=False) as pipe:
            for ready in self.ready.values():
                pipe.zcard(ready)
            pipe.mget([self.drained_key(now - i) for i in range(1, DRAIN_WINDOW_S + 1)])
            *counts, buckets = await pipe.execute()
        rate = sum(int(b) for b in buckets if b is not None) / DRAIN_WINDOW_S
        if rate <= 0:
            return RETRY_AFTER_NO_DRAIN_S, 0.0
        excess = sum(int(c) for c in counts) - limit + 1
        return min(RETRY_AFTER_MAX_S, max(1, math.ceil(excess / rate))), rate

    def job_ended_on(self, pipe: Pipeline, *, job_id: str, tenant_id: str | None, counted: bool) -> None:
        """On the transaction that ends (or hands back) a job: it no longer runs; `counted` adds it to the
        drain rate (a job that left the queue for good)."""
        if tenant_id:
            pipe.zrem(self.running_key(tenant_id), job_id)
        if counted:
            key = self.drained_key(int(time.time()))
            pipe.incr(key)
            pipe.expire(key, DRAIN_BUCKET_TTL_S)

    async def pick(self, redis: Redis, *, free: int, lease_ms: int, batch_max_wait_ms: int,
                   due_read_limit: int, batch_free: int | None = None) -> tuple[list[Picked], bool]:
        """Start up to `free` jobs for one worker in one round trip: jobs due in arq's queue first (retries,
        jobs whose worker died), then the fair queue, with at most `batch_free` batch jobs (default: `free`).
        Also says whether jobs were left waiting. The jobs are not claimed for their attempt (see
        `pick_and_claim`)."""
        result = await self._pick(redis, None, free=free, lease_ms=lease_ms, batch_max_wait_ms=batch_max_wait_ms,
                                  due_read_limit=due_read_limit, batch_free=batch_free)
        return result.picked, result.left

    async def pick_and_claim(self, redis: Redis, claim: Claim, *, free: int, lease_ms: int,
                             batch_max_wait_ms: int, due_read_limit: int, batch_free: int | None = None,
                             read_aborts: bool = True) -> PickResult:
        """`pick`, and in the same script each started job claimed for its attempt (arq's run_job read and the
        record's claim), and (`read_aborts`) arq's abort set read: a worker's poll in one round trip."""
        return await self._pick(redis, claim, free=free, lease_ms=lease_ms, batch_max_wait_ms=batch_max_wait_ms,
                                due_read_limit=due_read_limit, batch_free=batch_free, read_aborts=read_aborts)

    async def _pick(self, redis: Redis, claim: Claim | None, *, free: int, lease_ms: int, batch_max_wait_ms: int,
                    due_read_limit: int, batch_free: int | None, read_aborts: bool = False) -> PickResult:
        keys = [self.queue_name, self.ready[Priority.INTERACTIVE], self.ready[Priority.BATCH],
                self.active[Priority.INTERACTIVE], self.active[Priority.BATCH], self.virtual_time,
                self.batch_heads, self.shares, ARQ_ABORT_KEY]
        args: list[object] = [int(time.time() * 1000), lease_ms, free, batch_max_wait_ms, in_progress_key_prefix,
                              self.run_prefix, job_key(""), job_key_prefix, due_read_limit,
                              free if batch_free is None else max(0, batch_free), 1 if claim else 0,
                              job_events_key(""), claim.worker_id if claim else "", claim.max_tries if claim else 0,
                              claim.events_maxlen if claim else 0, claim.ttl_s if claim else 0, str(time.time()),
                              1 if read_aborts else 0]
        reply = await PICK.run(redis, keys, args)
        if not isinstance(reply, list) or len(reply) != 3:
            raise RuntimeError(f"pick_jobs.lua answered {reply!r}")
        jobs, left, aborts = reply
        return PickResult([_picked(job) for job in jobs], int(left) > 0, [_text(job_id) for job_id in aborts])


def _picked(job: list[object]) -> Picked:
    job_id, score, tenant, source = (_text(part) for part in job[:4])
    picked = Picked(job_id, int(float(score)), tenant, source)
    if len(job) == 4:
        return picked
    state, payload, attempt, flat = job[4:8]
    fields = flat if isinstance(flat, list) else []
    record = {_text(fields[i]): _text(fields[i + 1]) for i in range(0, len(fields), 2)}
    return Picked(job_id, picked.score, tenant, source, state=_text(state),
                  payload=payload if isinstance(payload, bytes) and payload else None,
                  attempt=int(_text(attempt)), record=record)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
