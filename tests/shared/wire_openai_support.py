"""Helpers for the shared.wire.openai tests: a gateway `Completion` to render, SSE bytes from rendered events,
and an official openai SDK client whose HTTP transport is a handler in the test."""

from collections.abc import Callable

import httpx2
import openai

from shared.models import Completion, FinishReason, Usage


def completion(**changes: object) -> Completion:
    fields: dict[str, object] = {
        "id": "chatcmpl-1",
        "model": "gpt-4o",
        "provider": "anthropic",
        "content": "Hello!",
        "finish_reason": FinishReason.STOP,
        "usage": Usage(prompt_tokens=7, completion_tokens=3),
        "created": 1700000000,
    }
    return Completion.model_validate({**fields, **changes})


def sse(events: list[tuple[str | None, str]]) -> bytes:
    lines = []
    for name, data in events:
        lines.append((f"event: {name}\n" if name else "") + f"data: {data}\n\n")
    return "".join(lines).encode()


def sdk_client(handler: Callable[[httpx2.Request], httpx2.Response]) -> openai.AsyncOpenAI:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return openai.AsyncOpenAI(api_key="sk-test", base_url="http://upstream/v1", http_client=http, max_retries=0)
