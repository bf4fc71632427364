"""The SDK-independent pieces both provider adapters share: the pool of SDK clients keyed by
(base_url, api_key, timeout), API key resolution, `retry-after` parsing, the mapping of a provider's HTTP
status to a `GatewayError`, the decoding of the raw JSON bodies and events the adapters read past the SDKs'
models (see `worker.providers.sse`), and the totals that become a stream's final delta. """

import json
import math
from collections.abc import Callable, Mapping
from typing import Generic, Protocol, TypeVar

import httpx
import httpx2

from shared.errors import (
    ProviderNotConfigured,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from shared.models import Delta, FinishReason, Usage
from shared.routing_table import Target

__all__ = [
    "HTTP_ERRORS",
    "HTTP_TIMEOUTS",
    "MISSING_KEY_PLACEHOLDER",
    "UPSTREAM_LIMITS",
    "ClientPool",
    "StreamTotals",
    "error_message",
    "json_object",
    "retry_after_s",
    "status_error",
]

MISSING_KEY_PLACEHOLDER = "missing"
"""Sent instead of a key to an explicitly configured base URL (local or fake upstreams need none)."""

# Transport failures the SDKs can let through while a stream is being read (the Anthropic SDK does not
# wrap them). Both httpx flavours, in case `httpx2.alias_httpx()` is not in effect.
HTTP_TIMEOUTS: tuple[type[Exception], ...] = (httpx2.TimeoutException, httpx.TimeoutException)
HTTP_ERRORS: tuple[type[Exception], ...] = (httpx2.HTTPError, httpx.HTTPError)

ApiKeyLookup = Callable[[str], str | None]

UPSTREAM_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=1000, keepalive_expiry=5.0)
"""The pool of each SDK client (one per target). The SDKs' default keeps only 100 idle connections, so with more
calls than that in flight to one target (a worker runs up to `WORKER_MAX_JOBS`, 200 by default) every call past
the hundredth closed its connection after use and the next one opened a new one (bench/provider_call.py at c128:
hundreds of connections opened and closed per thousand calls). Idle connections still close after 5 s, as
httpcore's default."""


class _Closable(Protocol):
    async def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=_Closable)


class ClientPool(Generic[ClientT]):
    """One SDK client per (base_url, api_key, timeout): the adapter's defaults, overridden per target by
    `target.base_url`, `target.api_key_env` and `target.timeout_s`."""

    def __init__(
        self,
        factory: Callable[[str | None, str, float], ClientT],
        *,
        provider: str,
        key_env: str,
        api_key: str | None,
        base_url: str | None,
        timeout_s: float,
        api_key_lookup: ApiKeyLookup,
    ) -> None:
        self._factory = factory
        self._provider = provider
        self._key_env = key_env
        self._api_key = api_key
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._lookup = api_key_lookup
        self._clients: dict[tuple[str | None, str, float], ClientT] = {}

    def client_for(self, target: Target) -> ClientT:
        base_url = target.base_url or self._base_url
        api_key = self._api_key_for(target, base_url)
        timeout_s = target.timeout_s or self._timeout_s
        key = (base_url, api_key, timeout_s)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._factory(base_url, api_key, timeout_s)
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    def _api_key_for(self, target: Target, base_url: str | None) -> str:
        env = target.api_key_env or self._key_env
        api_key = self._lookup(target.api_key_env) if target.api_key_env else self._api_key
        if api_key:
            return api_key
        if base_url:
            return MISSING_KEY_PLACEHOLDER
        raise ProviderNotConfigured(f"No API key configured for {self._provider}: set the {env} environment variable.")


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms`, else `retry-after` in seconds; an HTTP date or junk gives None."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) / scale
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def status_error(provider: str, status: int, message: str, headers: Mapping[str, str]) -> UpstreamError:
    """A provider's HTTP error status as a gateway error (429 and 5xx retryable, other 4xx passed on)."""
    if status == 429:
        return UpstreamRateLimited(f"{provider} rate limit: {message}", retry_after_s=retry_after_s(headers))
    if status == 408:
        return UpstreamTimeout(f"{provider} timed out (HTTP 408): {message}")
    if status in (401, 403):
        # The provider refused the gateway's own credentials: an operator problem, not the client's.
        return UpstreamRejected(f"{provider} refused the gateway's credentials (HTTP {status}): {message}",
                                status=502, code="upstream_auth_failed")
    if 400 <= status < 500:
        return UpstreamRejected(message, status=status)
    if status >= 500:
        return UpstreamUnavailable(f"{provider} returned HTTP {status}: {message}", status=502)
    # An error event inside a successful (200) stream.
    return UpstreamUnavailable(f"{provider} stream error: {message}")


def json_object(provider: str, raw: str | bytes, what: str) -> dict[str, object]:
    """A response body or event payload the provider sent as JSON; anything else (an HTML error page from a
    proxy, a truncated body, a JSON array) is the provider failing, so it raises a retryable error."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        excerpt = text[:200] + ("..." if len(text) > 200 else "")
        raise UpstreamUnavailable(f"{provider} sent a {what} that is not a JSON object: {excerpt!r}")
    return data


def error_message(error: object, fallback: str) -> str:
    """`error.message` of an error object in a stream, else its `type`, else `fallback`."""
    if isinstance(error, Mapping):
        for key in ("message", "type"):
            value = error.get(key)
            if isinstance(value, str) and value:
                return value
    return fallback


class StreamTotals:
    """Collects a stream's finish reason, stop sequence and usage (reported in pieces: Anthropic's
    `message_start` then `message_delta`, OpenAI's last chunk) into its one final delta."""

    USAGE_FIELDS = tuple(Usage.model_fields)

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.finish_reason: FinishReason | None = None
        self.stop_sequence: str | None = None
        self.system_fingerprint: str | None = None
        self.service_tier: str | None = None
        self.usage: dict[str, int] = dict.fromkeys(self.USAGE_FIELDS, 0)

    @property
    def prompt_tokens(self) -> int:
        return self.usage["prompt_tokens"]

    @property
    def completion_tokens(self) -> int:
        return self.usage["completion_tokens"]

    @property
    def cached_prompt_tokens(self) -> int:
        return self.usage["cached_prompt_tokens"]

    def add(self, delta: Delta) -> None:
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason
        if delta.stop_sequence is not None:
            self.stop_sequence = delta.stop_sequence
        self.system_fingerprint = delta.system_fingerprint or self.system_fingerprint
        self.service_tier = delta.service_tier or self.service_tier
        if delta.usage is not None:
            # Providers report running totals, so the largest figure seen is the answer.
            for name in self.USAGE_FIELDS:
                self.usage[name] = max(self.usage[name], getattr(delta.usage, name))

    def final(self) -> Delta:
        """The last delta; a stream that ended without a finish reason was cut short."""
        if self.finish_reason is None:
            raise UpstreamUnavailable(f"{self.provider} stream ended before it finished")
        return Delta(finish_reason=self.finish_reason, stop_sequence=self.stop_sequence, usage=Usage(**self.usage),
                     system_fingerprint=self.system_fingerprint, service_tier=self.service_tier)
