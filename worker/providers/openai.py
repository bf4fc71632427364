"""OpenAI adapter: the `Provider` protocol over the official async SDK, with `shared.wire.openai`
doing all translation. SDK retries are off (the gateway owns retries) and every SDK or transport failure
leaves as a `shared.errors.UpstreamError`."""

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import openai

from shared.errors import UpstreamTimeout, UpstreamUnavailable
from shared.models import ChatRequest, Completion, Delta
from shared.routing_table import Target
from shared.wire.openai import parse_chunk, parse_completion, render_request
from worker.providers._common import HTTP_ERRORS, HTTP_TIMEOUTS, ClientPool, StreamTotals, status_error

__all__ = ["DEFAULT_BASE_URL", "OpenAIProvider"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
NAME = "openai"


class OpenAIProvider:
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
            key_env="OPENAI_API_KEY",
            api_key=api_key,
            base_url=base_url,
            timeout_s=timeout_s,
            api_key_lookup=api_key_lookup,
        )

    async def complete(self, request: ChatRequest, target: Target) -> Completion:
        client = self._clients.client_for(target)
        kwargs = render_request(request.model_copy(update={"stream": False}), target.model)
        async with _map_errors():
            response = await client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
        return parse_completion(response.model_dump(), NAME)

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[Delta]:
        """Text deltas as they come, then one delta with the finish reason and usage: OpenAI sends the usage
        chunk after the finish chunk, so the final delta is emitted once the stream has ended."""
        client = self._clients.client_for(target)
        kwargs = render_request(request.model_copy(update={"stream": True}), target.model)
        totals = StreamTotals(NAME)
        async with _map_errors():
            chunks = await client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
            async with chunks:  # closes the HTTP stream however this generator ends
                async for chunk in chunks:
                    delta = parse_chunk(chunk.model_dump())
                    if delta is None:
                        continue
                    totals.add(delta)
                    if delta.text:
                        yield Delta(text=delta.text)
        yield totals.final()

    async def aclose(self) -> None:
        await self._clients.aclose()


def _make_client(base_url: str | None, api_key: str, timeout_s: float) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=api_key, base_url=base_url or DEFAULT_BASE_URL, timeout=timeout_s, max_retries=0)


@asynccontextmanager
async def _map_errors() -> AsyncIterator[None]:
    """SDK and transport exceptions as gateway errors, most specific first."""
    try:
        yield
    except openai.APIStatusError as exc:
        raise status_error(NAME, exc.status_code, _message(exc), exc.response.headers) from exc
    except openai.APITimeoutError as exc:
        raise UpstreamTimeout(f"{NAME} request timed out") from exc
    except openai.APIConnectionError as exc:
        raise UpstreamUnavailable(f"{NAME} connection failed: {_cause(exc)}") from exc
    except openai.APIError as exc:  # e.g. an error object sent in the middle of a stream
        raise UpstreamUnavailable(f"{NAME} stream failed: {exc.message}") from exc
    except HTTP_TIMEOUTS as exc:
        raise UpstreamTimeout(f"{NAME} request timed out") from exc
    except HTTP_ERRORS as exc:
        raise UpstreamUnavailable(f"{NAME} connection failed: {exc!r}") from exc


def _message(exc: openai.APIStatusError) -> str:
    """The provider's own error message when the body has one, else the SDK's summary."""
    body = exc.body
    message = body.get("message") if isinstance(body, Mapping) else None
    return message if isinstance(message, str) and message else exc.message


def _cause(exc: Exception) -> str:
    cause = exc.__cause__
    return f"{exc} ({cause!r})" if cause is not None else str(exc)
