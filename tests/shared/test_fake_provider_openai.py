"""The fake provider's OpenAI Chat Completions endpoint, driven by the official openai SDK against a real
uvicorn server (and raw httpx where the exact wire bytes matter): replies, streams, truncation and failures."""

import json
from typing import Any

import httpx
import httpx2
import openai
import pytest

from tests.shared.fake_provider_support import (
    EXPECTED_REPLY,
    OPENAI_MESSAGES,
    OPENAI_PROMPT_TOKENS,
    Clients,
    openai_text,
)


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
    text, chunks = await openai_text(oai, "gpt-test")
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
