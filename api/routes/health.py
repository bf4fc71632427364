"""Health: 200 when Redis, the database and at least one live worker are reachable and billing keeps up, else
503 naming the part that is down. Workers prove they are alive with a heartbeat in Redis; usage writers report
their flushes there, and the usage stream's oldest entry says how far billing lags (shared/usage_stream.py)."""

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import AppState, StateDep
from shared.keys import WORKERS_KEY
from shared.usage_stream import read_usage_lag

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 2.0


@router.get("/health")
async def read_health(state: StateDep) -> JSONResponse:
    """Readiness of every part the gateway needs, each checked with a short timeout."""
    checks = {
        "redis": await _check(_redis_ok(state)),
        "database": await _check(_database_ok(state)),
        "workers": await _check(_workers_alive(state)),
        "usage": await _check(_usage_written(state)),
    }
    healthy = all(check["ok"] for check in checks.values())
    body = {"status": "ok" if healthy else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if healthy else 503)


async def _check(probe: Coroutine[Any, Any, dict[str, object]]) -> dict[str, object]:
    try:
        return await asyncio.wait_for(probe, timeout=CHECK_TIMEOUT_S)
    except Exception as exc:
        return {"ok": False, "detail": f"unreachable: {type(exc).__name__}"}


async def _redis_ok(state: AppState) -> dict[str, object]:
    await state.redis.ping()
    return {"ok": True}


async def _database_ok(state: AppState) -> dict[str, object]:
    async with state.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return {"ok": True}


async def _workers_alive(state: AppState) -> dict[str, object]:
    horizon_ms = (time.time() - 3 * state.settings.worker_heartbeat_s) * 1000
    alive = int(await state.redis.zcount(WORKERS_KEY, horizon_ms, "+inf"))
    if alive == 0:
        return {"ok": False, "count": 0, "detail": "no worker has sent a heartbeat recently"}
    return {"ok": True, "count": alive}


async def _usage_written(state: AppState) -> dict[str, object]:
    """Billing reaches the database: no usage record has waited in Redis, and no writer has gone without a
    completed flush, for longer than USAGE_LAG_LIMIT_S."""
    return (await read_usage_lag(state.redis)).as_check()
