"""The fake provider's thinking (signed, verified when sent back), reasoning tokens, refusals, attachment
acknowledgements, stop sequences, prompt-cache usage and the request record, parsed by the official SDKs."""

import base64
from typing import Any

import anthropic
import httpx
import pytest

from shared.fake_provider_reply import sign_thinking
from tests.shared.fake_provider_support import Clients, sse_events

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
ASK: Any = [{"role": "user", "content": "think about Paris"}]


@pytest.mark.parametrize("kind", ["enabled", "adaptive"])
async def test_anthropic_thinking_block_is_signed_and_verified(clients: Clients, kind: str) -> None:
    _, claude = clients
    thinking: Any = {"type": kind, "budget_tokens": 1024} if kind == "enabled" else {"type": kind}
    message = await claude.messages.create(model="c", max_tokens=2000, messages=ASK, thinking=thinking)
    block = message.content[0]
    assert block.type == "thinking" and block.thinking == "Thinking about: think about Paris"
    assert block.signature == sign_thinking(block.thinking) and message.content[1].type == "text"
    history: Any = [*ASK, {"role": "assistant", "content": [block, message.content[1]]},
                    {"role": "user", "content": "and then?"}]
    accepted = await claude.messages.create(model="c", max_tokens=100, messages=history, thinking=thinking)
    assert accepted.stop_reason == "end_turn"
    edited = {"type": "thinking", "thinking": block.thinking + " (edited)", "signature": block.signature}
    history[1]["content"][0] = edited
    with pytest.raises(anthropic.BadRequestError, match="signature"):
        await claude.messages.create(model="c", max_tokens=100, messages=history, thinking=thinking)


async def test_anthropic_thinking_streams_thinking_then_signature_delta(raw: httpx.AsyncClient) -> None:
    body = {"model": "c", "max_tokens": 100, "messages": ASK, "stream": True, "thinking": {"type": "adaptive"}}
    response = await raw.post("/v1/messages", json=body, headers={"x-api-key": "k"})
    events = sse_events(response.text)
    deltas = [data["delta"]["type"] for name, data in events if name == "content_block_delta"]
    assert deltas[:5] == ["thinking_delta"] * 5 and deltas[5] == "signature_delta" and deltas[6] == "text_delta"
    starts = [data["content_block"]["type"] for name, data in events if name == "content_block_start"]
    assert starts == ["thinking", "text"]
    assert [name for name, _ in events][:3] == ["message_start", "content_block_start", "ping"]


async def test_openai_reasoning_effort_reports_reasoning_tokens(clients: Clients) -> None:
    oai, _ = clients
    completion = await oai.chat.completions.create(model="m", messages=ASK, reasoning_effort="high")
    details = completion.usage.completion_tokens_details  # type: ignore[union-attr]
    assert details is not None and details.reasoning_tokens == 32
    assert completion.usage.completion_tokens == 12 + 32  # type: ignore[union-attr]


async def test_refusal_trigger_in_both_formats(clients: Clients) -> None:
    oai, claude = clients
    refuse: Any = [{"role": "user", "content": "please REFUSE this"}]
    completion = await oai.chat.completions.create(model="m", messages=refuse)
    assert completion.choices[0].message.refusal and completion.choices[0].message.content is None
    stream = await oai.chat.completions.create(model="m", messages=refuse, stream=True)
    streamed = "".join([c.choices[0].delta.refusal or "" async for c in stream if c.choices])
    assert streamed == completion.choices[0].message.refusal
    message = await claude.messages.create(model="c", max_tokens=50, messages=refuse)
    assert message.stop_reason == "refusal"


async def test_attachments_are_acknowledged_with_type_and_size(clients: Clients) -> None:
    oai, claude = clients
    data = base64.b64encode(PNG).decode()
    image: Any = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}
    pdf_data = base64.b64encode(b"%PDF-1").decode()
    pdf: Any = {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{pdf_data}"}}
    completion = await oai.chat.completions.create(
        model="m", messages=[{"role": "user", "content": [{"type": "text", "text": "what"}, image, pdf]}]
    )
    assert (completion.choices[0].message.content or "").startswith(
        f"Received image/png {len(PNG)} bytes, application/pdf 6 bytes. Fake reply to: what")
    blocks: Any = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
                   {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "abc"}},
                   {"type": "text", "text": "what"}]
    message = await claude.messages.create(model="c", max_tokens=50, messages=[{"role": "user", "content": blocks}])
    assert message.content[0].text.startswith(f"Received image/png {len(PNG)} bytes, text/plain 3 bytes.")  # type: ignore[union-attr]


