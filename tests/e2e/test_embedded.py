"""`llm-gateway serve` with no REDIS_URL or DATABASE_URL: one process with the API, a worker, SQLite, an
in-process Redis stand-in and the fake provider behind a `demo` model, so a fresh machine serves at once."""

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.processes import Process, free_port, wait_http

SERVICE_VARIABLES = ("REDIS_URL", "REDIS_HOST", "DATABASE_URL", "POSTGRES_HOST", "OPENAI_API_KEY",
                     "ANTHROPIC_API_KEY", "ROUTES_FILE")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("embedded")
    port = free_port()
    env = {"ADMIN_API_KEY": "embedded-admin", "SQLITE_PATH": str(workdir / "gateway.db")}
    cleared = {name: os.environ.pop(name) for name in SERVICE_VARIABLES if name in os.environ}
    try:
        server = Process("embedded", ["serve", "--port", str(port)], env, workdir)
    finally:
        os.environ.update(cleared)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", server, timeout_s=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        # uvicorn re-raises the SIGTERM it handled after a clean shutdown, hence -15.
        assert server.stop() in (0, -15), server.log_tail()
        assert "Application shutdown complete" in server.log_tail()
        assert Path(env["SQLITE_PATH"]).exists()


async def test_embedded_serve_answers_demo_model_with_openai_sdk(embedded: str) -> None:
    async with httpx.AsyncClient(base_url=embedded) as http:
        created = await http.post("/api/v1/admin/tenants", params={"name": "first-app"},
                                  headers={"X-API-Key": "embedded-admin"})
        assert created.status_code == 201, created.text
        health = (await http.get("/health")).json()
    assert health["checks"]["workers"]["ok"] is True
    sdk = openai.AsyncOpenAI(base_url=f"{embedded}/v1", api_key=created.json()["api_key"], max_retries=0)
    try:
        completion = await sdk.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "hello embedded"}]
        )
        stream = await sdk.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "stream embedded"}], stream=True
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        # The demo model also serves embeddings and legacy completions (the fake provider answers both).
        vectors = await sdk.embeddings.create(model="demo", input=["one", "two"])
        legacy = await sdk.completions.create(model="demo", prompt="legacy embedded", max_tokens=8)
    finally:
        await sdk.close()
    assert completion.choices[0].message.content.startswith("Fake reply to: hello embedded")
    assert streamed.startswith("Fake reply to: stream embedded")
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) > 0
    assert vectors.data[0].embedding != vectors.data[1].embedding
    assert legacy.choices[0].text
