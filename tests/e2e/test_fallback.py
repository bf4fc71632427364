"""Fallback across providers through the full stack: retryable upstream failures move to the next target
and the answer says who served it; a client error from the upstream is returned as is, never retried."""

import httpx
import openai
import pytest

from tests.e2e.conftest import Gateway


def _chat(model: str, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "fallback please"}], **extra}


@pytest.mark.parametrize(
    ("model", "primary", "secondary"),
    [
        ("fallback-500", "primary-fail-500", "secondary-after-500"),
        ("fallback-429", "primary-fail-429-retry-after-0.05", "secondary-after-429"),
        ("fallback-timeout", "primary-slow-5000", "secondary-after-timeout"),
    ],
)
async def test_fallback_serves_from_secondary_when_primary_fails(
    gateway: Gateway, http: httpx.AsyncClient, tenant_key: str, model: str, primary: str, secondary: str
) -> None:
    before = await gateway.fake_stats()
    response = await http.post("/api/v1/completions", json=_chat(model), headers={"X-API-Key": tenant_key})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["provider"] == "anthropic"
    assert body["model"] == secondary
    assert body["fallback_used"] is True
    assert response.headers["x-gateway-fallback"] == "true"
    assert body["choices"][0]["message"]["content"].startswith("Fake reply to: fallback please")
    after = await gateway.fake_stats()
    assert after.get(primary, 0) - before.get(primary, 0) == 2  # bounded retries on the primary first
    assert after.get(secondary, 0) - before.get(secondary, 0) == 1


async def test_fallback_stops_when_upstream_400(gateway: Gateway, http: httpx.AsyncClient, tenant_key: str) -> None:
    before = await gateway.fake_stats()
    response = await http.post("/v1/chat/completions", json=_chat("reject-400"),
                               headers={"Authorization": f"Bearer {tenant_key}"})
    assert response.status_code == 400
    assert set(response.json()["error"]) >= {"message", "type", "code"}
    after = await gateway.fake_stats()
    assert after.get("primary-fail-400", 0) - before.get("primary-fail-400", 0) == 1
    assert after.get("secondary-never-called", 0) == before.get("secondary-never-called", 0)


async def test_fallback_exhausted_returns_502_with_error_shape(http: httpx.AsyncClient, tenant_key: str) -> None:
    response = await http.post("/v1/chat/completions", json=_chat("all-down"), headers={"X-API-Key": tenant_key})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "all_targets_failed" and "529" in error["message"]


async def test_stream_fails_explicitly_after_first_token(gateway: Gateway, tenant_key: str) -> None:
    before = await gateway.fake_stats()
    sdk = openai.AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=tenant_key, max_retries=0)
    received = ""
    try:
        stream = await sdk.chat.completions.create(model="cut-stream", messages=[{"role": "user", "content": "x"}],
                                                   stream=True)
        with pytest.raises(openai.APIError, match="stream"):
            async for chunk in stream:
                if chunk.choices:
                    received += chunk.choices[0].delta.content or ""
    finally:
        await sdk.close()
    assert len(received.split()) == 3  # the tokens before the cut arrived, then an explicit error
    after = await gateway.fake_stats()
    assert after.get("secondary-not-after-tokens", 0) == before.get("secondary-not-after-tokens", 0)


async def test_stream_falls_back_before_first_token(gateway: Gateway, tenant_key: str) -> None:
    sdk = openai.AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=tenant_key, max_retries=0)
    try:
        stream = await sdk.chat.completions.create(
            model="fallback-500", messages=[{"role": "user", "content": "stream fallback"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
    finally:
        await sdk.close()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Fake reply to: stream fallback")
    assert chunks[-1].choices[0].finish_reason == "stop"
