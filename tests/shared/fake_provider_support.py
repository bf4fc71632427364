"""Helpers for the fake provider tests: the request payloads and expected replies, a real uvicorn server on a
free port in a background thread, and the official openai and anthropic SDK clients pointed at it."""

import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anthropic
import openai
import uvicorn
from starlette.types import ASGIApp

from shared.fake_provider import FakeProviderConfig, create_app

USER_TEXT = "hello there how are you doing today"
OPENAI_MESSAGES: list[Any] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": USER_TEXT},
]
OPENAI_PROMPT_TOKENS = 9
EXPECTED_REPLY = "Fake reply to: hello there how are you tok1 tok2 tok3 tok4"
ANTHROPIC_MESSAGES: list[Any] = [{"role": "user", "content": USER_TEXT}]
ANTHROPIC_STREAM_EVENTS = [
    "message_start",
    "content_block_start",
    "ping",
    *["content_block_delta"] * 12,
    "content_block_stop",
    "message_delta",
    "message_stop",
]

Clients = tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic]


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Run `app` under uvicorn on a free port in a background thread; yield its base URL."""
    # An explicit IPPROTO_TCP makes asyncio set TCP_NODELAY on accepted connections; with proto 0 it does
    # not, and Nagle plus delayed ACKs add ~40 ms to every keep-alive request.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", loop="asyncio", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("fake provider did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@asynccontextmanager
async def sdk_clients(base_url: str, timeout: float = 10) -> AsyncIterator[Clients]:
    oai = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="k", max_retries=0, timeout=timeout)
    claude = anthropic.AsyncAnthropic(base_url=base_url, api_key="k", max_retries=0, timeout=timeout)
    try:
        yield oai, claude
    finally:
        await oai.close()
        await claude.close()


@asynccontextmanager
async def provider(config: FakeProviderConfig | None = None) -> AsyncIterator[tuple[str, Clients]]:
    with serving(create_app(config)) as base_url:
        async with sdk_clients(base_url) as clients:
            yield base_url, clients


async def openai_text(oai: openai.AsyncOpenAI, model: str) -> tuple[str, list[Any]]:
    stream = await oai.chat.completions.create(model=model, messages=OPENAI_MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks


def sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events
