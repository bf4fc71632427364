"""/health answers 503 naming the part that is down: Redis, the database or the workers."""

import time

import redis.asyncio

from shared.keys import WORKERS_KEY
from tests.api.conftest import CLOSED_POSTGRES_URL, CLOSED_REDIS_URL, app_client


async def test_health_503_when_no_worker_heartbeat(clean_redis: str, sqlite_url: str) -> None:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url) as http:
        response = await http.get("/health")
        assert response.status_code == 503
        checks = response.json()["checks"]
        assert checks["workers"]["ok"] is False and checks["redis"]["ok"] and checks["database"]["ok"]
        client = redis.asyncio.Redis.from_url(clean_redis)
        await client.zadd(WORKERS_KEY, {"worker-x": int(time.time() * 1000)})
        await client.aclose()
        assert (await http.get("/health")).status_code == 200


async def test_health_503_when_redis_down(sqlite_url: str) -> None:
    async with app_client(redis_url=CLOSED_REDIS_URL, database_url=sqlite_url) as http:
        response = await http.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False
    assert response.json()["checks"]["database"]["ok"] is True


async def test_health_503_when_database_down(clean_redis: str) -> None:
    async with app_client(redis_url=clean_redis, database_url=CLOSED_POSTGRES_URL) as http:
        response = await http.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["ok"] is False
