"""Gateway errors in Anthropic's error shape (`{"type": "error", "error": {"type", "message"}}`)."""

from shared.errors import GatewayError

__all__ = ["ERROR_TYPES", "render_error"]

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",  # the SDK's ErrorResponse has no request_too_large type
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def _error_type(error: GatewayError) -> str:
    """Anthropic's error type for one of ours, by HTTP status (timeouts and the rest are api_error)."""
    return ERROR_TYPES.get(error.status, "api_error")


def render_error(error: GatewayError) -> dict[str, object]:
    return {
        "type": "error",
        "error": {"type": _error_type(error), "message": error.message, "code": error.code},
    }
