"""The fake provider's `POST /v1/messages/count_tokens`, driven by the official anthropic SDK against a real
uvicorn server: a deterministic count, Anthropic's refusals, and injected failures."""

from typing import Any

import anthropic
import httpx
import pytest

from shared.fake_provider_count import COUNT_BASE, TOKENS_PER_MESSAGE
from tests.shared.fake_provider_support import Clients


async def test_count_tokens_counts_words_of_system_messages_and_tools(clients: Clients) -> None:
    _, claude = clients
    messages: Any = [{"role": "user", "content": [{"type": "text", "text": "one two"}]},
                     {"role": "assistant", "content": "three"}]
    plain = await claude.messages.count_tokens(model="claude-x", system="be terse", messages=messages)
    assert plain.input_tokens == COUNT_BASE + 2 * TOKENS_PER_MESSAGE + 2 + 2 + 1
    tools: Any = [{"name": "lookup", "description": "find a thing", "input_schema": {"type": "object"}}]
    with_tools = await claude.messages.count_tokens(model="claude-x", system="be terse", messages=messages,
                                                    tools=tools)
    assert with_tools.input_tokens == plain.input_tokens + 1 + 3 + 2  # name; description; {"type": "object"}


async def test_count_tokens_refuses_max_tokens_as_anthropic_does(raw: httpx.AsyncClient) -> None:
    body = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    response = await raw.post("/v1/messages/count_tokens", json=body, headers={"x-api-key": "k"})
    assert response.status_code == 400
    assert response.json()["error"] == {"type": "invalid_request_error",
                                        "message": "max_tokens: Extra inputs are not permitted"}


async def test_count_tokens_needs_a_key_and_messages(raw: httpx.AsyncClient) -> None:
    body = {"model": "c", "messages": [{"role": "user", "content": "hi"}]}
    assert (await raw.post("/v1/messages/count_tokens", json=body)).status_code == 401
    missing = await raw.post("/v1/messages/count_tokens", json={"model": "c"}, headers={"x-api-key": "k"})
    assert missing.status_code == 400 and "messages" in missing.json()["error"]["message"]


async def test_count_tokens_fails_as_the_model_name_asks(clients: Clients) -> None:
    _, claude = clients
    with pytest.raises(anthropic.RateLimitError):
        await claude.with_options(max_retries=0).messages.count_tokens(
            model="claude-fail-429", messages=[{"role": "user", "content": "hi"}])
