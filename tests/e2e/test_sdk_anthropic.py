"""The official `anthropic` SDK against the gateway's Messages API, served by Anthropic and OpenAI targets."""

import anthropic
import httpx
import pytest

from tests.e2e.conftest import Gateway


@pytest.fixture
async def client(gateway: Gateway, tenant_key: str):
    sdk = anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key=tenant_key, max_retries=0, timeout=30)
    yield sdk
    await sdk.close()


async def test_anthropic_sdk_message_served_by_anthropic_target(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model="fake-anthropic", max_tokens=100, messages=[{"role": "user", "content": "hi from anthropic"}]
    )
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith("Fake reply to: hi from anthropic")
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 8 and message.usage.input_tokens == 3


async def test_anthropic_sdk_message_served_by_openai_target(client: anthropic.AsyncAnthropic) -> None:
    response = await client.messages.with_raw_response.create(
        model="claude-via-openai", max_tokens=100, system="be terse",
        messages=[{"role": "user", "content": "served elsewhere"}],
    )
    message = await response.parse()
    assert message.content[0].text.startswith("Fake reply to: served elsewhere")
    assert message.model == "served-by-openai"
    assert response.headers["x-gateway-provider"] == "openai"
    assert message.usage.input_tokens == 4  # the system prompt reached the OpenAI target as a system message


async def test_anthropic_sdk_stream_served_by_openai_target(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(
        model="claude-via-openai", max_tokens=100, messages=[{"role": "user", "content": "stream across"}]
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text.startswith("Fake reply to: stream across")
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 8


async def test_anthropic_sdk_stream_served_by_anthropic_target(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(
        model="fake-anthropic", max_tokens=5, messages=[{"role": "user", "content": "short stream"}]
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert len(text.split()) == 5
    assert final.stop_reason == "max_tokens"


async def test_anthropic_sdk_errors_use_anthropic_shape(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        await client.messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error" and "message" in body["error"]


async def test_anthropic_sdk_missing_max_tokens_is_bad_request(gateway: Gateway, tenant_key: str) -> None:
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        response = await http.post("/v1/messages", headers={"x-api-key": tenant_key},
                                   json={"model": "fake-anthropic", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert "max_tokens" in response.json()["error"]["message"]
