"""Health: 200 when Redis, the database and at least one live worker are reachable and billing keeps up, else
503 naming the part that is down. Workers prove they are alive with a heartbeat in Redis; usage writers report
their flushes there, and the usage stream's oldest entry says how far billing lags (shared/usage_stream.py).

With several Redis shards (docs/SHARDING.md) each is checked on its own (`checks.shards`, by shard number):
Redis up, queue depth, live workers and billing of that shard. The top-level `redis`, `workers` and `usage`
checks hold for all shards together. A shard down while another is fully served is `degraded` with 200: this
API process still serves the other shards' tenants, so a load balancer must keep sending it traffic; with
every shard down (one shard: that shard) it is 503."""

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import AppState, StateDep
from api.shards import ShardHandles
from shared.keys import WORKERS_KEY
from shared.usage_stream import read_usage_lag

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 2.0


@router.get("/health")
async def read_health(state: StateDep) -> JSONResponse:
    """Readiness of every part the gateway needs, each checked with a short timeout."""
    shards, database = await asyncio.gather(
        asyncio.gather(*(_shard_checks(state, shard) for shard in state.shards)), _check(_database_ok(state)))
    checks: dict[str, object] = {
        "redis": _all(shards, "redis"),
        "database": database,
        "workers": {**_all(shards, "workers"), "count": sum(_count(s["workers"]) for s in shards)},
        "usage": _usage_all(shards),
    }
    if len(shards) > 1:
        checks["shards"] = [_shard_summary(index, s) for index, s in enumerate(shards)]
    served = [index for index, s in enumerate(shards) if _shard_ok(s)]
    if not database["ok"] or not served:
        status, code = "unavailable", 503
    else:
        status, code = ("ok", 200) if len(served) == len(shards) else ("degraded", 200)
    return JSONResponse({"status": status, "checks": checks}, status_code=code)


ShardChecks = dict[str, dict[str, object]]


async def _shard_checks(state: AppState, shard: ShardHandles) -> ShardChecks:
    redis, workers, usage, depth = await asyncio.gather(
        _check(_redis_ok(shard)), _check(_workers_alive(state, shard)), _check(_usage_written(shard)),
        _check(_queue_depth(shard)))
    return {"redis": redis, "workers": workers, "usage": usage, "queue": depth}


def _shard_ok(checks: ShardChecks) -> bool:
    return all(checks[name]["ok"] for name in ("redis", "workers", "usage"))


def _shard_summary(index: int, checks: ShardChecks) -> dict[str, object]:
    return {"shard": index, "ok": _shard_ok(checks), "redis": checks["redis"]["ok"],
            "queue_depth": checks["queue"].get("depth"), "workers": checks["workers"].get("count", 0),
            "usage_ok": checks["usage"]["ok"], **({"detail": detail} if (detail := _detail(checks)) else {})}


def _detail(checks: ShardChecks) -> str | None:
    for name in ("redis", "workers", "usage"):
        if not checks[name]["ok"]:
            return f"{name}: {checks[name].get('detail', 'not ok')}"
    return None


def _all(shards: list[ShardChecks], name: str) -> dict[str, object]:
    """One check over every shard: with one shard, that shard's check as it is."""
    if len(shards) == 1:
        return shards[0][name]
    failing = [index for index, checks in enumerate(shards) if not checks[name]["ok"]]
    if not failing:
        return {"ok": True}
    return {"ok": False, "detail": f"shard(s) {', '.join(map(str, failing))}: "
                                   + "; ".join(str(shards[i][name].get("detail", "not ok")) for i in failing)}


def _usage_all(shards: list[ShardChecks]) -> dict[str, object]:
    if len(shards) == 1:
        return shards[0]["usage"]
    merged = _all(shards, "usage")
    merged["backlog"] = sum(_count(s["usage"], "backlog") for s in shards)
    return merged


def _count(check: dict[str, object], name: str = "count") -> int:
    value = check.get(name, 0)
    return value if isinstance(value, int) else 0


async def _check(probe: Coroutine[Any, Any, dict[str, object]]) -> dict[str, object]:
    try:
        return await asyncio.wait_for(probe, timeout=CHECK_TIMEOUT_S)
    except Exception as exc:
        return {"ok": False, "detail": f"unreachable: {type(exc).__name__}"}


async def _redis_ok(shard: ShardHandles) -> dict[str, object]:
    await shard.redis.ping()
    return {"ok": True}


async def _queue_depth(shard: ShardHandles) -> dict[str, object]:
    return {"ok": True, "depth": await shard.queue.ready_depth()}


async def _database_ok(state: AppState) -> dict[str, object]:
    async with state.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return {"ok": True}


async def _workers_alive(state: AppState, shard: ShardHandles) -> dict[str, object]:
    horizon_ms = (time.time() - 3 * state.settings.worker_heartbeat_s) * 1000
    alive = int(await shard.redis.zcount(WORKERS_KEY, horizon_ms, "+inf"))
    if alive == 0:
        return {"ok": False, "count": 0, "detail": "no worker has sent a heartbeat recently"}
    return {"ok": True, "count": alive}


async def _usage_written(shard: ShardHandles) -> dict[str, object]:
    """Billing reaches the database: no usage record has waited in Redis, and no writer has gone without a
    completed flush, for longer than USAGE_LAG_LIMIT_S."""
    return (await read_usage_lag(shard.redis)).as_check()
