"""The API's Prometheus listener on `API_METRICS_PORT`, started by the lifespan of every API process; the
public port has no `/metrics` (404). With `PROMETHEUS_MULTIPROC_DIR` set, the processes of
`serve --workers N` share the port and each answers with all of them added up. Queue depth and live
workers are read from Redis at scrape time, so they are current whichever process answers."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import RedisError

from api.deps import AppState
from api.shards import ShardHandles
from shared.keys import WORKERS_KEY
from shared.metrics import QUEUE_DEPTH, REDIS_SHARD_UP, WORKERS, metrics_registry
from shared.metrics_server import start_metrics_server

logger = logging.getLogger(__name__)

# A scrape waits this long for the Redis reads; then it answers with the last values (Redis is slow or down,
# which /health reports; the other metrics are still worth scraping).
GAUGE_READ_TIMEOUT_S = 2.0


@asynccontextmanager
async def serve_api_metrics(state: AppState) -> AsyncIterator[None]:
    """Listen on METRICS_HOST:API_METRICS_PORT while the app runs (0: not at all)."""
    settings = state.settings
    loop = asyncio.get_running_loop()

    def before_scrape() -> None:
        future = asyncio.run_coroutine_threadsafe(read_scrape_time_gauges(state), loop)
        try:
            future.result(timeout=GAUGE_READ_TIMEOUT_S)
        except TimeoutError:
            future.cancel()

    server = start_metrics_server(settings.metrics_host, settings.api_metrics_port,
                                  metrics_registry(settings.prometheus_multiproc_dir),
                                  before_scrape=before_scrape, reuse_port=bool(settings.prometheus_multiproc_dir))
    try:
        yield
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)


async def read_scrape_time_gauges(state: AppState) -> None:
    """Each shard's queue depth, live workers and whether it answered, labelled with its number; all at once,
    so a shard that is down costs the scrape no more than one timeout."""
    await asyncio.gather(*(_read_shard(state, shard) for shard in state.shards))


async def _read_shard(state: AppState, shard: ShardHandles) -> None:
    horizon_ms = (time.time() - 3 * state.settings.worker_heartbeat_s) * 1000
    label = str(shard.index)
    try:
        QUEUE_DEPTH.labels(label).set(await shard.queue.ready_depth())
        WORKERS.labels(label).set(await shard.redis.zcount(WORKERS_KEY, horizon_ms, "+inf"))
        REDIS_SHARD_UP.labels(label).set(1)
    except (OSError, RedisError) as exc:
        REDIS_SHARD_UP.labels(label).set(0)
        logger.debug("queue gauges of shard %s not read: %s", label, type(exc).__name__)
