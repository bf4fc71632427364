"""Anthropic adapter: the `Provider` protocol over the official async SDK, with `shared.wire.anthropic`
doing all translation. SDK retries are off (the gateway owns retries) and every SDK or transport failure
leaves as a `shared.errors.UpstreamError`.

The SDK client still builds and sends every request (auth, base URL, `anthropic-version`, timeouts, and its
mapping of error statuses to `APIStatusError`), but through its own `post` with a body encoded once
(`worker.providers.sdk_post`), so it never parses the body into pydantic models: the JSON goes straight to
the wire translators, and streams are decoded by `worker.providers.sse`. That per-event model parsing was the
largest CPU cost of a streaming worker."""

import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager

import anthropic

from shared.errors import UpstreamUnavailable
from shared.models import ChatRequest, Completion, Delta, Usage
from shared.routing_table import Target
from shared.wire.anthropic import StreamParser, parse_completion, render_request
from shared.wire.anthropic_count import parse_count, render_count_request
from worker.providers._common import (
    HTTP_ERRORS,
    HTTP_TIMEOUTS,
    UPSTREAM_LIMITS,
    ClientPool,
    StreamTotals,
    error_message,
    json_object,
    status_error,
)
from worker.providers.sdk_post import post_json, stream_json
from worker.providers.sse import ServerSentEvent, aiter_events
from worker.providers.transport import timeout_error

__all__ = ["DEFAULT_BASE_URL", "AnthropicProvider"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
NAME = "anthropic"

SKIPPED_EVENTS = frozenset({None, "ping"})
"""Events the SDK skips too: unnamed ones and keep-alive pings."""

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


class AnthropicProvider:
    name = NAME

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout_s: float,
        api_key_lookup: Callable[[str], str | None],
    ) -> None:
        self._clients = ClientPool(
            _make_client,
            provider=NAME,
            key_env="ANTHROPIC_API_KEY",
            api_key=api_key,
            base_url=base_url,
            timeout_s=timeout_s,
            api_key_lookup=api_key_lookup,
        )

    async def complete(self, request: ChatRequest, target: Target, *, drop: frozenset[str] = frozenset()) -> Completion:
        """`drop`: parameters the route or client allowed leaving out (see `shared.wire.capabilities`); the
        client's `anthropic-beta` values travel in the rendered `extra_headers`."""
        client = self._clients.client_for(target)
        kwargs = render_request(request.model_copy(update={"stream": False}), target.model, drop=drop)
        async with _map_errors():
            response = await post_json(client.post, MESSAGES_PATH, kwargs)
        return parse_completion(json_object(NAME, response.content, "response"), NAME)

    async def count_tokens(self, request: ChatRequest, target: Target, *, drop: frozenset[str]) -> int:
        """Anthropic's own count (`messages.count_tokens`'s endpoint); the JSON goes to the wire module as for
        `complete`."""
        client = self._clients.client_for(target)
        arguments = render_count_request(request, target.model, drop=drop)
        async with _map_errors():
            response = await post_json(client.post, COUNT_TOKENS_PATH, arguments)
        return parse_count(json_object(NAME, response.content, "response"), NAME)

    async def stream(self, request: ChatRequest, target: Target, *,
                     drop: frozenset[str] = frozenset()) -> AsyncGenerator[Delta, None]:
        """Every content delta as it comes (text, thinking and its signature, redacted thinking, tool-call
        pieces), then one delta merging the prompt tokens of `message_start` with the stop reason and output
        tokens of `message_delta`."""
        client = self._clients.client_for(target)
        kwargs = render_request(request.model_copy(update={"stream": True}), target.model, drop=drop)
        totals = StreamTotals(NAME)
        parser = StreamParser()
        ending = Delta()
        # The last two contexts close the HTTP stream however this generator ends (consumed, closed, cancelled).
        async with (
            _map_errors(),
            stream_json(client.post, MESSAGES_PATH, kwargs) as response,
            aclosing(aiter_events(response.aiter_bytes())) as events,
        ):
            async for event in events:
                if event.event in SKIPPED_EVENTS:
                    continue
                for delta in parser.parse(_event(event)):
                    if delta.finish_reason is not None or delta.usage is not None:
                        totals.add(delta)
                        ending = _merge(ending, delta)
                    else:
                        yield delta
        final = totals.final()
        yield final.model_copy(update={"stop_sequence": ending.stop_sequence, "usage": ending.usage or final.usage})

    async def aclose(self) -> None:
        await self._clients.aclose()


def _merge(seen: Delta, delta: Delta) -> Delta:
    """The stop sequence and every usage figure (running totals, so the largest) of a stream so far: the
    final delta carries cache writes and reasoning tokens too, whatever `StreamTotals` keeps."""
    usage = seen.usage
    if delta.usage is not None:
        usage = delta.usage if usage is None else Usage.model_validate(
            {key: max(value, getattr(delta.usage, key)) for key, value in usage.model_dump().items()})
    return Delta(stop_sequence=delta.stop_sequence or seen.stop_sequence, usage=usage)


def _event(event: ServerSentEvent) -> dict[str, object]:
    """One event's JSON. Anthropic reports a failure mid-stream (e.g. `overloaded_error`) as an `error`
    event whose payload is `{"type": "error", "error": {"type": ..., "message": ...}}`."""
    if event.event != "error":
        return json_object(NAME, event.data or "{}", "stream event")
    try:
        body = json.loads(event.data)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    message = error_message(error, event.data or "error event without a payload")
    kind = error.get("type") if isinstance(error, dict) else None
    prefix = f"{kind}: " if isinstance(kind, str) and kind and kind != message else ""
    raise UpstreamUnavailable(f"{NAME} stream error: {prefix}{message}")


def _make_client(base_url: str | None, api_key: str, timeout_s: float) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key=api_key, base_url=base_url or DEFAULT_BASE_URL, timeout=timeout_s, max_retries=0,
        http_client=anthropic.DefaultAioHttpClient(limits=UPSTREAM_LIMITS),
    )


@asynccontextmanager
async def _map_errors() -> AsyncIterator[None]:
    """SDK and transport exceptions as gateway errors, most specific first. The adapter reads a stream's body
    itself, so transport errors raised while doing so arrive unwrapped, hence the httpx clauses."""
    try:
        yield
    except anthropic.APIStatusError as exc:
        message = exc.api_message or exc.message
        raise status_error(NAME, exc.status_code, message, exc.response.headers) from exc
    except anthropic.APITimeoutError as exc:
        raise timeout_error(NAME, exc) from exc
    except anthropic.APIConnectionError as exc:
        raise UpstreamUnavailable(f"{NAME} connection failed: {_cause(exc)}") from exc
    except anthropic.APIError as exc:
        raise UpstreamUnavailable(f"{NAME} stream failed: {exc.message}") from exc
    except HTTP_TIMEOUTS as exc:
        raise timeout_error(NAME, exc) from exc
    except HTTP_ERRORS as exc:
        raise UpstreamUnavailable(f"{NAME} connection failed: {exc!r}") from exc


def _cause(exc: Exception) -> str:
    cause = exc.__cause__
    return f"{exc} ({cause!r})" if cause is not None else str(exc)
