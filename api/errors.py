"""The one place errors become HTTP responses: gateway errors, validation errors, unknown routes and
anything unexpected, rendered in the error shape of the route's wire format (Anthropic's on /v1/messages,
OpenAI's elsewhere)."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import GatewayError, InvalidRequest, NotFound, ServiceUnavailable
from shared.json_input import escape_text
from shared.wire import anthropic as anthropic_wire
from shared.wire import openai as openai_wire

logger = logging.getLogger(__name__)


def error_response(request: Request, error: GatewayError) -> JSONResponse:
    wire = anthropic_wire if request.url.path.startswith("/v1/messages") else openai_wire
    # Rate-limit headers go on every answer to an admitted or refused request, errors included.
    headers: dict[str, str] = {**getattr(request.state, "gateway_headers", {}), **getattr(error, "headers", {})}
    retry_after = getattr(error, "retry_after_s", None)
    if retry_after is not None:
        headers["retry-after"] = str(max(1, round(retry_after)))
    # A message that quotes client input must still encode to UTF-8: an error about an error is a 500.
    error.message = escape_text(error.message)
    return JSONResponse(wire.render_error(error), status_code=error.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _on_gateway_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)  # type: ignore[arg-type]
    app.add_exception_handler(RedisError, _on_dependency_down)
    app.add_exception_handler(SQLAlchemyError, _on_dependency_down)
    app.add_exception_handler(OSError, _on_dependency_down)
    app.add_exception_handler(Exception, _on_unexpected)


async def _on_gateway_error(request: Request, error: GatewayError) -> JSONResponse:
    return error_response(request, error)


async def _on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in item.get('loc', ()))}: {item.get('msg', 'invalid')}" for item in error.errors()
    )
    return error_response(request, InvalidRequest(f"Invalid request: {problems}"))


async def _on_http_exception(request: Request, error: StarletteHTTPException) -> JSONResponse:
    if error.status_code == 404:
        return error_response(request, NotFound(f"Unknown path: {request.method} {request.url.path}"))
    gateway_error = InvalidRequest(str(error.detail), status=error.status_code, code=f"http_{error.status_code}")
    return error_response(request, gateway_error)


async def _on_dependency_down(request: Request, error: Exception) -> JSONResponse:
    logger.error("dependency unavailable on %s: %s", request.url.path, type(error).__name__)
    return error_response(request, ServiceUnavailable("A backing service (Redis or the database) is unavailable"))


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s", request.url.path)
    return error_response(request, GatewayError("Internal error"))
