"""The tenant's listing index of jobs (shared/tenant_jobs.py): every creation adds its job, the prune of
members older than twice the records' TTL and the TTL renewal run once per tenant per refresh interval."""

import fakeredis
import pytest

from shared import tenant_jobs
from shared.keys import tenant_jobs_key
from shared.tenant_jobs import TenantJobsIndex

TTL_S = 1000


async def _add(redis: fakeredis.FakeAsyncRedis, index: TenantJobsIndex, tenant_id: str, job_id: str,
               created_at: float) -> int:
    """Add one job; returns how many commands the transaction carried."""
    async with redis.pipeline(transaction=True) as pipe:
        index.add_on(pipe, tenant_id, job_id, created_at)
        sent = len(pipe.command_stack)
        await pipe.execute()
    return sent


async def test_prune_and_ttl_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    clock = [100.0]
    monkeypatch.setattr(tenant_jobs.time, "monotonic", lambda: clock[0])
    index = TenantJobsIndex(TTL_S)
    key = tenant_jobs_key("t1")
    await redis.zadd(key, {"ancient": 1.0})
    assert await _add(redis, index, "t1", "j1", 5000.0) == 3  # ZADD, ZREMRANGEBYSCORE, EXPIRE
    assert [m.decode() for m in await redis.zrange(key, 0, -1)] == ["j1"]
    assert 0 < await redis.ttl(key) <= 2 * TTL_S
    await redis.zadd(key, {"ancient": 1.0})
    assert await _add(redis, index, "t1", "j2", 5001.0) == 1  # within the interval: the ZADD only
    assert await _add(redis, index, "t2", "k1", 5001.0) == 3  # another tenant has its own interval
    clock[0] += TTL_S / 100
    assert await _add(redis, index, "t1", "j3", 5002.0) == 3
    assert [m.decode() for m in await redis.zrange(key, 0, -1)] == ["j1", "j2", "j3"]


def test_refresh_interval_is_a_hundredth_of_the_ttl_at_most_a_minute() -> None:
    assert TenantJobsIndex(86_400)._refresh_s == 60.0
    assert TenantJobsIndex(60)._refresh_s == 0.6
