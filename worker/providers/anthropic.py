"""Anthropic adapter: the `Provider` protocol over the official async SDK, with `shared.wire.anthropic`
doing all translation. SDK retries are off (the gateway owns retries) and every SDK or transport failure
leaves as a `shared.errors.UpstreamError`."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anthropic

from shared.errors import UpstreamTimeout, UpstreamUnavailable
from shared.models import ChatRequest, Completion, Delta
from shared.routing_table import Target
from shared.wire.anthropic import parse_chunk, parse_completion, render_request
from worker.providers._common import HTTP_ERRORS, HTTP_TIMEOUTS, ClientPool, StreamTotals, status_error

__all__ = ["DEFAULT_BASE_URL", "AnthropicProvider"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
NAME = "anthropic"


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

    async def complete(self, request: ChatRequest, target: Target) -> Completion:
        client = self._clients.client_for(target)
        kwargs = render_request(request.model_copy(update={"stream": False}), target.model)
        async with _map_errors():
            response = await client.messages.create(**kwargs)  # type: ignore[arg-type]
        return parse_completion(response.model_dump(), NAME)

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[Delta]:
        """Text deltas as they come, then one delta merging the prompt tokens of `message_start` with the
        stop reason and output tokens of `message_delta`."""
        client = self._clients.client_for(target)
        kwargs = render_request(request.model_copy(update={"stream": True}), target.model)
        totals = StreamTotals(NAME)
        async with _map_errors():
            events = await client.messages.create(**kwargs)  # type: ignore[arg-type]
            async with events:  # closes the HTTP stream however this generator ends
                async for event in events:
                    delta = parse_chunk(event.model_dump())
                    if delta is None:
                        continue
                    totals.add(delta)
                    if delta.text:
                        yield Delta(text=delta.text)
        yield totals.final()

    async def aclose(self) -> None:
        await self._clients.aclose()


def _make_client(base_url: str | None, api_key: str, timeout_s: float) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key=api_key, base_url=base_url or DEFAULT_BASE_URL, timeout=timeout_s, max_retries=0
    )


@asynccontextmanager
async def _map_errors() -> AsyncIterator[None]:
    """SDK and transport exceptions as gateway errors, most specific first. The SDK lets transport errors
    raised while a stream is read through unwrapped, hence the httpx clauses."""
    try:
        yield
    except anthropic.APIStatusError as exc:
        message = exc.api_message or exc.message
        raise status_error(NAME, exc.status_code, message, exc.response.headers) from exc
    except anthropic.APITimeoutError as exc:
        raise UpstreamTimeout(f"{NAME} request timed out") from exc
    except anthropic.APIConnectionError as exc:
        raise UpstreamUnavailable(f"{NAME} connection failed: {_cause(exc)}") from exc
    except anthropic.APIError as exc:
        raise UpstreamUnavailable(f"{NAME} stream failed: {exc.message}") from exc
    except HTTP_TIMEOUTS as exc:
        raise UpstreamTimeout(f"{NAME} request timed out") from exc
    except HTTP_ERRORS as exc:
        raise UpstreamUnavailable(f"{NAME} connection failed: {exc!r}") from exc


def _cause(exc: Exception) -> str:
    cause = exc.__cause__
    return f"{exc} ({cause!r})" if cause is not None else str(exc)
