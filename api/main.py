"""Builds the FastAPI app: the lifespan opens Redis, the database and the job queue; routers are joined here
and nowhere else. `uvicorn --factory api.main:create_app` runs it directly."""

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from arq.connections import ArqRedis
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from api.console.auth import build_console_config
from api.console.headers import ConsoleHeadersMiddleware
from api.console.pages import PACKAGE_DIR as CONSOLE_DIR
from api.deps import AppState
from api.errors import install_error_handlers
from api.fast_routes import GatewayApp
from api.metrics import serve_api_metrics
from api.middleware import GatewayMiddleware
from api.routes import (
    admin,
    admin_audit,
    admin_budget_alerts,
    admin_credentials,
    admin_keys,
    admin_usage,
    admin_webhooks,
    budget_alerts,
    chat,
    completions,
    console_audit,
    console_auth,
    console_jobs,
    console_keys,
    console_ops,
    console_requests,
    console_tenants,
    console_usage,
    count_tokens,
    embeddings,
    health,
    jobs,
    legacy_completions,
    messages,
    models,
    openai_responses,
    usage,
)
from api.routes.schemas import ANTHROPIC_ERROR_SCHEMA, OPENAI_ERROR_SCHEMA, document_responses
from api.shards import open_shards
from api.wire_routes import RouteFormats
from shared.config import Settings, get_settings
from shared.db.engine import create_engine, create_session_factory
from shared.key_usage import drain_key_use_writes
from shared.logs import configure_logging
from shared.metrics import mark_process_dead, metric_labels
from shared.pricing import load_price_table
from shared.routing_table import load_routing_table
from shared.shard_clients import EMBEDDED_SHARD, ShardClients, open_shard_clients
from shared.tenant_cache import ShardedTenantCache

logger = logging.getLogger(__name__)

Companion = Callable[[AppState], AbstractAsyncContextManager[None]]


def create_app(settings: Settings | None = None, *, redis: ArqRedis | None = None,
               companions: list[Companion] | None = None) -> FastAPI:
    """`companions` run inside the lifespan with the app's state, e.g. an in-process worker (embedded mode)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json_format=settings.resolved_log_format == "json")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            state = await _open_state(settings, redis, stack)
            app.state.gateway = state
            await stack.enter_async_context(state.tenant_cache.listening())  # this process's auth copies
            await stack.enter_async_context(serve_api_metrics(state))
            for companion in companions or []:
                await stack.enter_async_context(companion(state))
            stack.callback(mark_process_dead, settings.prometheus_multiproc_dir)
            logger.info("gateway API ready")
            yield

    app = GatewayApp(title="LLM Gateway", version="0.1.0", lifespan=lifespan)
    modules = (chat, messages, count_tokens, models, completions, openai_responses, embeddings, legacy_completions,
               jobs, usage, admin, admin_keys, admin_usage, admin_webhooks, admin_credentials, admin_audit,
               admin_budget_alerts, budget_alerts, health)
    for module in modules:
        app.include_router(module.router)
    install_error_handlers(app, RouteFormats.of(route for module in modules for route in module.router.routes))
    _add_console(app, settings)
    app.add_middleware(GatewayMiddleware)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _add_console(app: FastAPI, settings: Settings) -> None:
    """The admin console (docs/CONSOLE.md): its pages, its static files, and its security headers."""
    app.state.console = build_console_config(settings)
    for module in (console_auth, console_usage, console_tenants, console_keys, console_requests, console_jobs,
                   console_ops, console_audit):
        app.include_router(module.router)
    app.mount("/console/static", StaticFiles(directory=CONSOLE_DIR / "static"), name="console-static")
    app.add_middleware(ConsoleHeadersMiddleware)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, corrected to what the gateway really answers: validation failures are 400 (OpenAI's
    habit), not 422; every error status an operation can answer is documented with its body, the OpenAI
    error shape (Anthropic's on /v1/messages); streaming operations also answer `text/event-stream`."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        components["Error"] = OPENAI_ERROR_SCHEMA
        components["AnthropicError"] = ANTHROPIC_ERROR_SCHEMA
        for path, item in schema.get("paths", {}).items():
            for operation in item.values():
                document_responses(path, operation.setdefault("responses", {}))
        app.openapi_schema = schema
    return app.openapi_schema


async def _open_state(settings: Settings, redis: ArqRedis | None, stack: AsyncExitStack) -> AppState:
    if redis is None:
        clients = open_shard_clients(settings)
        stack.push_async_callback(clients.aclose)
    else:  # the caller's client (embedded mode, tests): the one shard, closed by the caller
        clients = ShardClients(clients=(redis,), names=(EMBEDDED_SHARD,))
    engine = create_engine(settings.resolved_database_url)
    stack.push_async_callback(engine.dispose)
    stack.push_async_callback(drain_key_use_writes)  # runs first (last in): writes in flight need the engine
    routing_table, prices = load_routing_table(settings), load_price_table(settings)
    return AppState(
        settings=settings,
        shards=open_shards(settings, clients),
        engine=engine,
        sessions=create_session_factory(engine),
        routing_table=routing_table,
        tenant_cache=ShardedTenantCache(clients, ttl_s=settings.auth_cache_ttl_s),
        prices=prices,
        metric_labels=metric_labels(routing_table, prices.models()),
    )
