"""Every error the gateway raises or maps, as one tree. Routes render them through the wire module of the
request's format; routing decides fallback from `retryable` alone.

    GatewayError
    ├── RequestError                 the client's fault; never retried, never falls back
    │   ├── InvalidRequest           400 invalid_request_error
    │   ├── AuthenticationFailed     401 authentication_error
    │   ├── PermissionDenied         403 permission_error
    │   ├── NotFound                 404 not_found_error
    │   ├── ModelNotFound            404 model_not_found
    │   ├── Conflict                 409 conflict
    │   ├── PayloadTooLarge          413 request_too_large
    │   ├── RateLimited              429 rate_limit_exceeded (gateway's own limits)
    │   └── BudgetExceeded           402 budget_exceeded, with the period's reset time
    ├── UpstreamError                a provider's answer, mapped
    │   ├── UpstreamRateLimited      429, retryable, may carry retry_after_s
    │   ├── UpstreamUnavailable      5xx or connection failure, retryable
    │   ├── UpstreamTimeout          504, retryable
    │   ├── ProviderNotConfigured    no key for the target's provider: next target at once
    │   ├── UpstreamRejected         the provider's own 4xx, returned to the client as is
    │   └── StreamInterrupted        failure after the first token: never falls back
    ├── AllTargetsFailed             502 when every target of a route failed or its breaker is open
    ├── JobCancelled                 499-like; the job was cancelled
    └── ServiceUnavailable           503, a dependency of the gateway is down
"""

__all__ = [
    "AllTargetsFailed",
    "AuthenticationFailed",
    "BudgetExceeded",
    "Conflict",
    "GatewayError",
    "InvalidRequest",
    "JobCancelled",
    "ModelNotFound",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "ProviderNotConfigured",
    "RateLimited",
    "RequestError",
    "ServiceUnavailable",
    "StreamInterrupted",
    "UnsupportedParameter",
    "UpstreamError",
    "UpstreamRateLimited",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "error_from_dict",
]


class GatewayError(Exception):
    """`retry_after_s` becomes the answer's `Retry-After` (a class default where a kind always has one);
    `headers` are extra response headers the error's answer must carry (rate-limit state, `connection`)."""

    status: int = 500
    type: str = "api_error"
    code: str = "internal_error"
    retryable: bool = False
    retry_same_target: bool = True
    retry_after_s: float | None = None

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = {}
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, object]:
        """Plain form carried through Redis from worker to API (see `error_from_dict`)."""
        data: dict[str, object] = {"kind": type(self).__name__, "message": self.message, "status": self.status,
                                   "code": self.code}
        if self.retry_after_s is not None:
            data["retry_after_s"] = self.retry_after_s
        return data


class RequestError(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class InvalidRequest(RequestError):
    pass


class UnsupportedParameter(InvalidRequest):
    """A parameter no target of the route can honour (and dropping it was not allowed): the answer names it
    and says why, instead of the gateway changing the request behind the client's back."""

    code = "unsupported_parameter"

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"'{param}' cannot be honoured by any target of this model: {reason}. Allow dropping it "
                         f"with the 'x-gateway-drop-params: {param}' header, or 'drop_params' in the routes file")
        self.param = param
        self.reason = reason


class AuthenticationFailed(RequestError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(RequestError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class NotFound(RequestError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class ModelNotFound(NotFound):
    type = "invalid_request_error"
    code = "model_not_found"


class Conflict(RequestError):
    status = 409
    type = "conflict_error"
    code = "conflict"


class PayloadTooLarge(RequestError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(RequestError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class BudgetExceeded(RequestError):
    status = 402
    type = "budget_exceeded"
    code = "budget_exceeded"

    def __init__(self, message: str, *, reset_at: str | None = None) -> None:
        super().__init__(message)
        self.reset_at = reset_at


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "upstream_rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    retryable = True


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"
    retryable = True


class ProviderNotConfigured(UpstreamError):
    """The target's provider has no API key here: skip to the next target at once, no retry, no breaker."""

    code = "provider_key_missing"
    retryable = True
    retry_same_target = False


class UpstreamRejected(UpstreamError):
    """The provider refused the request itself (a 4xx other than 429): the client's error, passed through."""

    type = "invalid_request_error"
    code = "upstream_rejected"


class StreamInterrupted(UpstreamError):
    code = "stream_interrupted"


class AllTargetsFailed(GatewayError):
    # 502, not 503: the gateway is up; what failed is every upstream behind it (429/504 kept, see routing).
    status = 502
    type = "upstream_error"
    code = "all_targets_failed"


class JobCancelled(GatewayError):
    status = 409
    type = "cancelled"
    code = "job_cancelled"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "service_unavailable"
    retry_after_s = 2.0  # a dependency restarting is usually back within seconds


class RedisUnavailable(ServiceUnavailable):
    """The Redis holding this request's tenant (its shard, docs/SHARDING.md) does not answer: refused at once,
    while the tenants of the other shards are served."""

    code = "redis_unavailable"

    def __init__(self, message: str = "Redis is unavailable for this tenant (its shard does not answer); retry "
                                      "shortly") -> None:
        super().__init__(message)


_KINDS: dict[str, type[GatewayError]] = {
    cls.__name__: cls
    for cls in (
        GatewayError, InvalidRequest, AuthenticationFailed, PermissionDenied, NotFound, ModelNotFound,
        Conflict, PayloadTooLarge, RateLimited, BudgetExceeded, UpstreamError, UpstreamRateLimited, UpstreamUnavailable,
        UpstreamTimeout, UpstreamRejected, ProviderNotConfigured, StreamInterrupted, AllTargetsFailed, JobCancelled,
        ServiceUnavailable, RedisUnavailable, UnsupportedParameter,
    )
}


def error_from_dict(data: dict[str, object]) -> GatewayError:
    """Rebuild an error written by a worker with `GatewayError.to_dict`."""
    cls = _KINDS.get(str(data.get("kind")), GatewayError)
    status = data.get("status")
    code = data.get("code")
    error = cls.__new__(cls)
    GatewayError.__init__(
        error,
        str(data.get("message", "error")),
        status=status if isinstance(status, int) else None,
        code=code if isinstance(code, str) else None,
    )
    retry_after = data.get("retry_after_s")
    if isinstance(retry_after, int | float):
        error.retry_after_s = float(retry_after)
    return error
