"""One typed record per request of what the middleware's access log and metrics need from the route (tenant,
model, job, provider and its time) and of the headers an error answer must still carry. It lives in the ASGI
scope's state under one key, because the middleware and the exception handlers see only the scope; functions
that share it with each other get values as parameters, not through it."""

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from starlette.types import Scope

CONTEXT_KEY = "gateway_context"


@dataclass
class RequestContext:
    """Filled as the request goes: `request_id` by the middleware, `tenant_id` by authentication, the rest
    by submission and the answer. `headers` are the rate-limit and cache headers decided at submission."""

    request_id: str | None = None
    tenant_id: str | None = None
    job_id: str | None = None
    model: str | None = None
    stream: bool = False
    provider: str | None = None
    provider_s: float | None = None
    headers: dict[str, str] = field(default_factory=dict)


def scope_context(scope: Scope) -> RequestContext:
    """The request's context, created on first use (an app built without the middleware still works)."""
    state: dict[str, Any] = scope.setdefault("state", {})
    context = state.get(CONTEXT_KEY)
    if not isinstance(context, RequestContext):
        context = state[CONTEXT_KEY] = RequestContext()
    return context


def request_context(request: Request) -> RequestContext:
    return scope_context(request.scope)
