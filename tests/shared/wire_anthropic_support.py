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


def blocks(content: object) -> object:
    """String content as the one text block it stands for (Anthropic treats both alike)."""
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def normalise(body: dict[str, object]) -> dict[str, object]:
    """A Messages body with every shorthand spelled out, so two semantically equal bodies compare equal."""
    out = dict(body)
    if "system" in out:
        out["system"] = blocks(out["system"])
    messages = []
    for message in out.get("messages", []):  # type: ignore[attr-defined]
        content = blocks(message["content"])
        if isinstance(content, list):
            content = [
                {**block, "content": blocks(block["content"])} if block.get("type") == "tool_result"
                and "content" in block else block
                for block in content
            ]
        messages.append({**message, "content": content})
    out["messages"] = messages
    return out


def sent_body(kwargs: dict[str, object]) -> tuple[dict[str, object], dict[str, str]]:
    """The JSON body and headers the official SDK sends for `messages.create(**kwargs)`."""
    import asyncio
    import json

    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"id": "m", "type": "message", "role": "assistant", "model": "c",
                                          "content": [], "stop_reason": "end_turn", "stop_sequence": None,
                                          "usage": {"input_tokens": 1, "output_tokens": 1}})

    async def send() -> None:
        client = sdk_client(handler)
        try:
            await client.messages.create(**{**kwargs, "stream": False}, timeout=30)  # type: ignore[arg-type]
        finally:
            await client.close()

    asyncio.run(send())
    body = json.loads(seen[0].content)
    body.pop("stream", None)
    if kwargs.get("stream"):
        body["stream"] = True  # sent as False here so that the mock's plain JSON answer is read
    return body, dict(seen[0].headers)
