"""shared/idempotency.py on real Redis: one owner per key, a waiter attaches when the owner binds its job and
takes the key over when the owner releases it, a stuck owner's marker expires, and keys are validated."""

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from shared.errors import Conflict, InvalidRequest, ServiceUnavailable
from shared.idempotency import IdempotencyStore, body_fingerprint, parse_key, route_flavour
from shared.keys import job_key

FP = body_fingerprint({"model": "m", "messages": [1, 2]})


@pytest.fixture
async def raw(clean_redis: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(clean_redis)
    yield client
    await client.aclose()


async def test_idempotency_store_waiter_attaches_once_owner_binds(raw: redis.asyncio.Redis) -> None:
    store = IdempotencyStore(raw, ttl_s=600)
    owner = await store.claim("t", "chat", "k", FP)
    assert owner.job_id is None
    waiter = asyncio.create_task(store.claim("t", "chat", "k", FP))
    await asyncio.sleep(0.1)
    assert not waiter.done()  # the owner is still being admitted
    await raw.hset(job_key("job_1"), "status", "queued")
    assert await owner.bind("job_1") is True
    assert (await asyncio.wait_for(waiter, 2)).job_id == "job_1"


async def test_idempotency_store_waiter_takes_over_a_released_key(raw: redis.asyncio.Redis) -> None:
    store = IdempotencyStore(raw, ttl_s=600)
    owner = await store.claim("t", "chat", "k", FP)
    waiter = asyncio.create_task(store.claim("t", "chat", "k", FP))
    await asyncio.sleep(0.05)
    await owner.release()
    successor = await asyncio.wait_for(waiter, 2)
    assert successor.job_id is None and successor.value != owner.value


async def test_idempotency_store_stuck_owners_marker_expires_to_a_waiter(raw: redis.asyncio.Redis) -> None:
    store = IdempotencyStore(raw, ttl_s=600, pending_ttl_s=0.3)
    owner = await store.claim("t", "chat", "k", FP)  # and then never binds nor releases (its process died)
    started = asyncio.get_running_loop().time()
    successor = await store.claim("t", "chat", "k", FP)
    assert successor.job_id is None and asyncio.get_running_loop().time() - started >= 0.25
    assert await owner.bind("job_late") is False  # its marker expired and was taken over


async def test_idempotency_store_waiter_gives_up_on_a_pending_marker(raw: redis.asyncio.Redis) -> None:
    owner = IdempotencyStore(raw, ttl_s=600, pending_ttl_s=30)
    await owner.claim("t", "chat", "k", FP)
    with pytest.raises(ServiceUnavailable):
        await IdempotencyStore(raw, ttl_s=600, pending_ttl_s=0.2).claim("t", "chat", "k", FP)


async def test_idempotency_store_other_body_conflicts_even_while_pending(raw: redis.asyncio.Redis) -> None:
    store = IdempotencyStore(raw, ttl_s=600)
    await store.claim("t", "chat", "k", FP)
    with pytest.raises(Conflict) as caught:
        await store.claim("t", "chat", "k", body_fingerprint({"model": "other"}))
    assert caught.value.code == "idempotency_key_reused"


def test_idempotency_parse_key_accepts_printable_ascii_only() -> None:
    assert parse_key(None) is None
    assert parse_key("a b~!") == "a b~!"
    for bad in ("", "x" * 256, "new\nline", "\x7f", "\u00e9"):
        with pytest.raises(InvalidRequest):
            parse_key(bad)


def test_idempotency_fingerprint_ignores_key_order_only() -> None:
    assert body_fingerprint({"a": 1, "b": [1, 2]}) == body_fingerprint({"b": [1, 2], "a": 1})
    assert body_fingerprint({"a": 1}) != body_fingerprint({"a": 1, "stream": True})


def test_idempotency_route_flavours() -> None:
    assert [route_flavour(p) for p in ("/v1/chat/completions", "/v1/messages", "/api/v1/completions",
                                       "/api/v1/jobs")] == ["chat", "messages", "completions", "jobs"]
