"""The API's handles on each Redis shard (docs/SHARDING.md). After authentication a request works only with
its tenant's shard: `Shards.for_tenant` gives that shard's client, job store, queue and response cache, so
every tenant-scoped key of the request (queue entries, job hashes, event streams, limit, concurrency and budget
counters, cache entries, idempotency keys, usage stream, webhooks) lands on one server."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Query

from shared.breaker_state import BreakerView, read_breakers
from shared.cache import ResponseCache
from shared.config import Settings
from shared.errors import InvalidRequest, ServiceUnavailable
from shared.jobs import JobRecord, JobStore
from shared.queue import JobQueue
from shared.shard_clients import ShardClients, fan_out

__all__ = ["ShardHandles", "ShardQuery", "Shards", "ShardsUnavailable", "find_job", "open_shards",
           "read_breakers_everywhere", "shard_by_index"]


@dataclass(frozen=True)
class ShardHandles:
    """One shard: its position in REDIS_SHARDS (the `shard` label of /health and metrics) and its handles."""

    index: int
    redis: ArqRedis
    store: JobStore
    queue: JobQueue
    cache: ResponseCache


@dataclass(frozen=True)
class Shards:
    """Every shard's handles; a tenant's shard is a pure function of its id (shared/shards.py)."""

    clients: ShardClients
    handles: tuple[ShardHandles, ...]

    def for_tenant(self, tenant_id: str) -> ShardHandles:
        return self.handles[self.clients.index_for(tenant_id)]

    def __iter__(self) -> Iterator[ShardHandles]:
        return iter(self.handles)

    def __len__(self) -> int:
        return len(self.handles)


def open_shards(settings: Settings, clients: ShardClients) -> Shards:
    """Handles over already opened clients (the caller closes them)."""
    return Shards(clients=clients, handles=tuple(
        ShardHandles(
            index=index, redis=redis,
            store=JobStore(redis, ttl_s=settings.job_ttl_s, events_maxlen=settings.event_stream_maxlen,
                           queue_name=settings.queue_name),
            queue=JobQueue(redis, queue_name=settings.queue_name, expires_s=settings.request_timeout_s),
            cache=ResponseCache(redis),
        ) for index, redis in clients))


async def find_job(shards: Shards, job_id: str) -> tuple[JobRecord, ShardHandles] | None:
    """A job looked up by id alone (operators' views across tenants): every shard is asked at once. None when
    no shard has it; `ShardsUnavailable` when it is not on the shards that answered and some did not."""
    replies = await fan_out(shards.handles, lambda shard: shard.store.get(job_id))
    for reply in replies:
        if reply.value is not None:
            return reply.value, shards.handles[reply.index]
    down = [reply.index for reply in replies if reply.error is not None]
    if down:
        raise ShardsUnavailable(down, f"job {job_id}")
    return None


class ShardsUnavailable(ServiceUnavailable):
    """A view across shards could not be completed: it names the shards that did not answer."""

    code = "redis_unavailable"

    def __init__(self, down: list[int], what: str) -> None:
        names = ", ".join(str(index) for index in down)
        super().__init__(f"Redis shard(s) {names} did not answer, so {what} could not be looked up there")
        self.down = down


ShardQuery = Annotated[int, Query(ge=0, le=1023, description="a Redis shard's number (REDIS_SHARDS order, from 0)")]


def shard_by_index(shards: Shards, index: int) -> ShardHandles:
    """An operator's pick of a shard by number; 400 for one that is not configured."""
    if index >= len(shards):
        raise InvalidRequest(f"shard must be a shard number from 0 to {len(shards) - 1}", code="unknown_shard")
    return shards.handles[index]


async def read_breakers_everywhere(shards: Shards, target_ids: list[str]) -> dict[str, BreakerView]:
    """Each target's circuit breaker as the workers of every shard see it (each shard's workers keep their own,
    docs/SHARDING.md): the most tripped one wins, open before half-open before closed, then most failures. A
    shard that does not answer leaves the others' views."""
    replies = await fan_out(shards.clients.clients, lambda redis: read_breakers(redis, target_ids))
    merged: dict[str, BreakerView] = {}
    for reply in replies:
        for target_id, view in (reply.value or {}).items():
            known = merged.get(target_id)
            if known is None or _severity(view) > _severity(known):
                merged[target_id] = view
    return merged


def _severity(view: BreakerView) -> tuple[int, int]:
    return {"open": 2, "half_open": 1}.get(view.state, 0), view.failures
