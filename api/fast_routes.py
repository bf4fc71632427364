"""The two hot completion routes (`POST /v1/chat/completions`, `POST /v1/messages`) served without FastAPI's
per-request routing and dependency solving (issue 17; docs/PERFORMANCE.md, "Issue 17: the hot routes").

Why: py-spy on the API under plain requests put FastAPI/Starlette at about 15 % of the API's CPU, most of it
not middleware but the router matching over ~100 routes (plus the included-router layers) and
`solve_dependencies` (signature introspection, cache keys, cookie parsing) for three plain async functions.

How: `GatewayApp.__call__` recognises the exact method and path and hands the request to a copy of the app's
own middleware stack (the same layer objects FastAPI builds: the 500 handler, telemetry's exception hook, the
body limit, `GatewayMiddleware`, `ConsoleHeadersMiddleware`, `ExceptionMiddleware` with the app's handlers)
whose innermost app is `FastRoute` instead of the router. `FastRoute` sets the scope keys the router would
(`route`, so errors keep the route's wire format: api.wire_routes), resolves the route's three dependencies
by calling the same functions FastAPI would (`get_state`, `current_tenant`, `tenant_shard`) and calls the
route's endpoint. Status codes, headers, error bodies, request id, access log and metrics are therefore those
of the FastAPI route, because the same code produces them.

The FastAPI routes stay declared: the OpenAPI document and every other method or path (405, 404, trailing
slash) come from them, and the app falls back to them when dependency overrides or FastAPI's native telemetry
are in use. A fast route whose dependencies are not exactly those three is refused when the stack is built,
so a dependency added to the route later cannot be skipped silently."""

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import current_tenant, get_state, tenant_shard

FAST_PATHS = ("/v1/chat/completions", "/v1/messages")
# The endpoint's parameters: its `Request` and these dependencies, by parameter name.
DEPENDENCIES: Mapping[str, Callable[..., Any]] = {"state": get_state, "shard": tenant_shard, "tenant": current_tenant}


class FastRouteError(RuntimeError):
    """The app's routes or middleware stack are not what the fast path assumes (raised when it is built)."""


class FastRoute:
    """The innermost ASGI app of a fast route: what Starlette's router and FastAPI's `request_response` would
    do for this one route, minus the matching and the generic dependency solving."""

    def __init__(self, app: FastAPI, route: APIRoute) -> None:
        check_dependencies(route)
        self.router, self.route, self.endpoint = app.router, route, route.endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["router"] = self.router
        scope["endpoint"], scope["path_params"], scope["route"] = self.endpoint, {}, self.route
        request = Request(scope, receive, send)
        state = await get_state(request)
        tenant = await current_tenant(request, state)
        shard = await tenant_shard(state, tenant)
        response = await self.endpoint(request=request, state=state, shard=shard, tenant=tenant)
        await response(scope, receive, send)


def check_dependencies(route: APIRoute) -> None:
    """Refuses a route that takes anything but its `Request` and exactly the `DEPENDENCIES`."""
    dependant: Dependant = route.dependant
    declared = {dep.name: dep.call for dep in dependant.dependencies}
    params = (dependant.path_params, dependant.query_params, dependant.header_params, dependant.cookie_params,
              dependant.body_params)
    if (dependant.request_param_name != "request" or any(params) or declared != DEPENDENCIES
            or len(dependant.dependencies) != len(DEPENDENCIES)):
        raise FastRouteError(f"{route.path}: the fast path serves only routes taking (request, state, shard, "
                             f"tenant); this one declares {sorted(map(str, declared))} and other parameters")


def fast_stack(stack: ASGIApp, inner: ASGIApp) -> ASGIApp:
    """A copy of the app's middleware `stack` down to its `ExceptionMiddleware`, whose copy calls `inner`
    instead of the router: the same layer objects (shallow copies, so their handlers and settings are shared),
    relinked."""
    below = getattr(stack, "app", None)
    if below is None:
        raise FastRouteError(f"no ExceptionMiddleware in the app's middleware stack (it ends at {stack!r})")
    layer = copy.copy(stack)
    layer.app = inner if isinstance(stack, ExceptionMiddleware) else fast_stack(below, inner)  # type: ignore[attr-defined]
    return layer


def declared_routes(routes: Sequence[BaseRoute], dependencies: Sequence[Any]) -> Iterator[APIRoute]:
    """The API routes as declared, through included routers that add no prefix and no dependencies (FastAPI
    keeps an included router as one entry holding the original router and how it was included)."""
    if dependencies:
        return
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
            continue
        included, context = getattr(route, "original_router", None), getattr(route, "include_context", None)
        if included is not None and not getattr(context, "prefix", "x"):
            yield from declared_routes(included.routes, [*getattr(context, "dependencies", [None]),
                                                         *included.dependencies])


class GatewayApp(FastAPI):
    """The gateway's FastAPI app, with `FAST_PATHS` served by `FastRoute` (see the module's docstring)."""

    fast_routes: dict[str, ASGIApp] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and self._fast_allowed(scope):
            route = self._fast_routes().get(scope["path"])
            if route is not None:
                scope["app"] = self
                await route(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _fast_allowed(self, scope: Scope) -> bool:
        """Not with a root path (the router strips it before matching), dependency overrides (tests: the
        FastAPI route honours them) or FastAPI's native telemetry (it wraps the whole app)."""
        return (not self.root_path and not scope.get("root_path") and not self.dependency_overrides
                and not self._native_telemetry.enabled())

    def _fast_routes(self) -> dict[str, ASGIApp]:
        """Built at the first request, like Starlette's middleware stack (routes and middleware are final)."""
        if self.fast_routes is None:
            if self.middleware_stack is None:
                self.middleware_stack = self.build_middleware_stack()
            routes = {route.path: route for route in declared_routes(self.router.routes, self.router.dependencies)
                      if route.path in FAST_PATHS and "POST" in (route.methods or ())}
            missing = set(FAST_PATHS) - set(routes)
            if missing:
                raise FastRouteError(f"no POST route for {sorted(missing)}")
            self.fast_routes = {path: fast_stack(self.middleware_stack, FastRoute(self, route))
                                for path, route in routes.items()}
        return self.fast_routes
