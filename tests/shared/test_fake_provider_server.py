"""The fake provider as a server: latency from directives and config, concurrent requests, config-driven
failures, the request stats, mounting under a prefix and `serve` until cancelled."""

import asyncio
import socket
import time

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from shared.fake_provider import FakeProviderConfig, create_app, serve
from tests.shared.fake_provider_support import (
    ANTHROPIC_MESSAGES,
    EXPECTED_REPLY,
    OPENAI_MESSAGES,
    Clients,
    openai_text,
    provider,
    sdk_clients,
    serving,
)

# --- latency ------------------------------------------------------------------------------------------


async def test_slow_directive_delays_first_stream_event(clients: Clients) -> None:
    _, claude = clients
    started = time.monotonic()
    stream = await claude.messages.create(
        model="c-slow-300", max_tokens=5, messages=ANTHROPIC_MESSAGES, stream=True
    )
    first = await stream.__anext__()
    elapsed = time.monotonic() - started
    await stream.close()
    assert first.type == "message_start"
    assert elapsed >= 0.28


async def test_slow_directive_trips_sdk_timeout(base_url: str) -> None:
    async with sdk_clients(base_url, timeout=0.2) as (oai, _):
        with pytest.raises(openai.APITimeoutError):
            await oai.chat.completions.create(model="gpt-slow-1000", messages=OPENAI_MESSAGES)


async def test_config_latency_ms_delays_non_stream_response() -> None:
    async with provider(FakeProviderConfig(latency_ms=250)) as (_, (oai, _claude)):
        started = time.monotonic()
        await oai.chat.completions.create(model="m", messages=OPENAI_MESSAGES)
        assert time.monotonic() - started >= 0.23


async def test_config_inter_token_ms_spaces_stream_chunks() -> None:
    async with provider(FakeProviderConfig(token_count=5, inter_token_ms=60)) as (_, (oai, _claude)):
        started = time.monotonic()
        text, _ = await openai_text(oai, "m")
        elapsed = time.monotonic() - started
    assert text == "Fake reply to: hello there"
    assert elapsed >= 4 * 0.06 * 0.9


async def test_server_overlaps_concurrent_slow_requests() -> None:
    async with provider(FakeProviderConfig(latency_ms=300)) as (_, (oai, _claude)):
        started = time.monotonic()
        calls = [oai.chat.completions.create(model=f"m{i}", messages=OPENAI_MESSAGES) for i in range(10)]
        completions = await asyncio.gather(*calls)
        elapsed = time.monotonic() - started
    assert [c.model for c in completions] == [f"m{i}" for i in range(10)]
    assert elapsed < 1.5  # serially this would take 3 s


# --- config-driven failures, stats, mounting ----------------------------------------------------------


async def test_config_fail_models_and_fail_rate_force_statuses() -> None:
    config = FakeProviderConfig(fail_models={"locked": 403}, fail_rate=1.0, fail_status=503)
    async with provider(config) as (_, (oai, claude)):
        with pytest.raises(openai.PermissionDeniedError):
            await oai.chat.completions.create(model="locked", messages=OPENAI_MESSAGES)
        with pytest.raises(anthropic.InternalServerError) as caught:
            await claude.messages.create(model="any", max_tokens=5, messages=ANTHROPIC_MESSAGES)
    assert caught.value.status_code == 503


async def test_config_token_count_sets_reply_length() -> None:
    async with provider(FakeProviderConfig(token_count=2)) as (_, (_oai, claude)):
        message = await claude.messages.create(model="c", max_tokens=50, messages=ANTHROPIC_MESSAGES)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Fake reply"
    assert (message.usage.output_tokens, message.stop_reason) == (2, "end_turn")


async def _statuses(config: FakeProviderConfig, count: int) -> list[int]:
    payload = {"model": "m", "messages": OPENAI_MESSAGES}
    with serving(create_app(config)) as url:
        async with httpx.AsyncClient(base_url=url, headers={"authorization": "Bearer k"}) as client:
            return [
                (await client.post("/v1/chat/completions", json=payload)).status_code for _ in range(count)
            ]


async def test_config_seeded_fail_rate_is_reproducible() -> None:
    first = await _statuses(FakeProviderConfig(fail_rate=0.5, fail_status=502, seed=7), 20)
    second = await _statuses(FakeProviderConfig(fail_rate=0.5, fail_status=502, seed=7), 20)
    assert first == second
    assert set(first) == {200, 502}


async def test_stats_counts_every_completion_request_and_reset_clears() -> None:
    async with provider() as (url, (oai, claude)):
        await oai.chat.completions.create(model="a", messages=OPENAI_MESSAGES)
        await claude.messages.create(model="b", max_tokens=5, messages=ANTHROPIC_MESSAGES)
        with pytest.raises(openai.InternalServerError):
            await oai.chat.completions.create(model="fail-500", messages=OPENAI_MESSAGES)
        async with httpx.AsyncClient(base_url=url) as client:
            unauthorized = await client.post("/v1/chat/completions", json={"model": "a", "messages": []})
            not_json = await client.post("/v1/messages", content=b"{", headers={"x-api-key": "k"})
            stats = (await client.get("/_stats")).json()
            reset = await client.post("/_reset")
            after = (await client.get("/_stats")).json()
    assert (unauthorized.status_code, not_json.status_code) == (401, 400)
    assert stats == {"requests": {"a": 2, "b": 1, "fail-500": 1, "<missing>": 1}, "total": 5}
    assert reset.status_code == 200
    assert after == {"requests": {}, "total": 0}


async def test_mount_under_prefix_serves_both_formats() -> None:
    outer = Starlette(routes=[Mount("/fake", app=create_app())])
    with serving(outer) as url:
        async with sdk_clients(f"{url}/fake") as (oai, claude):
            completion = await oai.chat.completions.create(model="m", messages=OPENAI_MESSAGES)
            text, _ = await openai_text(oai, "m")
            message = await claude.messages.create(model="c", max_tokens=50, messages=ANTHROPIC_MESSAGES)
        async with httpx.AsyncClient(base_url=url) as client:
            stats = (await client.get("/fake/_stats")).json()
            unprefixed = await client.get("/_stats")
    assert completion.choices[0].message.content == text == EXPECTED_REPLY
    assert message.content[0].type == "text"
    assert message.content[0].text == EXPECTED_REPLY
    assert stats["total"] == 3
    assert unprefixed.status_code == 404


async def test_serve_answers_until_cancelled_then_stops_listening() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = asyncio.create_task(serve("127.0.0.1", port, FakeProviderConfig(token_count=3)))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        for _ in range(250):
            try:
                stats = await client.get("/_stats")
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert stats.json() == {"requests": {}, "total": 0}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/_stats")
