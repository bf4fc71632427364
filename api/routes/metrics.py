"""Prometheus exposition of the API's metrics (all uvicorn processes when `PROMETHEUS_MULTIPROC_DIR` is set).
Queue depth and live workers are read from Redis at scrape time, so they are current whoever scrapes."""

import time

from fastapi import APIRouter, Response

from api.deps import StateDep
from shared.keys import WORKERS_KEY
from shared.metrics import CONTENT_TYPE_LATEST, QUEUE_DEPTH, WORKERS, render_metrics

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def read_metrics(state: StateDep) -> Response:
    horizon_ms = (time.time() - 3 * state.settings.worker_heartbeat_s) * 1000
    try:
        QUEUE_DEPTH.set(await state.queue.ready_depth())
        WORKERS.set(await state.redis.zcount(WORKERS_KEY, horizon_ms, "+inf"))
    except OSError:
        pass  # Redis down: the other metrics are still worth scraping; /health reports the outage
    body = render_metrics(state.settings.prometheus_multiproc_dir)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
