"""One Redis client per shard (docs/SHARDING.md), and the routing of a tenant (or of any other key spread
over the shards, such as an API key's hash) to one of them with `shared.shards.rendezvous_index`."""

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from arq.connections import ArqRedis
from redis.exceptions import RedisError

from shared.config import Settings
from shared.redis import create_redis
from shared.shards import rendezvous_index

__all__ = ["EMBEDDED_SHARD", "ShardClients", "ShardReply", "fan_out", "open_shard_clients"]

EMBEDDED_SHARD = "embedded"
T = TypeVar("T")
S = TypeVar("S")


@dataclass(frozen=True)
class ShardClients:
    """The shards' clients in REDIS_SHARDS order, and the names their tenants hash against."""

    clients: tuple[ArqRedis, ...]
    names: tuple[str, ...]

    def index_for(self, routing_key: str) -> int:
        """The shard holding `routing_key` (a tenant id, an API key's hash, a console session id)."""
        return rendezvous_index(routing_key, self.names)

    def for_key(self, routing_key: str) -> ArqRedis:
        return self.clients[self.index_for(routing_key)]

    def __iter__(self) -> Iterator[tuple[int, ArqRedis]]:
        return iter(enumerate(self.clients))

    def __len__(self) -> int:
        return len(self.clients)

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose(close_connection_pool=True) for client in self.clients),
                             return_exceptions=True)


def open_shard_clients(settings: Settings, *, queue_name: str | None = None) -> ShardClients:
    """A client per configured shard; embedded mode: the one in-process stand-in."""
    specs = settings.shard_specs
    if not specs:
        return ShardClients(clients=(create_redis(settings, queue_name=queue_name),), names=(EMBEDDED_SHARD,))
    return ShardClients(clients=tuple(create_redis(settings, queue_name=queue_name, url=spec.url) for spec in specs),
                        names=tuple(spec.name for spec in specs))


@dataclass(frozen=True)
class ShardReply(Generic[T]):
    """One shard's answer to a fan-out, or why it gave none."""

    index: int
    value: T | None
    error: str | None = None


async def fan_out(shards: Sequence[S], call: Callable[[S], Awaitable[T]],
                  timeout_s: float = 2.0) -> list[ShardReply[T]]:
    """`call` on every shard (a client or handles, in shard order) at once; a shard that is down or slower than
    `timeout_s` gives its error, so a view across tenants answers with the shards that did answer and names
    the others."""
    async def one(index: int, shard: S) -> ShardReply[T]:
        try:
            return ShardReply(index, await asyncio.wait_for(call(shard), timeout=timeout_s))
        except (RedisError, OSError, TimeoutError) as exc:
            return ShardReply(index, None, type(exc).__name__)

    return list(await asyncio.gather(*(one(index, shard) for index, shard in enumerate(shards))))
