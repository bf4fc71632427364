"""A transport failure while a stream's body is read, in both forms it can reach an adapter: the raw httpx2
error (what the adapters get today, since they read the body themselves, and what anthropic < 2.17 let
escape from its own stream iterator) and the SDK's APIConnectionError or APITimeoutError raised from it (what
anthropic 2.17's iterator raises). Both forms must leave the adapter as the same retryable gateway error,
before the first delta (routing then retries or falls back) and after it (routing then ends the stream with
StreamInterrupted), so that an SDK upgrade cannot change how a cut stream is handled."""

from collections.abc import AsyncIterator, Callable
from types import ModuleType

import anthropic
import httpx2
import openai
import pytest

from shared.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from shared.models import Delta
from shared.routing_table import Target
from tests.worker.providers.test_raw_bodies import (
    ANTHROPIC_TARGET,
    OPENAI_TARGET,
    REQUEST,
    ScriptedBody,
    anthropic_events,
    data,
    openai_chunk,
    script,
)
from worker.providers import anthropic as anthropic_adapter
from worker.providers import openai as openai_adapter
from worker.providers.anthropic import AnthropicProvider
from worker.providers.openai import OpenAIProvider

Adapter = OpenAIProvider | AnthropicProvider


class FailingBody(ScriptedBody):
    """Sends its chunks, then fails the read with `error`, as a dropped connection does."""

    def __init__(self, chunks: list[bytes], error: Exception) -> None:
        super().__init__(chunks)
        self.error = error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        raise self.error


def cut() -> httpx2.HTTPError:
    return httpx2.RemoteProtocolError(
        "peer closed connection without sending complete message body (incomplete chunked read)"
    )


def read_timeout() -> httpx2.HTTPError:
    return httpx2.ReadTimeout("The read operation timed out")


def wrapped(sdk: ModuleType, cause: httpx2.HTTPError) -> Exception:
    """`cause` as the SDK's stream iterator raises it: a timeout as APITimeoutError, anything else as
    APIConnectionError, each `from` the transport error."""
    request = httpx2.Request("POST", "http://upstream.test")
    if isinstance(cause, httpx2.TimeoutException):
        error: Exception = sdk.APITimeoutError(request=request)
    else:
        error = sdk.APIConnectionError(message=f"Connection to upstream.test failed: {cause}", request=request)
    error.__cause__ = cause
    return error


class Side:
    """One adapter with the chunks that make it yield its first delta, `Delta(text="Hi")`."""

    def __init__(self, sdk: ModuleType, module: ModuleType, target: Target, first_delta: list[bytes]) -> None:
        self.sdk = sdk
        self.module = module
        self.target = target
        self.first_delta = first_delta

    def adapter(self) -> Adapter:
        provider = OpenAIProvider if self.module is openai_adapter else AnthropicProvider
        return provider(api_key="sk", base_url=None, timeout_s=5, api_key_lookup=lambda _: None)


OPENAI = Side(openai, openai_adapter, OPENAI_TARGET, [data(openai_chunk("Hi"))])
ANTHROPIC = Side(anthropic, anthropic_adapter, ANTHROPIC_TARGET, anthropic_events()[:4])

FORMS: dict[str, Callable[[ModuleType, httpx2.HTTPError], Exception]] = {
    "raw": lambda _sdk, cause: cause,
    "wrapped": wrapped,
}


async def deltas_then_error(
    monkeypatch: pytest.MonkeyPatch, side: Side, body: FailingBody
) -> tuple[list[Delta], UpstreamError]:
    script(monkeypatch, side.module, body)
    adapter = side.adapter()
    deltas: list[Delta] = []
    try:
        with pytest.raises(UpstreamError) as caught:
            async for delta in adapter.stream(REQUEST, side.target):
                deltas.append(delta)
    finally:
        await adapter.aclose()
    return deltas, caught.value


@pytest.mark.parametrize("side", [OPENAI, ANTHROPIC], ids=["openai", "anthropic"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("after_first_delta", [False, True], ids=["before-first-delta", "after-first-delta"])
async def test_stream_cut_is_unavailable_raw_or_wrapped(
    monkeypatch: pytest.MonkeyPatch, side: Side, form: str, after_first_delta: bool
) -> None:
    chunks = side.first_delta if after_first_delta else []
    body = FailingBody(chunks, FORMS[form](side.sdk, cut()))
    deltas, error = await deltas_then_error(monkeypatch, side, body)
    assert deltas == ([Delta(text="Hi")] if after_first_delta else [])
    assert type(error) is UpstreamUnavailable and error.retryable
    assert error.message.startswith(f"{side.module.NAME} connection failed: ")
    assert "incomplete chunked read" in error.message
    assert body.closed


@pytest.mark.parametrize("side", [OPENAI, ANTHROPIC], ids=["openai", "anthropic"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("after_first_delta", [False, True], ids=["before-first-delta", "after-first-delta"])
async def test_stream_read_timeout_is_a_timeout_raw_or_wrapped(
    monkeypatch: pytest.MonkeyPatch, side: Side, form: str, after_first_delta: bool
) -> None:
    chunks = side.first_delta if after_first_delta else []
    body = FailingBody(chunks, FORMS[form](side.sdk, read_timeout()))
    deltas, error = await deltas_then_error(monkeypatch, side, body)
    assert deltas == ([Delta(text="Hi")] if after_first_delta else [])
    assert type(error) is UpstreamTimeout and error.retryable
