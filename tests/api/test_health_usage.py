"""/health says when billing is stalled or lagging: a usage record waiting in Redis for longer than
USAGE_LAG_LIMIT_S, or no usage writer having completed a flush for that long, is a 503 naming it."""

import json
import re
import time

import redis.asyncio

from shared.keys import USAGE_STREAM, USAGE_WRITERS_KEY, WORKERS_KEY
from tests.api.conftest import app_client


async def _live_worker(raw: redis.asyncio.Redis) -> None:
    await raw.zadd(WORKERS_KEY, {"worker-x": int(time.time() * 1000)})


async def test_health_ok_when_billing_keeps_up(clean_redis: str, sqlite_url: str,
                                               raw: redis.asyncio.Redis) -> None:
    await _live_worker(raw)
    await raw.zadd(USAGE_WRITERS_KEY, {"worker-x": int(time.time() * 1000)})
    await raw.xadd(USAGE_STREAM, {"row": json.dumps({"request_id": "fresh"})})
    async with app_client(redis_url=clean_redis, database_url=sqlite_url) as http:
        response = await http.get("/health")
    assert response.status_code == 200, response.text
    usage = response.json()["checks"]["usage"]
    assert usage["ok"] is True and usage["backlog"] == 1 and usage["oldest_unwritten_s"] < 5
    assert usage["last_flush_s"] < 5


async def test_health_503_when_a_usage_record_waits_too_long(clean_redis: str, sqlite_url: str,
                                                             raw: redis.asyncio.Redis) -> None:
    await _live_worker(raw)
    old_ms = int(time.time() * 1000) - 600_000  # a record unwritten for ten minutes (stream ids are times)
    await raw.xadd(USAGE_STREAM, {"row": json.dumps({"request_id": "stuck"})}, id=f"{old_ms}-0")
    async with app_client(redis_url=clean_redis, database_url=sqlite_url) as http:
        response = await http.get("/health")
    assert response.status_code == 503, response.text
    checks = response.json()["checks"]
    assert checks["redis"]["ok"] and checks["database"]["ok"] and checks["workers"]["ok"]
    assert checks["usage"]["ok"] is False and checks["usage"]["oldest_unwritten_s"] >= 599
    assert "billing is not reaching the database" in checks["usage"]["detail"]


async def test_health_503_when_no_usage_writer_flushed_lately(clean_redis: str, sqlite_url: str,
                                                              raw: redis.asyncio.Redis) -> None:
    await _live_worker(raw)
    started = time.monotonic()
    await raw.zadd(USAGE_WRITERS_KEY, {"worker-x": int(time.time() * 1000) - 300_000})
    async with app_client(redis_url=clean_redis, database_url=sqlite_url) as http:
        response = await http.get("/health")
    elapsed_s = time.monotonic() - started  # a busy machine may take seconds to start the app
    assert response.status_code == 503, response.text
    usage = response.json()["checks"]["usage"]
    assert usage["ok"] is False and usage["backlog"] == 0
    found = re.search(r"no usage writer has completed a flush for (\d+) s", usage["detail"])
    assert found is not None, usage["detail"]
    assert 300 <= int(found.group(1)) <= 300 + elapsed_s + 1
