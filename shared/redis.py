"""Creates the one Redis client both sides use: a real server from `REDIS_URL`, or an in-process fakeredis
stand-in for the embedded single-process mode. The client is arq's `ArqRedis` with a JSON serializer, so a
job payload in Redis is data, never pickled code."""

import json
from collections.abc import Mapping

import fakeredis
from arq.connections import ArqRedis
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import ResponseError

from shared.config import Settings

__all__ = ["create_redis", "decode_hash", "deserialize_job", "is_missing_group", "serialize_job"]


def serialize_job(data: dict[str, object]) -> bytes:
    # repr() for anything JSON can't hold (arq stores exceptions as job results); nothing is ever unpickled.
    return json.dumps(data, default=repr).encode()


def deserialize_job(raw: bytes) -> dict[str, object]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("job payload is not a JSON object")
    return value


def create_redis(settings: Settings, *, queue_name: str | None = None, url: str | None = None) -> ArqRedis:
    """A client for `settings` (or for the shard at `url`); with no Redis configured, a fresh in-process fake
    server."""
    url = url or settings.resolved_redis_url
    if url is None:
        fake = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        pool = fake.connection_pool
    else:
        pool = BlockingConnectionPool.from_url(
            url, max_connections=settings.redis_max_connections, timeout=10, health_check_interval=30
        )
    return ArqRedis(
        pool_or_conn=pool,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        default_queue_name=queue_name or settings.queue_name,
    )


def decode_hash(raw: Mapping[bytes, bytes]) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in raw.items()}


def is_missing_group(error: ResponseError) -> bool:
    """Redis answers NOGROUP when a stream or its consumer group is gone: Redis restarted without persistence,
    was flushed, or evicted the stream. A stream's readers cure it by creating the group again."""
    return str(error).startswith("NOGROUP")
