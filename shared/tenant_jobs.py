"""A tenant's listing index of jobs (a sorted set of job ids by submission time) as a job's creation writes it.
The index outlives its newest record (whose TTL restarts when the job ends): its TTL is twice the records', and
members older than that are pruned. Members whose record expired sooner are pruned by listings
(api/routes/job_list.py).

The prune and the TTL renewal need not ride on every creation (issue 17): each process does them for a tenant
at most once every `refresh_s`, a hundredth of the records' TTL (a minute at most), so the index still
outlives its newest record by all but that hundredth."""

import time

from redis.asyncio.client import Pipeline

from shared.keys import tenant_jobs_key

__all__ = ["TenantJobsIndex"]

MAX_REFRESH_S = 60.0
MAX_TENANTS = 10_000


class TenantJobsIndex:
    """Adds created jobs to their tenant's index, on the creation's own transaction."""

    def __init__(self, ttl_s: int) -> None:
        self._ttl_s = ttl_s
        self._refresh_s = min(MAX_REFRESH_S, ttl_s / 100)
        self._due: dict[str, float] = {}  # tenant -> monotonic time of its next prune and TTL renewal

    def add_on(self, pipe: Pipeline, tenant_id: str, job_id: str, created_at: float) -> None:
        key = tenant_jobs_key(tenant_id)
        pipe.zadd(key, {job_id: created_at})
        now = time.monotonic()
        if now < self._due.get(tenant_id, 0.0):
            return
        pipe.zremrangebyscore(key, "-inf", created_at - 2 * self._ttl_s)
        pipe.expire(key, 2 * self._ttl_s)
        if len(self._due) >= MAX_TENANTS and tenant_id not in self._due:
            self._due.clear()  # bounded: every tenant is then pruned at its next creation
        self._due[tenant_id] = now + self._refresh_s
