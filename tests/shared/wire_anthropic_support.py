"""Helpers for the shared.wire.anthropic tests: the SDK's stream-event validator, a gateway `Completion` to
render, SSE bytes from rendered events, and an anthropic SDK client whose HTTP transport is a test handler."""

from collections.abc import Callable

import anthropic
import httpx2
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from shared.models import Completion, Usage

EVENTS: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)


def completion(**changes: object) -> Completion:
    fields: dict[str, object] = {
        "id": "msg_1",
        "model": "claude-sonnet-4-5",
        "provider": "openai",
        "content": "Hello!",
        "usage": Usage(prompt_tokens=7, completion_tokens=3),
    }
    return Completion.model_validate({**fields, **changes})


def sse(events: list[tuple[str | None, str]]) -> bytes:
    return "".join(f"event: {name}\ndata: {data}\n\n" for name, data in events).encode()


def sdk_client(handler: Callable[[httpx2.Request], httpx2.Response]) -> anthropic.AsyncAnthropic:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return anthropic.AsyncAnthropic(api_key="sk-test", base_url="http://upstream", http_client=http, max_retries=0)
