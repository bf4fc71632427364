"""Which wire format a route speaks, carried by the route object itself. Exception handlers only get the
`Request`, so they read it back from `request.scope["route"]` (set by Starlette's router on a full or a
method-only match) instead of guessing from a hard-coded URL prefix: the format is declared once, where the
route is, and a new route cannot be answered in the wrong shape."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from shared.models import WireFormat


class WireRoute(APIRoute):
    """A route whose answers, errors included, are in `wire_format`; routers pass it as `route_class`."""

    wire_format: ClassVar[WireFormat] = WireFormat.OPENAI


class OpenAIRoute(WireRoute):
    wire_format = WireFormat.OPENAI


class AnthropicRoute(WireRoute):
    wire_format = WireFormat.ANTHROPIC


class ClientChosenRoute(WireRoute):
    """A path both SDKs call (`/v1/models`): its answers and errors are in Anthropic's shape when the request
    carries the `anthropic-version` header every Anthropic client sends, else in OpenAI's."""

    @staticmethod
    def format_for(request: Request) -> WireFormat:
        return WireFormat.ANTHROPIC if "anthropic-version" in request.headers else WireFormat.OPENAI


@dataclass(frozen=True)
class RouteFormats:
    """Decides the wire format of a request's answer from its matched route. A request that matched no
    route (a 404) takes the format of the non-OpenAI route its path extends, so an Anthropic SDK calling an
    endpoint the gateway lacks (`/v1/messages/batches`) gets an error it can parse (docs/API.md, Errors);
    those prefixes are the routes' own declared paths, collected once when the app is built."""

    prefixes: tuple[tuple[str, WireFormat], ...]

    @classmethod
    def of(cls, routes: Iterable[BaseRoute]) -> "RouteFormats":
        return cls(tuple((route.path, route.wire_format) for route in routes
                         if isinstance(route, WireRoute) and route.wire_format is not WireFormat.OPENAI))

    def for_request(self, request: Request) -> WireFormat:
        route = request.scope.get("route")
        if isinstance(route, ClientChosenRoute):
            return route.format_for(request)
        if isinstance(route, WireRoute):
            return route.wire_format
        if route is None:
            path = request.url.path
            return next((fmt for prefix, fmt in self.prefixes if path.startswith(prefix)), WireFormat.OPENAI)
        return WireFormat.OPENAI
