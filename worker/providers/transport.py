"""The HTTP transport under both SDK clients: the SDKs' own aiohttp transport (`openai.DefaultAioHttpClient`,
`anthropic.DefaultAioHttpClient`, their documented `http_client=` option for "improved concurrency
performance", installed with their `aiohttp` extra), built by each adapter's `_make_client` with `UPSTREAM_LIMITS`
(aiohttp's `limit` is its `max_connections`, its `keepalive_timeout` the `keepalive_expiry`; aiohttp keeps every idle
connection up to that limit). This module imports neither SDK: a worker serving one provider never imports the
other's.

Why: the default httpx2/httpcore2 transport was the largest single CPU cost of the gateway (1,519 us of the
worker's CPU per plain request at c16, docs/CAPACITY.md); aiohttp parses HTTP in C. The SDK client above it is
unchanged (an httpx2 client: auth, headers, timeouts, status errors, env proxies through httpx2's mounts), so
only the socket work moves. Measured in docs/PERFORMANCE.md, "Issue 17: the upstream transport".

One correction: the SDKs' vendored transport maps every `aiohttp.ClientConnectionError` that is not a timeout
(connection refused, server disconnected) to `httpx2.ConnectTimeout`, so the SDK raises `APITimeoutError` for a
refused connection. `timeout_error` reads the cause chain so the adapters report it as the connection failure it
is (a 502, not a 504), as they did over httpx2.
"""

import asyncio

import aiohttp

from shared.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

__all__ = ["timeout_error"]


def timeout_error(provider: str, exc: BaseException) -> UpstreamError:
    """The gateway error of an SDK `APITimeoutError` or an httpx2 timeout: a timeout, unless an aiohttp connection
    error that is not a timeout is behind it (aiohttp's own timeouts are `asyncio.TimeoutError` subclasses)."""
    root = _aiohttp_cause(exc)
    if root is None or isinstance(root, asyncio.TimeoutError):
        return UpstreamTimeout(f"{provider} request timed out")
    return UpstreamUnavailable(f"{provider} connection failed: {root!r}")


def _aiohttp_cause(exc: BaseException) -> aiohttp.ClientError | None:
    """The first aiohttp error in `exc`'s cause chain, if any."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, aiohttp.ClientError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None
