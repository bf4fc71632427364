"""The one place errors become HTTP responses: gateway errors, validation errors, unknown routes and
anything unexpected, rendered in the error shape of the matched route's wire format (`api.wire_routes`:
Anthropic's on /v1/messages, OpenAI's elsewhere and on unknown paths). The format comes from the route
object, not the URL, so a route declares its format once and a new path cannot be rendered in the wrong one."""

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.request_context import request_context
from api.wire_routes import RouteFormats
from shared.errors import GatewayError, InvalidRequest, NotFound, RedisUnavailable, ServiceUnavailable
from shared.json_input import escape_text
from shared.wire.codec import codec_for

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=Exception)
Handler = Callable[[Request, E], Awaitable[JSONResponse]]


def error_response(request: Request, error: GatewayError, formats: RouteFormats) -> JSONResponse:
    codec = codec_for(formats.for_request(request))
    # Rate-limit headers go on every answer to an admitted or refused request, errors included.
    headers = {**request_context(request).headers, **error.headers}
    if error.retry_after_s is not None:
        headers["retry-after"] = str(max(1, round(error.retry_after_s)))
    # A message that quotes client input must still encode to UTF-8: an error about an error is a 500.
    error.message = escape_text(error.message)
    return JSONResponse(codec.render_error(error), status_code=error.status, headers=headers)


def install_error_handlers(app: FastAPI, formats: RouteFormats) -> None:
    """`formats` picks each answer's wire format from the route the request matched."""
    app.add_exception_handler(GatewayError, _handler(formats, _as_is))  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _handler(formats, _invalid))  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _handler(formats, _http_error))  # type: ignore[arg-type]
    for dependency_error in (RedisError, SQLAlchemyError, OSError):
        app.add_exception_handler(dependency_error, _handler(formats, _dependency_down))
    app.add_exception_handler(Exception, _handler(formats, _unexpected))


def _handler(formats: RouteFormats, convert: Callable[[Request, E], GatewayError]) -> Handler[E]:
    async def handle(request: Request, error: E) -> JSONResponse:
        return error_response(request, convert(request, error), formats)

    return handle


def _as_is(request: Request, error: GatewayError) -> GatewayError:
    return error


def _invalid(request: Request, error: RequestValidationError) -> GatewayError:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in item.get('loc', ()))}: {item.get('msg', 'invalid')}" for item in error.errors()
    )
    return InvalidRequest(f"Invalid request: {problems}")


def _http_error(request: Request, error: StarletteHTTPException) -> GatewayError:
    if error.status_code == 404:
        return NotFound(f"Unknown path: {request.method} {request.url.path}")
    return InvalidRequest(str(error.detail), status=error.status_code, code=f"http_{error.status_code}")


def _dependency_down(request: Request, error: Exception) -> GatewayError:
    logger.error("dependency unavailable on %s: %s", request.url.path, type(error).__name__)
    if isinstance(error, RedisError):
        return RedisUnavailable()
    return ServiceUnavailable("A backing service (Redis or the database) is unavailable")


def _unexpected(request: Request, error: Exception) -> GatewayError:
    logger.exception("unhandled error on %s", request.url.path)
    return GatewayError("Internal error")
