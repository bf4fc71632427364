"""Authenticated tenants cached in Redis, so a request needs no database round trip and completions go on
while PostgreSQL is down. Every change to a tenant or its keys must call `invalidate_tenant`, which drops
all of its cached keys at once across every API process."""

from collections.abc import Awaitable
from typing import cast

from pydantic import BaseModel
from redis.asyncio import Redis

from shared.db.tables import Tenant
from shared.keys import auth_cache_key, tenant_auth_index_key

__all__ = ["TenantCache", "TenantSnapshot"]


class TenantSnapshot(BaseModel):
    """What a request needs to know about its tenant: identity, status and limits."""

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
    key_id: str | None = None  # the api_keys row that authenticated this request (issue 15)
    log_content_days: int | None = None  # opt-in: keep prompt and answer text this many days (issue 15)

    @classmethod
    def of(cls, tenant: Tenant) -> "TenantSnapshot":
        return cls.model_validate(tenant.model_dump())


class TenantCache:
    def __init__(self, redis: Redis, *, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def get(self, key_hash: str) -> TenantSnapshot | None:
        raw = await self._redis.get(auth_cache_key(key_hash))
        return TenantSnapshot.model_validate_json(raw) if raw else None

    async def put(self, key_hash: str, tenant: TenantSnapshot) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(auth_cache_key(key_hash), tenant.model_dump_json(), ex=self._ttl_s)
            pipe.sadd(tenant_auth_index_key(tenant.id), key_hash)
            pipe.expire(tenant_auth_index_key(tenant.id), self._ttl_s)
            await pipe.execute()

    async def invalidate_tenant(self, tenant_id: str) -> None:
        index = tenant_auth_index_key(tenant_id)
        # redis-py's asyncio client shares the sync client's annotations (`Awaitable[set] | set`).
        hashes = await cast("Awaitable[set[bytes]]", self._redis.smembers(index))
        async with self._redis.pipeline(transaction=True) as pipe:
            for key_hash in hashes:
                pipe.delete(auth_cache_key(key_hash.decode()))
            pipe.delete(index)
            await pipe.execute()
