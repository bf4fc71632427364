"""OpenAPI descriptions of the request bodies that routes parse by hand (through `shared.wire`), so
`/openapi.json` documents them even though FastAPI does not validate them; and the error and streaming
responses FastAPI cannot know about."""

from typing import Annotated, Any

from fastapi import Path

# Job and tenant ids the gateway issues are `job_<32 hex>` and `ten_<16 hex>`; anything outside this (control
# characters, NUL, which PostgreSQL refuses in text, non-ASCII, kilobytes) is a malformed id: 400, not a lookup.
RESOURCE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
JobId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN, description="a job id, as `POST /api/v1/jobs` returned it")]
TenantId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN, description="a tenant id (`ten_...`)")]

_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]},
        "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
    },
}

CHAT_REQUEST_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["model", "messages"],
            "properties": {
                "model": {"type": "string"},
                "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "top_p": {"type": "number", "minimum": 0, "maximum": 1},
                "max_tokens": {"type": "integer", "minimum": 1},
                "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "stream": {"type": "boolean"},
                "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
                "user": {"type": "string"},
            },
        }}},
    }
}

MESSAGES_REQUEST_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["model", "messages", "max_tokens"],
            "properties": {
                "model": {"type": "string"},
                "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
                "system": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
                "max_tokens": {"type": "integer", "minimum": 1},
                "temperature": {"type": "number", "minimum": 0, "maximum": 1},
                "top_p": {"type": "number", "minimum": 0, "maximum": 1},
                "stop_sequences": {"type": "array", "items": {"type": "string"}},
                "stream": {"type": "boolean"},
            },
        }}},
    }
}


# --- error and streaming responses, added to every operation by `api.main._openapi` ------------------

OPENAI_ERROR_SCHEMA: dict[str, object] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "code"],
        "properties": {
            "message": {"type": "string"},
            "type": {"type": "string"},
            "code": {"type": ["string", "null"]},
            "param": {"type": ["string", "null"]},
        },
    }},
}

ANTHROPIC_ERROR_SCHEMA: dict[str, object] = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"type": "string", "enum": ["error"]},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}, "code": {"type": "string"}},
        },
    },
}

# What each error status means; every operation documents the ones it can answer (`error_statuses`).
ERROR_DESCRIPTIONS: dict[str, str] = {
    "400": "Invalid request",
    "401": "Missing or invalid API key",
    "402": "The tenant's budget is exhausted",
    "403": "The tenant is disabled, or the admin API is",
    "404": "Unknown path, model, job or tenant",
    "405": "Method not allowed on this path",
    "408": "The request body was not received in time (BODY_READ_TIMEOUT_S)",
    "409": "Conflict: the tenant or key name is taken, or the job has already ended",
    "413": "The request body is larger than MAX_BODY_BYTES",
    "429": "Rate limited (the tenant's limits, or every provider's)",
    "500": "Unexpected internal error",
    "502": "The provider failed or refused the request",
    "503": "A backing service (Redis, the database) or every provider is unavailable",
    "504": "No answer in time",
}
COMMON_ERRORS = ("400", "401", "403", "404", "405", "408", "413", "429", "500", "503")
COMPLETION_ERRORS = ("402", "409", "502", "504")
COMPLETION_PATHS = frozenset({"/v1/chat/completions", "/v1/messages", "/api/v1/completions", "/api/v1/jobs"})
# Operations that answer `text/event-stream` (always, or with `"stream": true`).
SSE_ALWAYS = frozenset({"/api/v1/jobs/{job_id}/events"})
SSE_ON_REQUEST = frozenset({"/v1/chat/completions", "/v1/messages", "/api/v1/completions"})
# Before OpenAPI 3.2 (`itemSchema`), a `text/event-stream` schema describes one event, not the whole stream.
SSE_EVENT_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"},
                   "retry": {"type": "integer"}},
}
SSE_CONTENT = {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}}


def error_statuses(path: str) -> tuple[str, ...]:
    # an ended job; a taken tenant name; a taken name of a tenant's active key (issue 15)
    conflicts = path.endswith("/cancel") or path in ("/api/v1/admin/tenants", "/api/v1/admin/tenants/{tenant_id}/keys")
    extra = COMPLETION_ERRORS if path in COMPLETION_PATHS else ("409",) if conflicts else ()
    return tuple(sorted({*COMMON_ERRORS, *extra}))


def document_responses(path: str, responses: dict[str, Any]) -> None:
    """Adds the error statuses and streaming content of the operation at `path` to its `responses`."""
    responses.pop("422", None)
    error_ref = "#/components/schemas/" + ("AnthropicError" if path.startswith("/v1/messages") else "Error")
    for status in error_statuses(path):
        if path == "/health" and status == "503":
            continue  # /health answers 503 with its own report, documented by the route
        responses[status] = {"description": ERROR_DESCRIPTIONS[status],
                             "content": {"application/json": {"schema": {"$ref": error_ref}}}}
    ok = next((status for status in ("200", "201", "202") if status in responses), None)
    if ok is None:
        return
    if path in SSE_ALWAYS:
        responses[ok]["content"] = dict(SSE_CONTENT)
    elif path in SSE_ON_REQUEST:
        responses[ok].setdefault("content", {}).update(SSE_CONTENT)
