"""Exact-match response cache in Redis. The key hashes the tenant, the API flavour and the whole request
body except a short deny-list of fields that cannot change the answer, so a new parameter is in the key by
default and no answer crosses tenants. Entries keep the streamed chunking so a hit replays it. A per-key
in-flight marker lets identical concurrent misses share one provider call."""

import hashlib
import json
from collections.abc import Mapping

from pydantic import BaseModel
from redis.asyncio import Redis

from shared.keys import cache_entry_key, cache_inflight_key
from shared.models import Completion, WireFormat
from shared.scripts import LuaScript

__all__ = ["NOT_IN_KEY", "CachedAnswer", "ResponseCache", "cache_digest"]

# Fields that change how an answer is delivered or attributed, never what it says.
NOT_IN_KEY = frozenset({"stream", "stream_options", "user", "metadata"})
# Delete the in-flight marker only while it still names the given job (another request may lead by now).
_RELEASE = LuaScript(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


class CachedAnswer(BaseModel):
    completion: Completion
    chunks: list[str]
    cost_usd: float


def cache_digest(tenant_id: str, wire: WireFormat, body: Mapping[str, object]) -> str:
    kept = {name: value for name, value in body.items() if name not in NOT_IN_KEY}
    canonical = json.dumps([tenant_id, wire.value, kept], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def get(self, digest: str) -> CachedAnswer | None:
        raw = await self._redis.get(cache_entry_key(digest))
        return CachedAnswer.model_validate_json(raw) if raw else None

    async def claim(self, digest: str, job_id: str, ttl_s: float) -> str | None:
        """Become the one job computing this answer; returns the job already doing it, or None if we won."""
        key = cache_inflight_key(digest)
        if await self._redis.set(key, job_id, nx=True, px=int(ttl_s * 1000)):
            return None
        leader = await self._redis.get(key)
        return leader.decode() if leader else None

    async def release(self, digest: str, job_id: str) -> None:
        """Give up a leadership whose job was never created, so identical requests do not wait on nothing."""
        await _RELEASE.run(self._redis, [cache_inflight_key(digest)], [job_id])

    async def leader(self, digest: str) -> str | None:
        raw = await self._redis.get(cache_inflight_key(digest))
        return raw.decode() if raw else None


def entry_value(answer: CachedAnswer) -> str:
    return answer.model_dump_json()
