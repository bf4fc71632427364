"""The fake provider's record of the completion requests it received: path, query, headers and JSON body,
newest last, so tests can check that a field or header (`seed`, `anthropic-beta`, an unmodelled field)
reached the upstream. `GET /_requests?model=NAME&limit=N` returns them; `POST /_reset` clears them.
API keys are masked and strings longer than `_MAX_STRING` (base64 payloads) are replaced by their length
and SHA-256, so a few large images do not fill memory; tests check such bytes through the answer instead."""

import hashlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["Recorder", "recorded_requests"]

_MAX_KEPT = 1000
_MAX_STRING = 4096
_LARGE_BODY_BYTES = 65536
_SECRET_HEADERS = ("authorization", "x-api-key")


class Recorder:
    """Keeps what arrived as it came (the ASGI scope's raw fields and the parsed body, which nothing mutates)
    and renders it only when asked: recording costs next to nothing on the benchmark's hot path."""

    def __init__(self) -> None:
        self._entries: deque[tuple[str, bytes, list[tuple[bytes, bytes]], Any]] = deque(maxlen=_MAX_KEPT)

    def clear(self) -> None:
        self._entries.clear()

    def record(self, request: Request, body: dict[str, Any] | None, size: int) -> None:
        scope = request.scope
        kept = _shrunk(body) if size > _LARGE_BODY_BYTES else body
        self._entries.append((scope["path"], scope.get("query_string", b""), list(scope["headers"]), kept))

    def entries(self, model: str | None, limit: int) -> list[dict[str, Any]]:
        chosen = [entry for entry in self._entries if model is None or _model(entry[3]) == model]
        return [_rendered(*entry) for entry in (chosen[-limit:] if limit > 0 else chosen)]


def _model(body: Any) -> Any:
    return body.get("model") if isinstance(body, dict) else None


def _rendered(path: str, query: bytes, raw_headers: list[tuple[bytes, bytes]], body: Any) -> dict[str, Any]:
    headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in raw_headers}
    masked = {key: "***" if key in _SECRET_HEADERS else value for key, value in headers.items()}
    return {"path": path, "query": dict(parse_qsl(query.decode("latin-1"))), "headers": masked,
            "model": _model(body), "body": _shrunk(body)}


def _shrunk(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_STRING:
        return f"<{len(value)} chars sha256:{hashlib.sha256(value.encode()).hexdigest()}>"
    if isinstance(value, dict):
        return {key: _shrunk(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shrunk(item) for item in value]
    return value


def recorded_requests(recorder: Recorder) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        limit = request.query_params.get("limit", "0")
        if not limit.isdigit():
            return JSONResponse({"error": "limit must be a non-negative integer"}, status_code=400)
        return JSONResponse({"requests": recorder.entries(request.query_params.get("model"), int(limit))})

    return endpoint
