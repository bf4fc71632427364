"""Each API process's copy of the auth snapshots (shared/auth_local.py): used only while its invalidation
subscription is live, dropped at once by the process making a change and by every other process when the
invalidation's message comes, never stored by a read that raced an invalidation, and at most a second old."""

import asyncio
from collections.abc import AsyncIterator, Callable

import fakeredis
import pytest

from shared.auth_local import LocalSnapshots
from shared.keys import auth_cache_key
from shared.tenant_cache import TenantCache, TenantSnapshot

ACME = TenantSnapshot(id="t_acme", name="acme")
OTHER = TenantSnapshot(id="t_other", name="other")


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


@pytest.fixture
async def processes() -> AsyncIterator[tuple[fakeredis.FakeAsyncRedis, TenantCache, TenantCache]]:
    """Two API processes' caches of one shard, both listening."""
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    first = TenantCache(redis, ttl_s=60, local=LocalSnapshots())
    second = TenantCache(redis, ttl_s=60, local=LocalSnapshots())
    tasks = [asyncio.create_task(cache.local.listen(redis)) for cache in (first, second) if cache.local]
    await _until(lambda: all(cache.local is not None and cache.local.live for cache in (first, second)))
    yield redis, first, second
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_read_snapshot_is_served_from_the_process_copy(
        processes: tuple[fakeredis.FakeAsyncRedis, TenantCache, TenantCache]) -> None:
    redis, first, _ = processes
    await first.put("h1", ACME)
    assert await first.get("h1") == ACME
    await redis.delete(auth_cache_key("h1"))  # not an invalidation: only shows the copy answers
    assert await first.get("h1") == ACME


async def test_an_invalidation_drops_the_copies_of_every_process(
        processes: tuple[fakeredis.FakeAsyncRedis, TenantCache, TenantCache]) -> None:
    _, first, second = processes
    await first.put("h1", ACME)
    await first.put("h2", OTHER)
    assert await first.get("h1") == ACME and await second.get("h1") == ACME and await second.get("h2") == OTHER
    await first.invalidate_tenant(ACME.id)
    assert await first.get("h1") is None  # the process making the change: at once
    assert second.local is not None
    await _until(lambda: second.local is not None and second.local.get("h1") is None)
    assert await second.get("h1") is None
    assert second.local.get("h2") == OTHER  # another tenant's copy stays


async def test_no_copy_is_used_without_a_live_subscription() -> None:
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    cache = TenantCache(redis, ttl_s=60, local=LocalSnapshots())  # nobody listens
    await cache.put("h1", ACME)
    assert await cache.get("h1") == ACME
    await redis.delete(auth_cache_key("h1"))
    assert await cache.get("h1") is None


def test_a_read_that_raced_an_invalidation_is_not_stored() -> None:
    local = LocalSnapshots()
    local.reset(live=True)
    epoch = local.epoch
    local.drop_tenant(ACME.id)  # an invalidation while the read was in flight
    assert local.put("h1", ACME, epoch) is False
    assert local.put("h1", ACME, local.epoch) is True and local.get("h1") == ACME


async def test_a_copy_lives_at_most_its_ttl_and_the_copy_is_bounded() -> None:
    local = LocalSnapshots(ttl_s=0.05, max_entries=2)
    local.reset(live=True)
    local.put("h1", ACME, local.epoch)
    local.put("h2", ACME, local.epoch)
    local.put("h3", OTHER, local.epoch)  # full: the others go
    assert local.get("h1") is None and local.get("h3") == OTHER
    await asyncio.sleep(0.06)
    assert local.get("h3") is None


def test_a_lost_subscription_empties_the_copy() -> None:
    local = LocalSnapshots()
    local.reset(live=True)
    local.put("h1", ACME, local.epoch)
    local.reset(live=False)
    assert local.get("h1") is None and local.put("h1", ACME, local.epoch) is False
