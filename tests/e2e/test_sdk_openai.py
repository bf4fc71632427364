"""The official `openai` SDK, unmodified, against the gateway: API process -> Redis queue -> worker process
-> fake upstream."""

import openai
import pytest

from tests.e2e.conftest import Gateway


@pytest.fixture
async def client(gateway: Gateway, tenant_key: str):
    sdk = openai.AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=tenant_key, max_retries=0, timeout=30)
    yield sdk
    await sdk.close()


async def test_openai_sdk_chat_completion_served_by_fake_upstream(client: openai.AsyncOpenAI) -> None:
    response = await client.chat.completions.with_raw_response.create(
        model="fake-openai", messages=[{"role": "user", "content": "hello there gateway"}]
    )
    completion = response.parse()
    assert completion.choices[0].message.content.startswith("Fake reply to: hello there gateway")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 8
    assert completion.usage.prompt_tokens == 3
    assert completion.model == "fake-model"
    assert response.headers["x-gateway-provider"] == "openai"
    assert response.headers["x-gateway-fallback"] == "false"


async def test_openai_sdk_stream_yields_all_tokens_and_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="fake-openai", messages=[{"role": "user", "content": "stream me please"}], stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert text.startswith("Fake reply to: stream me please")
    assert len(text.split()) == 8
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 8 and usage.prompt_tokens == 3


async def test_openai_sdk_stream_without_include_usage_has_no_usage_chunk(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="fake-openai", messages=[{"role": "user", "content": "no usage"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_openai_sdk_max_tokens_truncates_with_length(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="fake-openai", messages=[{"role": "user", "content": "long answer"}], max_tokens=3
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 3


async def test_openai_sdk_served_by_anthropic_target(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="fake-anthropic",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "cross format"}],
    )
    assert completion.choices[0].message.content.startswith("Fake reply to: cross format")
    assert completion.model == "fake-claude"
    # The Anthropic target's prompt count includes the system prompt, moved to Anthropic's `system` field.
    assert completion.usage is not None and completion.usage.prompt_tokens == 4


async def test_openai_sdk_lists_models(client: openai.AsyncOpenAI) -> None:
    models = [model.id async for model in client.models.list()]
    assert "fake-openai" in models and "fallback-500" in models


async def test_openai_sdk_unknown_model_raises_not_found(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "model_not_found"


async def test_openai_sdk_bad_key_raises_authentication_error(gateway: Gateway) -> None:
    sdk = openai.AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key="gw-wrong", max_retries=0)
    try:
        with pytest.raises(openai.AuthenticationError):
            await sdk.chat.completions.create(model="fake-openai", messages=[{"role": "user", "content": "x"}])
    finally:
        await sdk.close()
