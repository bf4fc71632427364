"""Tests for shared.fake_provider: a real uvicorn server driven by the official openai and anthropic SDKs
(and raw httpx where the exact wire bytes matter)."""

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from shared.fake_provider import FakeProviderConfig, create_app, serve
from shared.fake_provider_script import parse_directives, reply_words, retry_headers

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
def _serving(app: ASGIApp) -> Iterator[str]:
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
async def _sdk_clients(base_url: str, timeout: float = 10) -> AsyncIterator[Clients]:
    oai = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="k", max_retries=0, timeout=timeout)
    claude = anthropic.AsyncAnthropic(base_url=base_url, api_key="k", max_retries=0, timeout=timeout)
    try:
        yield oai, claude
    finally:
        await oai.close()
        await claude.close()


@asynccontextmanager
async def _provider(config: FakeProviderConfig | None = None) -> AsyncIterator[tuple[str, Clients]]:
    with _serving(create_app(config)) as base_url:
        async with _sdk_clients(base_url) as clients:
            yield base_url, clients


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with _serving(create_app()) as url:
        yield url


@pytest.fixture
async def clients(base_url: str) -> AsyncIterator[Clients]:
    async with _sdk_clients(base_url) as pair:
        yield pair


@pytest.fixture
async def raw(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


async def _openai_text(oai: openai.AsyncOpenAI, model: str) -> tuple[str, list[Any]]:
    stream = await oai.chat.completions.create(model=model, messages=OPENAI_MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks


def _sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


# --- pure helpers -------------------------------------------------------------------------------------


def test_parse_directives_reads_every_directive_from_the_model_name() -> None:
    directives = parse_directives("gpt-fail-429-retry-after-0.25-slow-1500-cut-after-3")
    assert directives.fail_status == 429
    assert directives.retry_after_s == 0.25
    assert directives.slow_ms == 1500
    assert directives.cut_after == 3
    assert parse_directives("gpt-4o") == parse_directives("plain")
    assert parse_directives("fail-200").fail_status is None


def test_retry_headers_default_to_one_second_only_for_429() -> None:
    assert retry_headers(429, None) == {"retry-after": "1", "retry-after-ms": "1000"}
    assert retry_headers(503, None) == {}
    assert retry_headers(503, 2.5) == {"retry-after": "2.5", "retry-after-ms": "2500"}


def test_reply_words_truncate_to_max_tokens_even_inside_the_prefix() -> None:
    assert reply_words("a b", 6, None) == (("Fake", "reply", "to:", "a", "b", "tok1"), False)
    assert reply_words("a b", 6, 2) == (("Fake", "reply"), True)
    assert reply_words("a b", 6, 6) == (("Fake", "reply", "to:", "a", "b", "tok1"), False)


def test_config_rejects_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="fail_rate"):
        FakeProviderConfig(fail_rate=1.5)
    with pytest.raises(ValueError, match="fail_models"):
        FakeProviderConfig(fail_models={"m": 200})


# --- OpenAI -------------------------------------------------------------------------------------------


async def test_openai_completion_returns_deterministic_reply_and_usage(clients: Clients) -> None:
    oai, _ = clients
    completion = await oai.chat.completions.create(model="gpt-test", messages=OPENAI_MESSAGES)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-test"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == EXPECTED_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (OPENAI_PROMPT_TOKENS, 12)
    assert completion.usage.total_tokens == OPENAI_PROMPT_TOKENS + 12


async def test_openai_completion_counts_text_blocks_in_prompt_tokens(clients: Clients) -> None:
    oai, _ = clients
    content: Any = [{"type": "text", "text": "one two"}, {"type": "text", "text": "three"}]
    completion = await oai.chat.completions.create(model="m", messages=[{"role": "user", "content": content}])
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 3
    assert completion.choices[0].message.content is not None
    assert completion.choices[0].message.content.startswith("Fake reply to: one two three tok1")


async def test_openai_stream_sends_role_then_one_chunk_per_token_then_finish(clients: Clients) -> None:
    oai, _ = clients
    text, chunks = await _openai_text(oai, "gpt-test")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert [c.choices[0].delta.content for c in chunks[1:3]] == ["Fake", " reply"]
    assert len(chunks) == 1 + 12 + 1
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices[0].delta.content is None
    assert text == EXPECTED_REPLY
    assert all(c.usage is None and c.model == "gpt-test" for c in chunks)
    assert len({c.id for c in chunks}) == 1


async def test_openai_stream_include_usage_appends_usage_chunk(clients: Clients) -> None:
    oai, _ = clients
    stream = await oai.chat.completions.create(
        model="m", messages=OPENAI_MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (OPENAI_PROMPT_TOKENS, 12)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])


