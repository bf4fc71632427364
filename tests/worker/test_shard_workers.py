"""A worker process serving two Redis shards (worker/shards.py), one of them down from the start (a closed
port): the live shard's arq worker starts, heartbeats and keeps going while the other retries; SIGTERM stops
both (one handler forwards it to every worker) and the live one drops its heartbeat on the way out."""

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import redis.asyncio

from shared.config import Settings
from shared.db.migrate import migrate
from shared.keys import WORKERS_KEY
from worker.shards import run_shard_workers

LIVE_URL = "redis://127.0.0.1:6379/12"
CLOSED_URL = "redis://127.0.0.1:1/0"


async def _heartbeats(client: redis.asyncio.Redis) -> int:
    return int(await client.zcount(WORKERS_KEY, (time.time() - 2) * 1000, "+inf"))


async def test_worker_serves_the_live_shard_while_the_other_is_down(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}"
    await migrate(database_url)
    settings = Settings(_env_file=None, redis_shards=f"{LIVE_URL},{CLOSED_URL}",  # type: ignore[call-arg]
                        database_url=database_url, worker_metrics_port=0, worker_heartbeat_s=0.2,
                        worker_drain_s=0, queue_name=f"gw:test-shards:{uuid.uuid4().hex[:8]}")
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
