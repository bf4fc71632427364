"""The fake provider's request checks shared by both formats: authentication, validation errors in each
format's own shape, and the model list both SDKs read."""


import anthropic
import httpx
import openai
import pytest

from tests.shared.fake_provider_support import ANTHROPIC_MESSAGES, OPENAI_MESSAGES, Clients


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
