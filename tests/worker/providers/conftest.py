"""A real fake upstream (shared.fake_provider under uvicorn) on a free port, shared by the adapter tests."""

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from shared.fake_provider import FakeProviderConfig, create_app
from shared.models import Delta

TOKENS = 8


@pytest.fixture(scope="module")
async def fake_url() -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(FakeProviderConfig(token_count=TOKENS))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="critical"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task
    sock.close()


async def requests_for(fake_url: str, model: str) -> int:
    async with httpx.AsyncClient() as client:
        stats = (await client.get(f"{fake_url}/_stats")).json()
    return int(stats["requests"].get(model, 0))


async def collect(stream: AsyncIterator[Delta]) -> list[Delta]:
    return [delta async for delta in stream]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
