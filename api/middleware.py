"""Pure ASGI middleware (no buffering, so SSE streams pass through untouched): gives every request an id
(honouring a sane `X-Request-ID`, returning it), writes one JSON access-log line, and records the request
metrics of the provider-bound routes (each labelled with its `Endpoint`, known from the path even when the
body is refused) once the response, streamed or not, has finished. Routes leave the other labels (tenant,
model, provider, provider time) in the request's `RequestContext`."""

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.request_context import RequestContext, scope_context
from shared.endpoint import Endpoint
from shared.logs import REQUEST_ID
from shared.metrics import ACTIVE_REQUESTS, GATEWAY_OVERHEAD, REQUEST_DURATION, REQUESTS

logger = logging.getLogger("api.access")

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
TRACKED_PATHS: dict[str, Endpoint] = {
    "/v1/chat/completions": Endpoint.CHAT, "/v1/messages": Endpoint.CHAT, "/api/v1/completions": Endpoint.CHAT,
    "/api/v1/jobs": Endpoint.CHAT, "/v1/responses": Endpoint.CHAT, "/v1/embeddings": Endpoint.EMBEDDINGS,
    "/v1/completions": Endpoint.COMPLETIONS, "/v1/messages/count_tokens": Endpoint.COUNT_TOKENS,
}


class GatewayMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = REQUEST_ID.set(request_id)
        context = scope_context(scope)
        context.request_id = request_id
        status = {"code": 500}
        started = time.perf_counter()
        endpoint = TRACKED_PATHS.get(scope["path"]) if scope["method"] == "POST" else None

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        if endpoint is not None:
            ACTIVE_REQUESTS.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            if endpoint is not None:
                ACTIVE_REQUESTS.dec()
                _observe(context, endpoint, status["code"], elapsed)
            _access_log(scope, context, status["code"], elapsed)
            REQUEST_ID.reset(token)


def _request_id(scope: Scope) -> str:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if REQUEST_ID_PATTERN.match(candidate):
                return candidate
    return uuid.uuid4().hex


def _observe(context: RequestContext, endpoint: Endpoint, status: int, elapsed: float) -> None:
    model = context.model or "unknown"
    REQUESTS.labels(context.tenant_id or "unauthenticated", model, context.provider or "none", str(status),
                    endpoint).inc()
    REQUEST_DURATION.labels(model, "true" if context.stream else "false", endpoint).observe(elapsed)
    if context.provider_s is not None:
        GATEWAY_OVERHEAD.labels(model).observe(max(0.0, elapsed - context.provider_s))


def _access_log(scope: Scope, context: RequestContext, status: int, elapsed: float) -> None:
    logger.info("%s %s %d", scope["method"], scope["path"], status, extra={
        "status": status, "duration_ms": round(elapsed * 1000, 2), "tenant_id": context.tenant_id,
        "job_id": context.job_id, "method": scope["method"], "path": scope["path"],
    })
