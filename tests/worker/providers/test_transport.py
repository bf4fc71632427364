"""`worker.providers.transport.timeout_error`: the SDKs' vendored aiohttp transport reports a refused or dropped
connection as `httpx2.ConnectTimeout`; the gateway still calls it a connection failure, and real timeouts
(aiohttp's are `asyncio.TimeoutError` subclasses, or httpx2's own) stay timeouts."""

import aiohttp
import httpx2
import openai

from shared.errors import UpstreamTimeout, UpstreamUnavailable
from worker.providers.transport import timeout_error


def _chain(root: BaseException) -> openai.APITimeoutError:
    """The exception the SDK raises: `APITimeoutError` from the transport's httpx2 error from `root`."""
    request = httpx2.Request("POST", "http://upstream/v1/chat/completions")
    try:
        try:
            raise root
        except BaseException as exc:
            raise httpx2.ConnectTimeout(str(exc)) from exc
    except httpx2.ConnectTimeout as exc:
        error = openai.APITimeoutError(request=request)
        error.__cause__ = exc
        return error


def test_disconnect_reported_as_connect_timeout_is_a_connection_failure() -> None:
    error = timeout_error("openai", _chain(aiohttp.ServerDisconnectedError()))
    assert isinstance(error, UpstreamUnavailable) and not isinstance(error, UpstreamTimeout)
    assert "openai connection failed" in str(error) and "ServerDisconnectedError" in str(error)


def test_aiohttp_timeouts_stay_timeouts() -> None:
    for root in (aiohttp.ServerTimeoutError("read"), aiohttp.SocketTimeoutError("read"),
                 aiohttp.ConnectionTimeoutError("connect")):
        assert isinstance(timeout_error("anthropic", _chain(root)), UpstreamTimeout), root


def test_timeout_without_aiohttp_cause_stays_a_timeout() -> None:
    assert isinstance(timeout_error("openai", httpx2.ReadTimeout("slow")), UpstreamTimeout)
