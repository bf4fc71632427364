"""The `llm-gateway` command: the composition root, and the one module that may import both `api` and
`worker` (for the embedded single-process mode). Each subcommand only wires existing pieces together;
`tenants` and `usage` live in `cli.tenants`."""

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import uvicorn
from pydantic import ValidationError

from api.deps import AppState
from api.http_protocol import GatewayHttpProtocol, protocol_class
from api.main import create_app
from cli import tenants
from shared.config import Settings
from shared.db.migrate import run_migrations
from shared.fake_provider import FakeProviderConfig, serve
from shared.fake_provider import create_app as create_fake_app
from shared.logs import configure_logging
from shared.redis import create_redis

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"llm-gateway: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json_format=settings.log_format == "json")
    handler = {"serve": _serve, "worker": _worker, "migrate": _migrate, "fake-provider": _fake_provider,
               "tenants": tenants.run, "usage": tenants.run}
    return handler[args.command](args, settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-gateway", description="Multi-tenant LLM gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_cmd = sub.add_parser("serve", help="run the HTTP API (with an in-process worker when embedded)")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--workers", type=int, default=1, help="API processes (distributed mode only)")
    sub.add_parser("worker", help="run a job worker (needs REDIS_URL or REDIS_HOST)")
    sub.add_parser("migrate", help="apply database migrations")
    fake = sub.add_parser("fake-provider", help="run the fake OpenAI/Anthropic upstream")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=18000)
    fake.add_argument("--latency-ms", type=float, default=0.0)
    fake.add_argument("--inter-token-ms", type=float, default=0.0)
    fake.add_argument("--tokens", type=int, default=12)
    fake.add_argument("--fail-rate", type=float, default=0.0)
    fake.add_argument("--fail-status", type=int, default=503)
    fake.add_argument("--fail-model", action="append", default=[], metavar="MODEL=STATUS")
    tenants.add_parsers(sub)
    return parser


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.embedded:
        if args.workers > 1 and not settings.prometheus_multiproc_dir:
            print("llm-gateway serve: --workers > 1 needs PROMETHEUS_MULTIPROC_DIR (an empty directory) so that "
                  "/metrics adds up every process", file=sys.stderr)
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


def _http_options(settings: Settings, workers: int = 1) -> dict[str, object]:
    """Hostile-client limits of the HTTP server: httptools (uvicorn's fast parser) with the request-head
    size limit (`MAX_HEADER_BYTES`, 431) and head read deadline (`HEADER_READ_TIMEOUT_S`, 408) of
    `api.http_protocol`. Worker processes get the class by name and read the limits from their environment.
    Idle keep-alive connections: `KEEP_ALIVE_TIMEOUT_S`; slow bodies are cut off by the app
    (`BODY_READ_TIMEOUT_S`, api/body.py)."""
    protocol = (GatewayHttpProtocol if workers > 1
                else protocol_class(settings.max_header_bytes, settings.header_read_timeout_s))
    return {"http": protocol, "timeout_keep_alive": settings.keep_alive_timeout_s}


@asynccontextmanager
async def _embedded_worker(state: AppState) -> AsyncIterator[None]:
    from worker.main import build_worker  # imported on use: see `_worker`

    worker = build_worker(state.settings, state.redis, handle_signals=False, embedded=True)
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


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    if settings.embedded:
        print("llm-gateway worker: set REDIS_URL (or REDIS_HOST) so the worker can reach the API's queue; "
              "without it, `llm-gateway serve` runs a worker in-process", file=sys.stderr)
        return 2
    # Imported on use: it loads both provider SDKs, seconds that `tenants` and `usage` should not wait for.
    from worker.main import run_worker

    run_worker(settings)
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    run_migrations(settings.resolved_database_url)
    print(f"migrations applied to {settings.resolved_database_url.split('@')[-1]}")
    return 0


def _fake_provider(args: argparse.Namespace, settings: Settings) -> int:
    fail_models: dict[str, int] = {}
    for item in args.fail_model:
        model, _, status = item.partition("=")
        if not status.isdigit():
            print(f"llm-gateway fake-provider: --fail-model expects MODEL=STATUS, got {item!r}", file=sys.stderr)
            return 2
        fail_models[model] = int(status)
    config = FakeProviderConfig(
        latency_ms=args.latency_ms, inter_token_ms=args.inter_token_ms, token_count=args.tokens,
        fail_rate=args.fail_rate, fail_status=args.fail_status, fail_models=fail_models,
    )
    asyncio.run(serve(args.host, args.port, config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
