"""The fake provider's record of the completion requests it received: path, query, headers and JSON body,
newest last, so tests can check that a field or header (`seed`, `anthropic-beta`, an unmodelled field)
reached the upstream. `GET /_requests?model=NAME&limit=N` returns them; `POST /_reset` clears them.
API keys are masked and strings longer than `_MAX_STRING` (base64 payloads) are replaced by their length
and SHA-256, so a few large images do not fill memory; tests check such bytes through the answer instead."""

import hashlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["Recorder", "recorded_requests"]

_MAX_KEPT = 1000
_MAX_STRING = 4096
_SECRET_HEADERS = ("authorization", "x-api-key")


class Recorder:
    def __init__(self) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=_MAX_KEPT)

    def clear(self) -> None:
        self._entries.clear()

    def record(self, request: Request, body: dict[str, Any] | None) -> None:
        headers = {key: "***" if key in _SECRET_HEADERS else value for key, value in request.headers.items()}
        self._entries.append({
            "path": request.url.path,
            "query": dict(request.query_params),
            "headers": headers,
            "model": body.get("model") if body is not None else None,
            "body": _shrunk(body),
        })

    def entries(self, model: str | None, limit: int) -> list[dict[str, Any]]:
        chosen = [entry for entry in self._entries if model is None or entry["model"] == model]
        return chosen[-limit:] if limit > 0 else chosen


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
