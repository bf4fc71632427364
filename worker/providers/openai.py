"""OpenAI adapter: the `Provider` protocol over the official async SDK, with `shared.wire.openai`
doing all translation. SDK retries are off (the gateway owns retries) and every SDK or transport failure
leaves as a `shared.errors.UpstreamError`.

The SDK client still builds and sends every request (auth, base URL, timeouts, and its mapping of error statuses
to `APIStatusError`), but through its own `post` with a body encoded once (`worker.providers.sdk_post`), so it
runs no per-call parameter transform and never parses the body into pydantic models: the JSON goes straight
to the wire translators, and streams are decoded by `worker.providers.sse`. That per-chunk model parsing was
the largest CPU cost of a streaming worker, the transform a quarter of a plain call's."""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing, asynccontextmanager

import openai

from shared.endpoint_requests import EmbeddingRequest, TextCompletionRequest
from shared.errors import UpstreamUnavailable
from shared.models import ChatRequest, Completion, Delta, FinishReason
from shared.routing_table import Target
from shared.wire.openai import parse_chunk, parse_completion, render_request
from shared.wire.openai_embeddings import parse_embedding_response, render_embedding_request
from shared.wire.openai_text_completions import (
    parse_text_chunk,
    parse_text_completion,
    render_text_completion_request,
)
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

__all__ = ["DEFAULT_BASE_URL", "OpenAIProvider"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
NAME = "openai"

DRAIN_TIMEOUT_S = 0.1
"""How long to wait for the rest of the body after `[DONE]`: reading it to the end lets HTTP/1.1 reuse the
connection (as the SDK does); a server that holds the stream open longer only costs that connection."""
DRAIN_ERRORS: tuple[type[Exception], ...] = (TimeoutError, *HTTP_ERRORS)

BEARER_AUTH = {"bearer_auth": True}
"""The `security` option the SDK's resource methods pass: the API key as a bearer token, no admin key."""


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

    async def complete(self, request: ChatRequest, target: Target, *, drop: frozenset[str] = frozenset()) -> Completion:
        client = self._clients.client_for(target)
        kwargs = render_request(request.model_copy(update={"stream": False}), target.model, drop=drop)
        async with _map_errors():
            response = await post_json(client.post, "/chat/completions", kwargs, security=BEARER_AUTH)
        return parse_completion(json_object(NAME, response.content, "response"), NAME)

    async def stream(self, request: ChatRequest, target: Target, *,
                     drop: frozenset[str] = frozenset()) -> AsyncGenerator[Delta, None]:
        """Every delta as it comes (text, refusal, tool-call pieces, logprobs), then one delta with the finish
        reason and usage: OpenAI sends the usage chunk after the finish chunk, so the final delta is emitted
        once the stream has ended. A streamed refusal finishes `stop`, as a whole answer's does, and becomes
        `FinishReason.REFUSAL` the same way (`shared.wire.openai_response.parse_completion`)."""
        client = self._clients.client_for(target)
        kwargs = render_request(request.model_copy(update={"stream": True}), target.model, drop=drop)
        totals = StreamTotals(NAME)
        refused = False
        # The last two contexts close the HTTP stream however this generator ends (consumed, closed, cancelled).
        async with (
            _map_errors(),
            stream_json(client.post, "/chat/completions", kwargs, security=BEARER_AUTH) as response,
            aclosing(aiter_events(response.aiter_bytes())) as events,
        ):
            async for event in events:
                if event.data.startswith("[DONE]"):
                    if response.http_version == "HTTP/1.1":
                        await _drain(events)
                    break
                for delta in parse_chunk(_chunk(event)):
                    if delta.finish_reason is not None or delta.usage is not None:
                        totals.add(delta)
                        continue
                    refused = refused or bool(delta.refusal)
                    yield delta
        final = totals.final()
        if refused and final.finish_reason == FinishReason.STOP:
            final = final.model_copy(update={"finish_reason": FinishReason.REFUSAL})
        yield final

    async def embed(self, request: EmbeddingRequest, target: Target) -> Completion:
        """Embeddings (`embeddings.create`'s endpoint); the raw JSON keeps base64 vectors as sent."""
        client = self._clients.client_for(target)
        arguments = render_embedding_request(request, target.model)
        async with _map_errors():
            response = await post_json(client.post, "/embeddings", arguments, security=BEARER_AUTH)
        return parse_embedding_response(json_object(NAME, response.content, "response"), NAME)

    async def complete_text(self, request: TextCompletionRequest, target: Target) -> Completion:
        """A legacy text completion (`completions.create`'s endpoint)."""
        client = self._clients.client_for(target)
        arguments = render_text_completion_request(request, target.model, stream=False)
        async with _map_errors():
            response = await post_json(client.post, "/completions", arguments, security=BEARER_AUTH)
        return parse_text_completion(json_object(NAME, response.content, "response"), NAME)

    async def stream_text(self, request: TextCompletionRequest, target: Target) -> AsyncGenerator[Completion, None]:
        """A streamed legacy completion: each chunk as a partial `Completion` (its choices' new text), the
        usage on the last one."""
        client = self._clients.client_for(target)
        arguments = render_text_completion_request(request, target.model, stream=True)
        async with (
            _map_errors(),
            stream_json(client.post, "/completions", arguments, security=BEARER_AUTH) as response,
            aclosing(aiter_events(response.aiter_bytes())) as events,
        ):
            async for event in events:
                if event.data.startswith("[DONE]"):
                    break
                yield parse_text_chunk(_chunk(event), NAME)

    async def aclose(self) -> None:
        await self._clients.aclose()


def _chunk(event: ServerSentEvent) -> dict[str, object]:
    """One chunk's JSON. OpenAI reports a failure mid-stream as a data object with an `error` key."""
    data = json_object(NAME, event.data, "stream event")
    error = data.get("error")
    if error:
        message = error_message(error, "An error occurred during streaming")
        raise UpstreamUnavailable(f"{NAME} stream failed: {message}")
    return data


async def _drain(events: AsyncIterator[ServerSentEvent]) -> None:
    """Read what follows `[DONE]` for a moment; the answer is complete, so failures here are not errors."""
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            async for _ in events:
                pass
    except DRAIN_ERRORS:
        pass


def _make_client(base_url: str | None, api_key: str, timeout_s: float) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=api_key, base_url=base_url or DEFAULT_BASE_URL, timeout=timeout_s, max_retries=0,
                              http_client=openai.DefaultAioHttpClient(limits=UPSTREAM_LIMITS))


@asynccontextmanager
async def _map_errors() -> AsyncIterator[None]:
    """SDK and transport exceptions as gateway errors, most specific first. The adapter reads a stream's body
    itself, so transport errors raised while doing so arrive unwrapped, hence the httpx clauses."""
    try:
        yield
    except openai.APIStatusError as exc:
        raise status_error(NAME, exc.status_code, _message(exc), exc.response.headers) from exc
    except openai.APITimeoutError as exc:
        raise timeout_error(NAME, exc) from exc
    except openai.APIConnectionError as exc:
        raise UpstreamUnavailable(f"{NAME} connection failed: {_cause(exc)}") from exc
    except openai.APIError as exc:
        raise UpstreamUnavailable(f"{NAME} stream failed: {exc.message}") from exc
    except HTTP_TIMEOUTS as exc:
        raise timeout_error(NAME, exc) from exc
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