async def test_openai_stream_raw_sse_ends_with_done_and_omits_usage_key(raw: httpx.AsyncClient) -> None:
    payload = {"model": "m", "messages": OPENAI_MESSAGES, "stream": True}
    response = await raw.post("/v1/chat/completions", json=payload, headers={"authorization": "Bearer k"})
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = response.text.split("\n\n")
    assert frames[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(frame.removeprefix("data: ")) for frame in frames[:-2]]
    assert all(chunk["object"] == "chat.completion.chunk" and "usage" not in chunk for chunk in chunks)


async def test_openai_completion_max_tokens_truncates_with_length(clients: Clients) -> None:
    oai, _ = clients
    completion = await oai.chat.completions.create(model="m", messages=OPENAI_MESSAGES, max_tokens=4)
    assert completion.choices[0].message.content == "Fake reply to: hello"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 4


async def test_openai_stream_max_completion_tokens_truncates_with_length(clients: Clients) -> None:
    oai, _ = clients
    stream = await oai.chat.completions.create(
        model="m", messages=OPENAI_MESSAGES, stream=True, max_completion_tokens=5
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Fake reply to: hello there"
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_openai_fail_500_raises_internal_server_error(clients: Clients) -> None:
    oai, _ = clients
    with pytest.raises(openai.InternalServerError) as caught:
        await oai.chat.completions.create(model="gpt-fail-500", messages=OPENAI_MESSAGES)
    assert caught.value.status_code == 500
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "server_error"


async def test_openai_fail_429_raises_rate_limit_error_with_retry_after(clients: Clients) -> None:
    oai, _ = clients
    with pytest.raises(openai.RateLimitError) as caught:
        await oai.chat.completions.create(model="fail-429", messages=OPENAI_MESSAGES, stream=True)
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.response.headers["retry-after-ms"] == "1000"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "rate_limit_error"


async def test_openai_stream_cut_after_raises_connection_error_after_n_tokens(clients: Clients) -> None:
    oai, _ = clients
    stream = await oai.chat.completions.create(model="gpt-cut-after-3", messages=OPENAI_MESSAGES, stream=True)
    received: list[str] = []
    # The openai SDK wraps the broken chunked body in APIConnectionError; no finish chunk is ever seen.
    with pytest.raises(openai.APIConnectionError) as caught:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)
    assert received == ["", "Fake", " reply", " to:"]


async def test_openai_completion_cut_after_without_stream_is_500(clients: Clients) -> None:
    oai, _ = clients
    with pytest.raises(openai.InternalServerError) as caught:
        await oai.chat.completions.create(model="gpt-cut-after-3", messages=OPENAI_MESSAGES)
    assert caught.value.status_code == 500


# --- Anthropic ----------------------------------------------------------------------------------------


