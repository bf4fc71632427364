"""`POST /v1/completions` (legacy text completions) end to end with the official `openai` SDK: plain, streamed
(with usage), echo, suffix, logprobs, n, every field forwarded; fallback; a chat-only route refused; usage
records with their cost."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import openai
import pytest

from tests.e2e.conftest import E2E_DATABASE
from tests.e2e.endpoints_gateway import EndpointsGateway, endpoints_gateway  # noqa: F401 (fixture)
from tests.support.databases import tenant_usage_rows

INSTRUCT_IN, INSTRUCT_OUT = 1.50 / 1_000_000, 2.00 / 1_000_000


@dataclass(frozen=True)
class Endpoints:
    gateway: EndpointsGateway
    tenant_id: str
    client: openai.AsyncOpenAI


@pytest.fixture
async def ep(endpoints_gateway: EndpointsGateway, make_tenant: Callable[..., Any]) -> Endpoints:  # noqa: F811
    tenant_id, key = await make_tenant()
    client = openai.AsyncOpenAI(base_url=endpoints_gateway.openai_url, api_key=str(key), max_retries=0)
    return Endpoints(endpoints_gateway, str(tenant_id), client)


async def usage_rows(tenant_id: str, count: int) -> list[asyncpg.Record]:
    return await tenant_usage_rows(E2E_DATABASE, tenant_id, count)


async def test_completions_plain_forwards_every_field_and_bills(ep: Endpoints) -> None:
    result = await ep.client.completions.create(
        model="ep-instruct", prompt="Say this is a test", max_tokens=20, temperature=0.5, top_p=0.9, stop=["\n"],
        seed=7, suffix=" the end", best_of=2, n=2, user="u-1", presence_penalty=0.1, frequency_penalty=0.2,
        logit_bias={"50256": -100})
    assert result.object == "text_completion" and result.id.startswith("cmpl-")
    assert [choice.index for choice in result.choices] == [0, 1]
    assert result.choices[0].text.startswith(" Fake reply to: Say this is a test")
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None and result.usage.prompt_tokens == 7 and result.usage.completion_tokens == 16
    sent = ep.gateway.upstream_requests("gpt-3.5-turbo-instruct")[-1]["body"]
    assert sent == {"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test", "max_tokens": 20,
                    "temperature": 0.5, "top_p": 0.9, "stop": ["\n"], "seed": 7, "suffix": " the end",
                    "best_of": 2, "n": 2, "user": "u-1", "presence_penalty": 0.1, "frequency_penalty": 0.2,
                    "logit_bias": {"50256": -100}}
    row = (await usage_rows(ep.tenant_id, 1))[0]
    assert row["prompt_tokens"] == 7 and row["completion_tokens"] == 16 and row["endpoint"] == "completions"
    assert float(row["cost_usd"]) == pytest.approx(7 * INSTRUCT_IN + 16 * INSTRUCT_OUT)


async def test_completions_echo_and_logprobs(ep: Endpoints) -> None:
    result = await ep.client.completions.create(model="ep-instruct", prompt="echo me", echo=True, logprobs=2,
                                                max_tokens=5)
    choice = result.choices[0]
    assert choice.text.startswith("echo me Fake reply")
    assert choice.finish_reason == "length"
    assert choice.logprobs is not None and choice.logprobs.tokens is not None
    assert "".join(choice.logprobs.tokens) == choice.text
    assert len(choice.logprobs.token_logprobs or []) == len(choice.logprobs.tokens)


async def test_completions_streamed_with_usage(ep: Endpoints) -> None:
    stream = await ep.client.completions.create(model="ep-instruct", prompt=["first prompt", "second prompt"],
                                                stream=True, stream_options={"include_usage": True})
    texts: dict[int, str] = {}
    finishes: dict[int, str | None] = {}
    usage = None
    async for chunk in stream:
        assert chunk.object == "text_completion"
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
        usage = chunk.usage or usage
    assert texts[0].startswith(" Fake reply to: first prompt") and texts[1].startswith(" Fake reply to: second")
    assert finishes == {0: "stop", 1: "stop"}
    assert usage is not None and usage.prompt_tokens == 4 and usage.completion_tokens == 16
    sent = ep.gateway.upstream_requests("gpt-3.5-turbo-instruct")[-1]["body"]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    row = (await usage_rows(ep.tenant_id, 1))[0]
    assert row["completion_tokens"] == 16 and float(row["cost_usd"]) > 0


async def test_completions_stream_echo_with_logprobs(ep: Endpoints) -> None:
    stream = await ep.client.completions.create(model="ep-instruct", prompt="streamed echo", echo=True, logprobs=1,
                                                stream=True)
    pieces = [choice async for chunk in stream for choice in chunk.choices]
    text = "".join(piece.text for piece in pieces)
    assert text.startswith("streamed echo Fake reply")
    assert all(piece.logprobs is not None for piece in pieces if piece.text)


async def test_completions_fall_back_to_the_next_target(ep: Endpoints) -> None:
    response = await ep.client.completions.with_raw_response.create(model="ep-instruct-fallback", prompt="hi")
    result = response.parse()
    assert response.headers["x-gateway-fallback"] == "true"
    assert response.headers["x-gateway-model"] == "babbage-002"
    assert result.choices[0].text
    assert ep.gateway.upstream_requests("instruct-first-fail-503")


async def test_completions_refused_for_a_chat_only_route(ep: Endpoints) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await ep.client.completions.create(model="ep-chat-only", prompt="no completions here")
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "unsupported_endpoint"
    assert "completions" in error["message"] and "ep-chat-only" in error["message"]
    assert not ep.gateway.upstream_requests("ep-chat")


async def test_completions_bad_field_is_a_400_naming_it(ep: Endpoints) -> None:
    for kwargs, field in (({"logprobs": 9}, "'logprobs'"), ({"n": 0}, "'n'"), ({"temperature": 3}, "'temperature'")):
        with pytest.raises(openai.BadRequestError) as caught:
            await ep.client.completions.create(model="ep-instruct", prompt="x", **kwargs)
        assert field in str(caught.value)


async def test_usage_report_breaks_down_by_endpoint(ep: Endpoints) -> None:
    """One model serving chat and legacy completions: the tenant's report tells the two apart."""
    await ep.client.chat.completions.create(model="ep-instruct", messages=[{"role": "user", "content": "hi"}])
    await ep.client.completions.create(model="ep-instruct", prompt="hello", max_tokens=5)
    await ep.client.completions.create(model="ep-instruct", prompt="again", max_tokens=5)
    await usage_rows(ep.tenant_id, 3)
    async with httpx.AsyncClient(base_url=ep.gateway.base_url, timeout=30) as http:
        response = await http.get("/api/v1/usage", headers={"Authorization": f"Bearer {ep.client.api_key}"})
    assert response.status_code == 200, response.text
    report = response.json()
    by_endpoint = {row["endpoint"]: row["requests"] for row in report["by_endpoint"]}
    assert by_endpoint == {"chat": 1, "completions": 2}
    assert [(row["model"], row["requests"]) for row in report["by_model"]] == [("ep-instruct", 3)]
