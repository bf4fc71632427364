"""Idempotency keys: the Redis side of `Idempotency-Key`. A client that retries a completion or a job
submission with the same key (after a timeout, a dropped connection, a crash) must get the job of its first
attempt, never a second job and never a second bill.

The key's entry is claimed with SET NX *before* admission, as a pending marker naming its owner, so of two
concurrent identical requests exactly one goes on to admission and creates a job; the other waits until the
marker is bound to that job (then attaches to it) or released (then claims the key itself). The owner binds
the key to its job once the job exists, for `IDEMPOTENCY_TTL_S` (never longer than the job record lives,
`JOB_TTL_S`), or releases it when the request fails before a job exists (refused by admission, unknown model,
queue down): a key is never left bound to nothing, and a request that was refused may be retried with the
same key. A pending marker whose owner died expires after `PENDING_TTL_S`.

Entries are scoped by tenant and by route flavour (chat, messages, completions, jobs) and hold a digest of the
request body: the same key with another body is a client bug, answered 409 `idempotency_key_reused`."""

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.errors import Conflict, InvalidRequest, ServiceUnavailable
from shared.keys import idempotency_key, job_key
from shared.scripts import LuaScript

__all__ = ["Claim", "IdempotencyStore", "body_fingerprint", "parse_key", "route_flavour"]

MAX_KEY_LENGTH = 255
PENDING_TTL_S = 60
POLL_S = 0.02
# The route flavours a key is scoped to: the same key on two endpoints names two different requests.
FLAVOURS = {"/v1/chat/completions": "chat", "/v1/messages": "messages", "/api/v1/completions": "completions",
            "/api/v1/jobs": "jobs"}

# Replace the entry only if it is still the given value (our pending marker, or a binding we found stale).
_SWAP = LuaScript("""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
return 1
""")


def parse_key(raw: str | None) -> str | None:
    """The header's value, or None without one; 400 unless it is 1 to 255 printable ASCII characters."""
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_KEY_LENGTH or any(not " " <= char <= "~" for char in raw):
        raise InvalidRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
                             code="invalid_idempotency_key")
    return raw


def route_flavour(path: str) -> str:
    return FLAVOURS.get(path.rstrip("/"), path)


def body_fingerprint(body: Mapping[str, object]) -> str:
    """A digest of the whole request body, key order aside: any other difference is another request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Claim:
    """The outcome of claiming a key: `job_id` is set when an earlier request with this key already has a job
    (attach to it); otherwise this request owns the key and must `bind` it to its job or `release` it."""

    store: "IdempotencyStore"
    redis_key: str
    value: str
    job_id: str | None = None

    async def bind(self, job_id: str) -> bool:
        """Point the key at the job; False if our marker was lost (it expired: the request took too long)."""
        entry = json.loads(self.value)
        bound = json.dumps({"fp": entry["fp"], "job": job_id})
        return await self.store.swap(self.redis_key, self.value, bound)

    async def release(self) -> None:
        """No job came of this request: free the key for a retry."""
        await self.store.swap(self.redis_key, self.value, "")


class IdempotencyStore:
    def __init__(self, redis: Redis, *, ttl_s: int, pending_ttl_s: float = PENDING_TTL_S) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._pending_ttl_s = pending_ttl_s

    async def claim(self, tenant_id: str, flavour: str, key: str, fingerprint: str) -> Claim:
        """Own the key, or find the job it names; waits while another request holding it is being admitted.
        Raises Conflict when the key was used with another body."""
        redis_key = idempotency_key(tenant_id, flavour, hashlib.sha256(key.encode()).hexdigest())
        pending = json.dumps({"fp": fingerprint, "job": "", "owner": uuid.uuid4().hex})
        deadline = time.monotonic() + self._pending_ttl_s
        while True:
            if await self._redis.set(redis_key, pending, nx=True, px=int(self._pending_ttl_s * 1000)):
                return Claim(self, redis_key, pending)
            raw = await self._redis.get(redis_key)
            if raw is None:
                continue  # released or expired between the two calls: try again
            current = raw.decode()
            entry = json.loads(current)
            if entry["fp"] != fingerprint:
                raise Conflict("This Idempotency-Key was already used with a different request body",
                               code="idempotency_key_reused")
            job_id = str(entry["job"])
            if job_id:
                if await self._redis.exists(job_key(job_id)):
                    return Claim(self, redis_key, current, job_id=job_id)
                await self.swap(redis_key, current, "")  # its job has expired: the key starts afresh
                continue
            if time.monotonic() > deadline:
                raise ServiceUnavailable("An earlier request with this Idempotency-Key is still being admitted")
            await asyncio.sleep(POLL_S)

    async def swap(self, redis_key: str, expected: str, new: str) -> bool:
        """Set the entry to `new` (or delete it when `new` is empty) only if it still holds `expected`."""
        done = await _SWAP.run(self._redis, [redis_key], [expected, new, self._ttl_s])
        return bool(done)
