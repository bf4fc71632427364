"""`llm-gateway serve`: the HTTP API under uvicorn, and in embedded mode (no REDIS_URL) the worker and the
fake provider in the same process. The one place besides `cli.main` that may import both `api` and `worker`.
Imported only by the `serve` command, so a worker process never loads FastAPI, uvicorn or the API."""

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

import uvicorn

from api.deps import AppState
from api.http_protocol import GatewayHttpProtocol, protocol_class
from api.main import create_app
from shared.config import Settings
from shared.db.migrate import run_migrations
from shared.fake_provider import FakeProviderConfig
from shared.fake_provider import create_app as create_fake_app
from shared.redis import create_redis

__all__ = ["serve"]

logger = logging.getLogger(__name__)


def serve(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.embedded:
        if args.workers > 1 and not settings.prometheus_multiproc_dir:
            print("llm-gateway serve: --workers > 1 needs PROMETHEUS_MULTIPROC_DIR (an empty, writable directory) "
                  "so that the metrics port (API_METRICS_PORT) adds up every process; in a container with a "
                  "read-only root filesystem, mount a tmpfs on /tmp (docker run --read-only --tmpfs /tmp ...)",
                  file=sys.stderr)
            return 2
        if settings.resolved_database_url.startswith("sqlite"):
            run_migrations(settings.resolved_database_url)
        uvicorn.run("api.main:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                    log_level=settings.log_level.lower(), access_log=False, log_config=None,
                    **_http_options(settings, args.workers))
        return 0
    if settings.fake_provider_url is None and not (settings.openai_api_key or settings.anthropic_api_key):
        settings = settings.model_copy(update={"fake_provider_url": f"http://{args.host}:{args.port}/fake"})
    run_migrations(settings.resolved_database_url)
    logger.info("embedded mode: one process, in-process Redis stand-in, database %s",
                settings.resolved_database_url.split("://")[0])
    app = create_app(settings, redis=create_redis(settings), companions=[_embedded_worker])
    if settings.fake_provider_url and settings.fake_provider_url.endswith(f":{args.port}/fake"):
        app.mount("/fake", create_fake_app(FakeProviderConfig()))
    uvicorn.run(app, host=args.host, port=args.port, log_level=settings.log_level.lower(), access_log=False,
                log_config=None, **_http_options(settings))
    return 0


class HttpOptions(TypedDict):
    """The keyword arguments `_http_options` adds to `uvicorn.run`."""

    http: type[GatewayHttpProtocol]
    timeout_keep_alive: int


def _http_options(settings: Settings, workers: int = 1) -> HttpOptions:
    """Hostile-client limits of the HTTP server: httptools (uvicorn's fast parser) with the request-head
    size limit (`MAX_HEADER_BYTES`, 431), head read deadline (`HEADER_READ_TIMEOUT_S`, 408) and connection
    cap (`MAX_CONNECTIONS`, 503) of `api.http_protocol`. Worker processes get the class by name and read the
    limits from their environment. Idle keep-alive connections: `KEEP_ALIVE_TIMEOUT_S`; slow bodies are cut
    off by the app (`BODY_READ_TIMEOUT_S`, api/body.py)."""
    protocol = (GatewayHttpProtocol if workers > 1
                else protocol_class(settings.max_header_bytes, settings.header_read_timeout_s,
                                    settings.max_connections))
    return HttpOptions(http=protocol, timeout_keep_alive=settings.keep_alive_timeout_s)


@asynccontextmanager
async def _embedded_worker(state: AppState) -> AsyncIterator[None]:
    from worker.main import build_worker  # imported on use: see `_worker`

    worker = build_worker(state.settings, state.shards.handles[0].redis, handle_signals=False, embedded=True)
    task = asyncio.create_task(worker.async_run(), name="embedded-worker")
    task.add_done_callback(_report_worker_exit)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()


def _report_worker_exit(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("embedded worker stopped: %r", task.exception())
