"""Reads a request's JSON body within the size limit, so malformed or oversized input gets a clear 4xx in
the route's error shape instead of FastAPI's default validation errors."""

import json

from fastapi import Request

from shared.errors import InvalidRequest, PayloadTooLarge


async def read_json_object(request: Request, max_bytes: int) -> dict[str, object]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"Request body of {declared} bytes exceeds the limit of {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"Request body exceeds the limit of {max_bytes} bytes")
    if not body:
        raise InvalidRequest("Request body is empty; expected a JSON object")
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"Malformed JSON body: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("Request body must be a JSON object")
    return value