async def test_anthropic_message_returns_reply_usage_and_end_turn(clients: Clients) -> None:
    _, claude = clients
    messages: Any = [
        {"role": "user", "content": [{"type": "text", "text": "one two"}, {"type": "text", "text": "three"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "final question please"},
    ]
    message = await claude.messages.create(
        model="claude-test", max_tokens=100, system="You are terse.", messages=messages
    )
    assert message.id.startswith("msg_")
    assert message.model == "claude-test"
    assert message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Fake reply to: final question please tok1 tok2 tok3 tok4 tok5 tok6"
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (3 + 3 + 1 + 3, 12)


async def test_anthropic_message_max_tokens_truncates_with_max_tokens_stop_reason(clients: Clients) -> None:
    _, claude = clients
    message = await claude.messages.create(model="c", max_tokens=3, messages=ANTHROPIC_MESSAGES)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Fake reply to:"
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


async def test_anthropic_stream_emits_events_in_anthropic_order(clients: Clients) -> None:
    _, claude = clients
    stream = await claude.messages.create(model="c", max_tokens=50, messages=ANTHROPIC_MESSAGES, stream=True)
    events = [event async for event in stream]
    # The SDK swallows `ping`; everything else arrives in order.
    assert [event.type for event in events] == [name for name in ANTHROPIC_STREAM_EVENTS if name != "ping"]
    deltas = [
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    ]
    assert "".join(deltas) == EXPECTED_REPLY
    assert deltas[:2] == ["Fake", " reply"]


async def test_anthropic_stream_raw_sse_has_named_events_ping_and_usage(raw: httpx.AsyncClient) -> None:
    payload = {"model": "c", "max_tokens": 50, "messages": ANTHROPIC_MESSAGES, "stream": True}
    response = await raw.post("/v1/messages", json=payload, headers={"x-api-key": "k"})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(response.text)
    assert [name for name, _ in events] == ANTHROPIC_STREAM_EVENTS
    assert all(name == data["type"] for name, data in events)
    start = events[0][1]["message"]
    assert (start["content"], start["usage"]) == ([], {"input_tokens": 7, "output_tokens": 1})
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {"output_tokens": 12}


async def test_anthropic_stream_helper_accumulates_final_message(clients: Clients) -> None:
    _, claude = clients
    async with claude.messages.stream(model="c", max_tokens=6, messages=ANTHROPIC_MESSAGES) as stream:
        message = await stream.get_final_message()
    assert message.content[0].type == "text"
    assert message.content[0].text == "Fake reply to: hello there how"
    assert message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 6)


async def test_anthropic_fail_429_retry_after_directive_sets_fractional_header(clients: Clients) -> None:
    _, claude = clients
    with pytest.raises(anthropic.RateLimitError) as caught:
        await claude.messages.create(
            model="fail-429-retry-after-0.1", max_tokens=5, messages=ANTHROPIC_MESSAGES
        )
    assert caught.value.response.headers["retry-after"] == "0.1"
    assert caught.value.response.headers["retry-after-ms"] == "100"
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "Injected failure: HTTP 429 for model 'fail-429-retry-after-0.1'.",
        },
    }


async def test_anthropic_fail_529_raises_overloaded_error(clients: Clients) -> None:
    _, claude = clients
    with pytest.raises(anthropic.OverloadedError) as caught:
        await claude.messages.create(model="claude-fail-529", max_tokens=5, messages=ANTHROPIC_MESSAGES)
    assert caught.value.status_code == 529
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert "retry-after" not in caught.value.response.headers


async def test_anthropic_fail_500_raises_internal_server_error_with_api_error(clients: Clients) -> None:
    _, claude = clients
    with pytest.raises(anthropic.InternalServerError) as caught:
        await claude.messages.create(model="fail-500", max_tokens=5, messages=ANTHROPIC_MESSAGES, stream=True)
    assert caught.value.status_code == 500
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "api_error"


async def test_anthropic_stream_cut_after_raises_remote_protocol_error_after_n_tokens(
    clients: Clients,
) -> None:
    _, claude = clients
    stream = await claude.messages.create(
        model="claude-cut-after-3", max_tokens=50, messages=ANTHROPIC_MESSAGES, stream=True
    )
    seen: list[str] = []
    # Unlike openai, the anthropic SDK lets the transport error escape unwrapped: httpx2.RemoteProtocolError
    # ("incomplete chunked read"), after message_start, content_block_start and exactly 3 deltas.
    with pytest.raises(httpx2.RemoteProtocolError):
        async for event in stream:
            seen.append(event.type)
    assert seen == ["message_start", "content_block_start", *["content_block_delta"] * 3]


# --- auth, validation, models -------------------------------------------------------------------------