async def test_stop_sequence_cuts_the_answer(clients: Clients) -> None:
    oai, claude = clients
    asked: Any = [{"role": "user", "content": "one two HALT three"}]
    message = await claude.messages.create(model="c", max_tokens=50, messages=asked, stop_sequences=["X", "HALT"])
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "HALT")
    assert message.content[0].text == "Fake reply to: one two"  # type: ignore[union-attr]
    async with claude.messages.stream(model="c", max_tokens=50, messages=asked, stop_sequences=["HALT"]) as s:
        final = await s.get_final_message()
    assert final.stop_sequence == "HALT"
    completion = await oai.chat.completions.create(model="m", messages=asked, stop=["HALT"])
    assert completion.choices[0].message.content == "Fake reply to: one two"


async def test_anthropic_cache_control_writes_then_reads(clients: Clients) -> None:
    _, claude = clients
    system: Any = [{"type": "text", "text": "long system prompt " * 10, "cache_control": {"type": "ephemeral"}}]
    first = await claude.messages.create(model="cache-a", max_tokens=20, system=system, messages=ASK)
    second = await claude.messages.create(model="cache-a", max_tokens=20, system=system, messages=ASK)
    assert (first.usage.cache_creation_input_tokens, first.usage.cache_read_input_tokens) == (30, 0)
    assert first.usage.cache_creation and first.usage.cache_creation.ephemeral_5m_input_tokens == 30
    assert (second.usage.cache_creation_input_tokens, second.usage.cache_read_input_tokens) == (0, 30)
    assert first.usage.input_tokens == second.usage.input_tokens == 3
    hour: Any = [{**system[0], "text": "another prompt " * 10, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    longer = await claude.messages.create(model="cache-a", max_tokens=20, system=hour, messages=ASK)
    assert longer.usage.cache_creation and longer.usage.cache_creation.ephemeral_1h_input_tokens == 20


async def test_openai_repeated_long_prefix_reports_cached_tokens(clients: Clients) -> None:
    oai, _ = clients
    messages: Any = [{"role": "system", "content": "policy " * 40}, {"role": "user", "content": "q1"}]
    first = await oai.chat.completions.create(model="cache-o", messages=messages)
    again: Any = [*messages[:1], {"role": "user", "content": "q2"}]
    second = await oai.chat.completions.create(model="cache-o", messages=again)
    assert first.usage.prompt_tokens_details is None  # type: ignore[union-attr]
    assert second.usage.prompt_tokens_details.cached_tokens == 40  # type: ignore[union-attr]


async def test_requests_are_recorded_with_headers_and_masked_keys(clients: Clients, raw: httpx.AsyncClient) -> None:
    _, claude = clients
    await claude.messages.create(model="recorded", max_tokens=5, messages=ASK, extra_body={"top_k": 3, "x_extra": 1},
                                 extra_headers={"anthropic-beta": "b1,b2"})
    entries = (await raw.get("/_requests", params={"model": "recorded", "limit": 1})).json()["requests"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["path"] == "/v1/messages" and entry["headers"]["anthropic-beta"] == "b1,b2"
    assert "***" in (entry["headers"].get("x-api-key"), entry["headers"].get("authorization"))
    assert entry["body"]["top_k"] == 3 and entry["body"]["x_extra"] == 1
    assert (await raw.get("/_requests", params={"limit": "x"})).status_code == 400


ODD_VALUES: list[Any] = [None, 1, "x", [], {}, [1, "a", None], {"type": "json_schema", "json_schema": 5},
                         [{"type": "function", "function": {"name": "t", "parameters": "zz"}}],
                         [{"name": "t", "input_schema": {"type": "object", "required": "abc"}}],
                         [{"type": "image", "source": {"type": "base64", "data": "!!"}}], [{"type": "thinking"}]]


@pytest.mark.parametrize("field", ["tools", "tool_choice", "response_format", "thinking", "stop", "stop_sequences",
                                   "reasoning_effort", "output_format", "output_config", "system"])
async def test_odd_field_values_never_crash_the_provider(raw: httpx.AsyncClient, field: str) -> None:
    for value in ODD_VALUES:
        for path, base in (("/v1/chat/completions", {"model": "m"}), ("/v1/messages", {"model": "c", "max_tokens": 9})):
            messages = [{"role": "user", "content": value}, {"role": "assistant", "content": value}]
            response = await raw.post(path, json={**base, "messages": messages, field: value},
                                      headers={"authorization": "Bearer k"})
            assert response.status_code < 500, (path, field, value, response.text)
