"""A worker process serving two Redis shards (worker/shards.py), one of them down from the start (a closed
port): the live shard's arq worker starts, heartbeats and keeps going while the other retries; SIGTERM stops
both (one handler forwards it to every worker) and the live one drops its heartbeat on the way out. A worker
that ends by itself ends the process with an error."""

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

import worker.shards
from shared.config import Settings
from shared.db.migrate import migrate
from shared.keys import WORKERS_KEY
from worker.gateway_worker import GatewayWorker
from worker.shards import run_shard_workers

LIVE_URL = "redis://127.0.0.1:6379/12"
CLOSED_URL = "redis://127.0.0.1:1/0"


async def _heartbeats(client: redis.asyncio.Redis) -> int:
    return int(await client.zcount(WORKERS_KEY, (time.time() - 2) * 1000, "+inf"))


async def _settings(tmp_path: Path) -> Settings:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}"
    await migrate(database_url)
    return Settings(_env_file=None, redis_shards=f"{LIVE_URL},{CLOSED_URL}",  # type: ignore[call-arg]
                    database_url=database_url, worker_metrics_port=0, worker_heartbeat_s=0.2,
                    worker_drain_s=0, queue_name=f"gw:test-shards:{uuid.uuid4().hex[:8]}")


async def test_worker_serves_the_live_shard_while_the_other_is_down(tmp_path: Path) -> None:
    settings = await _settings(tmp_path)
    live = redis.asyncio.Redis.from_url(LIVE_URL)
    await live.flushdb()
    task = asyncio.create_task(run_shard_workers(settings))
    try:
        deadline = time.monotonic() + 10
        while await _heartbeats(live) == 0 and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
        assert await _heartbeats(live) == 1, "the live shard's worker never sent a heartbeat"
        await asyncio.sleep(1.5)  # the down shard's worker has failed a poll and retried by now
        assert not task.done(), task.exception() if task.done() else None
        os.kill(os.getpid(), signal.SIGTERM)  # handled by run_shard_workers' handler, not the default
        await asyncio.wait_for(task, timeout=15)
        assert await _heartbeats(live) == 0  # dropped by the live worker's on_shutdown
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await live.flushdb()
        await live.aclose()


async def test_a_worker_ending_by_itself_stops_the_process_with_an_error(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a Redis outage (that never ends a worker): a bug. The other shard's worker must not serve on alone,
    leaving this shard unserved unnoticed; the process ends with an error for its supervisor to restart."""
    settings = await _settings(tmp_path)
    real_build = worker.shards.build_worker
    built: list[GatewayWorker] = []

    async def broken() -> None:
        raise ValueError("a bug in the poll loop")

    def build(*args: Any, **kwargs: Any) -> GatewayWorker:
        made = real_build(*args, **kwargs)
        built.append(made)
        if len(built) == 2:  # shard 1's
            made.main = broken  # type: ignore[method-assign]
        return made

    monkeypatch.setattr(worker.shards, "build_worker", build)
    with pytest.raises(RuntimeError, match=r"Redis shard 1 ended: ValueError\('a bug in the poll loop'\)"):
        await asyncio.wait_for(run_shard_workers(settings), timeout=20)
    assert built[0].main_task is not None and built[0].main_task.cancelled()  # shard 0's was stopped
