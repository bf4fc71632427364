"""The `llm-gateway` command: the composition root, and the one module that may import both `api` and
`worker` (for the embedded single-process mode). Each subcommand only wires existing pieces together;
`tenants` and `usage` live in `cli.tenants`, `keys` in `cli.keys`."""

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from cli.admin_key_args import add_parsers as add_admin_key_parsers
from cli.key_args import add_key_parsers
from cli.tenant_args import add_parsers as add_tenant_parsers
from shared.config import Settings
from shared.logs import configure_logging

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"llm-gateway: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json_format=settings.resolved_log_format == "json")
    # Alembic announces each plugin it loads at INFO, now that commands import it after logging is set up.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    handler = {"serve": _serve, "worker": _worker, "migrate": _migrate, "fake-provider": _fake_provider,
               "tenants": _tenants, "usage": _tenants, "keys": _keys, "admin-keys": _admin_keys}
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
    add_tenant_parsers(sub)
    add_admin_key_parsers(sub)
    add_key_parsers(sub)
    return parser


# Each command imports what it runs on use: a worker process must not load FastAPI, uvicorn, Alembic or
# SQLAlchemy (tens of MiB of its memory), and `tenants` should not wait for the provider SDKs.


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from cli.serve import serve

    return serve(args, settings)


def _tenants(args: argparse.Namespace, settings: Settings) -> int:
    from cli.tenants import run

    return run(args, settings)


def _admin_keys(args: argparse.Namespace, settings: Settings) -> int:
    from cli.admin_keys import run

    return run(args, settings)


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from cli.keys import run

    return run(args, settings)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    if settings.embedded:
        print("llm-gateway worker: set REDIS_URL (or REDIS_HOST) so the worker can reach the API's queue; "
              "without it, `llm-gateway serve` runs a worker in-process", file=sys.stderr)
        return 2
    from worker.main import run_worker

    run_worker(settings)
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from shared.db.migrate import run_migrations

    run_migrations(settings.resolved_database_url)
    print(f"migrations applied to {settings.resolved_database_url.split('@')[-1]}")
    return 0


def _fake_provider(args: argparse.Namespace, settings: Settings) -> int:
    from shared.fake_provider import FakeProviderConfig, serve

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
