"""An API process's own copy of the auth snapshots it read from its Redis auth cache (shared/tenant_cache.py),
so a busy key costs no Redis round trip per request (issue 17), while a change to a tenant or its keys still
applies to the next request of every API process (issue 15).

Every invalidation publishes the tenant's id on AUTH_INVALIDATION_CHANNEL of every shard, in the transaction
that drops the Redis snapshots; each API process listens on each shard and drops that tenant's copies when
the message comes (the process making the change drops its own at once). The copy of a shard is used only
while its subscription is confirmed: from a lost connection until the next confirmed subscription it is
empty and unused, so a message missed then cannot leave a stale copy. Whatever happens, a copy lives at
most LOCAL_TTL_S (within a second), and an `epoch` bumped by every drop stops a read that raced an
invalidation from storing what the invalidation removed."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.keys import AUTH_INVALIDATION_CHANNEL

if TYPE_CHECKING:  # shared.tenant_cache builds these
    from shared.tenant_cache import TenantSnapshot

__all__ = ["LOCAL_TTL_S", "LocalSnapshots", "listening"]

logger = logging.getLogger(__name__)

LOCAL_TTL_S = 1.0
MAX_ENTRIES = 10_000
RECONNECT_DELAY_S = 1.0


class LocalSnapshots:
    """The snapshots of one shard's auth cache this process holds, by key hash, each until a monotonic time."""

    def __init__(self, ttl_s: float = LOCAL_TTL_S, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: dict[str, tuple[TenantSnapshot, float]] = {}
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self.epoch = 0  # read before a Redis read; `put` stores only if no drop happened since
        self.live = False  # the invalidation subscription is confirmed

    def get(self, key_hash: str) -> "TenantSnapshot | None":
        entry = self._entries.get(key_hash) if self.live else None
        if entry is None:
            return None
        if time.monotonic() >= entry[1]:
            del self._entries[key_hash]
            return None
        return entry[0]

    def put(self, key_hash: str, snapshot: "TenantSnapshot", epoch: int) -> bool:
        if not self.live or epoch != self.epoch:
            return False
        if len(self._entries) >= self._max_entries and key_hash not in self._entries:
            self._entries.clear()  # bounded: the next request of each key reads Redis again
        self._entries[key_hash] = (snapshot, time.monotonic() + self._ttl_s)
        return True

    def drop_tenant(self, tenant_id: str) -> None:
        self.epoch += 1
        for key_hash in [k for k, (snapshot, _) in self._entries.items() if snapshot.id == tenant_id]:
            del self._entries[key_hash]

    def reset(self, *, live: bool) -> None:
        """Forget everything (the subscription was lost or is new)."""
        self.epoch += 1
        self._entries.clear()
        self.live = live

    async def listen(self, redis: Redis) -> None:
        """Follow the shard's invalidations until cancelled; the copy is in use only while subscribed."""
        while True:
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(AUTH_INVALIDATION_CHANNEL)
                    async for message in pubsub.listen():
                        self._on_message(message)
            except (RedisError, OSError) as exc:
                logger.debug("auth invalidations lost (%s): reading the Redis cache", type(exc).__name__)
            except Exception:  # anything else: logged, and the listener starts over rather than dying
                logger.exception("auth invalidation listener failed: reading the Redis cache")
            finally:
                self.reset(live=False)
            await asyncio.sleep(RECONNECT_DELAY_S)

    def _on_message(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            self.reset(live=True)
        elif kind == "message":
            data = message.get("data")
            self.drop_tenant(data.decode() if isinstance(data, bytes) else str(data))


@contextlib.asynccontextmanager
async def listening(copies: Sequence[tuple[LocalSnapshots, Redis]]) -> AsyncIterator[None]:
    """Run a listener per shard for the lifetime of the context (the API's lifespan)."""
    tasks = [asyncio.create_task(local.listen(redis), name="auth-invalidations") for local, redis in copies]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
