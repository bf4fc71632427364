"""Authenticated tenants cached in Redis, so a request needs no database round trip and completions go on
while PostgreSQL is down. Every change to a tenant or its keys must call `invalidate_tenant`, which drops
all of its cached keys at once across every API process, and publishes the tenant's id so that each API
process drops its own copies too (shared/auth_local.py): a revocation or a scope change applies to the next
request of every API process (issue 15), while a busy key is read from Redis at most once a second per
process (issue 17). A snapshot describes one key: its tenant's identity, status and limits, and the key's own
scopes."""

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import datetime
from typing import TYPE_CHECKING, cast

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from shared.auth_local import LocalSnapshots, listening
from shared.db.tables import ApiKey, Tenant
from shared.keys import AUTH_GENERATION_KEY, AUTH_INVALIDATION_CHANNEL, auth_cache_key, tenant_auth_index_key
from shared.scripts import LuaScript

if TYPE_CHECKING:  # shared.shard_clients imports the settings; this module is imported without them
    from shared.shard_clients import ShardClients

__all__ = ["KeyScope", "ShardedTenantCache", "TenantCache", "TenantSnapshot"]


class KeyScope(BaseModel):
    """The authenticating key's own scopes and limits (None: unrestricted, only the tenant's apply)."""

    name: str = "default"
    expires_at: datetime | None = None
    allowed_models: list[str] | None = None
    allowed_endpoints: list[str] | None = None
    rate_limit: int | None = None
    tpm_limit: int | None = None
    max_concurrent: int | None = None
    budget_usd: float | None = None
    budget_period: str = "monthly"

    @property
    def limited(self) -> bool:
        """Whether the key has a limit or budget of its own to count in Redis."""
        return any(value is not None for value in (self.rate_limit, self.tpm_limit, self.max_concurrent,
                                                   self.budget_usd))


class TenantSnapshot(BaseModel):
    """What a request needs to know about its tenant (identity, status, limits, model allow-list) and about
    the key that authenticated it."""

    id: str
    name: str
    disabled: bool = False
    rate_limit: int | None = None
    tpm_limit: int | None = None
    max_concurrent: int | None = None
    budget_usd: float | None = None
    budget_period: str = "monthly"
    weight: int | None = None
    max_running: int | None = None
    allowed_models: list[str] | None = None
    key_id: str | None = None  # the api_keys row that authenticated this request (issue 15)
    key: KeyScope = Field(default_factory=KeyScope)
    log_content_days: int | None = None  # opt-in: keep prompt and answer text this many days (issue 15)

    @classmethod
    def of(cls, tenant: Tenant, key: ApiKey | None = None) -> "TenantSnapshot":
        snapshot = cls.model_validate(tenant.model_dump())
        if key is not None:
            snapshot.key_id = key.id
            snapshot.key = KeyScope.model_validate(key.model_dump(include=set(KeyScope.model_fields)))
        return snapshot


# Stores a snapshot only if no invalidation happened since the caller read the generation before its
# database lookup: a lookup that raced a revocation must not cache what the revocation removed.
PUT_IF_CURRENT = LuaScript("""
if ARGV[4] ~= '' and (redis.call('GET', KEYS[3]) or '0') ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
""")


class TenantCache:
    def __init__(self, redis: Redis, *, ttl_s: int, local: LocalSnapshots | None = None) -> None:
        """With `local`, snapshots read from Redis are kept in this process too, while it listens
        (`ShardedTenantCache.listening`)."""
        self._redis = redis
        self._ttl_s = ttl_s
        self.local = local

    async def get(self, key_hash: str) -> TenantSnapshot | None:
        local = self.local
        if local is not None and (snapshot := local.get(key_hash)) is not None:
            return snapshot
        epoch = local.epoch if local is not None else 0
        raw = await self._redis.get(auth_cache_key(key_hash))
        snapshot = TenantSnapshot.model_validate_json(raw) if raw else None
        if local is not None and snapshot is not None:
            local.put(key_hash, snapshot, epoch)
        return snapshot

    async def generation(self) -> str:
        """The count of invalidations so far; read before a database lookup and give it to `put`."""
        raw = await self._redis.get(AUTH_GENERATION_KEY)
        return raw.decode() if isinstance(raw, bytes) else str(raw or "0")

    async def put(self, key_hash: str, tenant: TenantSnapshot, generation: str | None = None) -> bool:
        """Cache a snapshot; with `generation`, only if no invalidation happened since it was read."""
        keys = [auth_cache_key(key_hash), tenant_auth_index_key(tenant.id), AUTH_GENERATION_KEY]
        args: list[object] = [tenant.model_dump_json(), key_hash, self._ttl_s, generation or ""]
        return bool(await PUT_IF_CURRENT.run(self._redis, keys, args))

    async def invalidate_tenant(self, tenant_id: str) -> None:
        """Drop the tenant's snapshots here and in Redis, and tell every API process to drop its copies. This
        process's copies are dropped before and after: a read sent before the transaction committed must not
        store what it removed."""
        self._drop_local(tenant_id)
        index = tenant_auth_index_key(tenant_id)
        # redis-py's asyncio client shares the sync client's annotations (`Awaitable[set] | set`).
        hashes = await cast("Awaitable[set[bytes]]", self._redis.smembers(index))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(AUTH_GENERATION_KEY)
            for key_hash in hashes:
                pipe.delete(auth_cache_key(key_hash.decode()))
            pipe.delete(index)
            pipe.publish(AUTH_INVALIDATION_CHANNEL, tenant_id)
            await pipe.execute()
        self._drop_local(tenant_id)

    def _drop_local(self, tenant_id: str) -> None:
        if self.local is not None:
            self.local.drop_tenant(tenant_id)


class ShardedTenantCache:
    """The auth cache spread over the Redis shards by API key hash (docs/SHARDING.md): a key's snapshot, the
    tenant's index of cached key hashes and the invalidation generation live together on the key hash's
    shard, so `put`'s check-and-set stays one script on one server. The key's tenant is not known before the
    lookup, hence the key hash and not the tenant. `invalidate_tenant` runs on every shard."""

    def __init__(self, clients: "ShardClients", *, ttl_s: int) -> None:
        self._clients = clients
        self._shards = tuple(TenantCache(client, ttl_s=ttl_s, local=LocalSnapshots() if ttl_s > 0 else None)
                             for _, client in clients)

    def for_key(self, key_hash: str) -> TenantCache:
        return self._shards[self._clients.index_for(key_hash)]

    async def invalidate_tenant(self, tenant_id: str) -> None:
        """Drop the tenant's snapshots on every shard. Raises the first shard's error after trying them all: the
        caller reports it, and the snapshots on a shard that was down expire within AUTH_CACHE_TTL_S."""
        results = await asyncio.gather(*(shard.invalidate_tenant(tenant_id) for shard in self._shards),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def listening(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Listen for invalidations on every shard for the context's lifetime (the API's lifespan); until a
        shard's subscription is confirmed, its snapshots are read from Redis on every request."""
        return listening([(shard.local, client) for shard, (_, client) in zip(self._shards, self._clients, strict=True)
                          if shard.local is not None])