async def test_auth_missing_bearer_returns_401_in_openai_shape(raw: httpx.AsyncClient) -> None:
    payload = {"model": "m", "messages": OPENAI_MESSAGES}
    response = await raw.post("/v1/chat/completions", json=payload, headers={"x-api-key": "k"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert set(error) == {"message", "type", "param", "code"}


async def test_auth_missing_api_key_returns_401_in_anthropic_shape(raw: httpx.AsyncClient) -> None:
    payload = {"model": "c", "max_tokens": 5, "messages": ANTHROPIC_MESSAGES}
    response = await raw.post("/v1/messages", json=payload)
    assert response.status_code == 401
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "authentication_error"
    accepted = await raw.post("/v1/messages", json=payload, headers={"authorization": "Bearer k"})
    assert accepted.status_code == 200


async def test_validation_empty_messages_returns_400_for_both_sdks(clients: Clients) -> None:
    oai, claude = clients
    with pytest.raises(openai.BadRequestError) as openai_error:
        await oai.chat.completions.create(model="m", messages=[])
    assert isinstance(openai_error.value.body, dict)
    assert openai_error.value.body["type"] == "invalid_request_error"
    assert openai_error.value.body["param"] == "messages"
    with pytest.raises(anthropic.BadRequestError) as anthropic_error:
        await claude.messages.create(model="c", max_tokens=5, messages=[])
    assert isinstance(anthropic_error.value.body, dict)
    assert anthropic_error.value.body["error"]["type"] == "invalid_request_error"


async def test_validation_missing_model_returns_400_in_openai_shape(raw: httpx.AsyncClient) -> None:
    response = await raw.post(
        "/v1/chat/completions", json={"messages": OPENAI_MESSAGES}, headers={"authorization": "Bearer k"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_validation_anthropic_requires_max_tokens(raw: httpx.AsyncClient) -> None:
    response = await raw.post(
        "/v1/messages", json={"model": "c", "messages": ANTHROPIC_MESSAGES}, headers={"x-api-key": "k"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }


async def test_models_list_parses_in_both_sdks(clients: Clients) -> None:
    oai, claude = clients
    openai_ids = [model.id async for model in oai.models.list()]
    anthropic_ids = [model.id async for model in claude.models.list()]
    assert openai_ids == anthropic_ids
    assert "fake-gpt" in openai_ids


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
    async with _sdk_clients(base_url, timeout=0.2) as (oai, _):
        with pytest.raises(openai.APITimeoutError):
            await oai.chat.completions.create(model="gpt-slow-1000", messages=OPENAI_MESSAGES)


async def test_config_latency_ms_delays_non_stream_response() -> None:
    async with _provider(FakeProviderConfig(latency_ms=250)) as (_, (oai, _claude)):
        started = time.monotonic()
        await oai.chat.completions.create(model="m", messages=OPENAI_MESSAGES)
        assert time.monotonic() - started >= 0.23


async def test_config_inter_token_ms_spaces_stream_chunks() -> None:
    async with _provider(FakeProviderConfig(token_count=5, inter_token_ms=60)) as (_, (oai, _claude)):
        started = time.monotonic()
        text, _ = await _openai_text(oai, "m")
        elapsed = time.monotonic() - started
    assert text == "Fake reply to: hello there"
    assert elapsed >= 4 * 0.06 * 0.9


async def test_server_overlaps_concurrent_slow_requests() -> None:
    async with _provider(FakeProviderConfig(latency_ms=300)) as (_, (oai, _claude)):
        started = time.monotonic()
        calls = [oai.chat.completions.create(model=f"m{i}", messages=OPENAI_MESSAGES) for i in range(10)]
        completions = await asyncio.gather(*calls)
        elapsed = time.monotonic() - started
    assert [c.model for c in completions] == [f"m{i}" for i in range(10)]
    assert elapsed < 1.5  # serially this would take 3 s


# --- config-driven failures, stats, mounting ----------------------------------------------------------


async def test_config_fail_models_and_fail_rate_force_statuses() -> None:
    config = FakeProviderConfig(fail_models={"locked": 403}, fail_rate=1.0, fail_status=503)
    async with _provider(config) as (_, (oai, claude)):
        with pytest.raises(openai.PermissionDeniedError):
            await oai.chat.completions.create(model="locked", messages=OPENAI_MESSAGES)
        with pytest.raises(anthropic.InternalServerError) as caught:
            await claude.messages.create(model="any", max_tokens=5, messages=ANTHROPIC_MESSAGES)
    assert caught.value.status_code == 503


async def test_config_token_count_sets_reply_length() -> None:
    async with _provider(FakeProviderConfig(token_count=2)) as (_, (_oai, claude)):
        message = await claude.messages.create(model="c", max_tokens=50, messages=ANTHROPIC_MESSAGES)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Fake reply"
    assert (message.usage.output_tokens, message.stop_reason) == (2, "end_turn")


async def _statuses(config: FakeProviderConfig, count: int) -> list[int]:
    payload = {"model": "m", "messages": OPENAI_MESSAGES}
    with _serving(create_app(config)) as url:
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
    async with _provider() as (url, (oai, claude)):
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
    with _serving(outer) as url:
        async with _sdk_clients(f"{url}/fake") as (oai, claude):
            completion = await oai.chat.completions.create(model="m", messages=OPENAI_MESSAGES)
            text, _ = await _openai_text(oai, "m")
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
