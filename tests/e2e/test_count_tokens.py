"""`POST /v1/messages/count_tokens` and `GET /v1/models/{id}` end to end with the official SDKs against an API
and a worker (tests/e2e/count_gateway.py): an Anthropic route is counted by Anthropic's endpoint (the fake
provider's, through a worker), with fallback; an OpenAI route by tiktoken in the API; the usage record of a
count costs nothing; `models.retrieve` of both SDKs, names with `/` and `:` included."""

from collections.abc import Callable
from typing import Any

import anthropic
import asyncpg
import openai
import pytest

from shared.fake_provider_count import COUNT_BASE, TOKENS_PER_MESSAGE
from tests.e2e.conftest import E2E_DATABASE
from tests.e2e.count_gateway import CountGateway, count_gateway  # noqa: F401 (fixture)
from tests.support.databases import tenant_usage_rows

MESSAGES: Any = [{"role": "user", "content": "how many tokens here"},
                 {"role": "assistant", "content": "let me count"},
                 {"role": "user", "content": [{"type": "text", "text": "all of them"}]}]
FAKE_COUNT = COUNT_BASE + 3 * TOKENS_PER_MESSAGE + 2 + 4 + 3 + 3  # system "be exact", then each message's words


@pytest.fixture
async def key(make_tenant: Callable[..., Any]) -> str:
    _, api_key = await make_tenant()
    return str(api_key)


def claude(gw: CountGateway, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.base_url, api_key=key, max_retries=0)


async def usage_rows(tenant_id: str, count: int) -> list[asyncpg.Record]:
    return await tenant_usage_rows(E2E_DATABASE, tenant_id, count)


async def test_count_tokens_anthropic_route_is_anthropics_count(count_gateway: CountGateway, key: str) -> None:  # noqa: F811
    raw = await claude(count_gateway, key).messages.with_raw_response.count_tokens(
        model="ct-claude", system="be exact", messages=MESSAGES)
    assert (await raw.parse()).input_tokens == FAKE_COUNT
    assert raw.headers["x-gateway-token-counter"] == "anthropic"
    assert raw.headers["x-gateway-model"] == "ct-claude-upstream" and raw.headers["x-gateway-fallback"] == "false"
    sent = count_gateway.upstream_requests("ct-claude-upstream")[-1]
    assert sent["path"] == "/v1/messages/count_tokens"
    # As /v1/messages sends it: a lone text block as the equivalent string.
    sent_messages = [*MESSAGES[:2], {"role": "user", "content": "all of them"}]
    assert sent["body"] == {"model": "ct-claude-upstream", "system": "be exact", "messages": sent_messages}


async def test_count_tokens_anthropic_tools_and_thinking_forwarded(count_gateway: CountGateway,  # noqa: F811
                                                                   key: str) -> None:
    tools: Any = [{"name": "lookup", "description": "find a thing", "input_schema": {"type": "object"}}]
    count = await claude(count_gateway, key).messages.count_tokens(
        model="ct-claude", system="be exact", messages=MESSAGES, tools=tools,
        thinking={"type": "enabled", "budget_tokens": 2048})
    assert count.input_tokens == FAKE_COUNT + 1 + 3 + 2
    body = count_gateway.upstream_requests("ct-claude-upstream")[-1]["body"]
    assert body["tools"] == tools and body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert "max_tokens" not in body


async def test_count_tokens_anthropic_falls_back_to_the_next_anthropic_target(count_gateway: CountGateway,  # noqa: F811
                                                                             key: str) -> None:
    raw = await claude(count_gateway, key).messages.with_raw_response.count_tokens(
        model="ct-claude-fallback", system="be exact", messages=MESSAGES)
    assert (await raw.parse()).input_tokens == FAKE_COUNT
    assert raw.headers["x-gateway-model"] == "ct-second" and raw.headers["x-gateway-fallback"] == "true"


async def test_count_tokens_never_falls_back_to_another_tokenizer(count_gateway: CountGateway,  # noqa: F811
                                                                  key: str) -> None:
    with pytest.raises(anthropic.APIStatusError) as failed:
        await claude(count_gateway, key).messages.count_tokens(model="ct-claude-then-gpt", messages=MESSAGES)
    assert failed.value.status_code == 502
    assert failed.value.body["error"]["code"] == "all_targets_failed"  # type: ignore[index]


async def test_count_tokens_openai_route_is_tiktoken(count_gateway: CountGateway, key: str) -> None:  # noqa: F811
    raw = await claude(count_gateway, key).messages.with_raw_response.count_tokens(
        model="ct-gpt", messages=[{"role": "user", "content": "Hello, world"}])
    assert (await raw.parse()).input_tokens == 3 + 3 + 1 + 3
    assert raw.headers["x-gateway-token-counter"] == "tiktoken/o200k_base"
    assert all(entry["path"] != "/v1/messages/count_tokens" for entry in count_gateway.upstream_requests("gpt-4o"))


async def test_count_tokens_bad_body_is_anthropic_400(count_gateway: CountGateway, key: str) -> None:  # noqa: F811
    with pytest.raises(anthropic.BadRequestError) as refused:
        await claude(count_gateway, key).messages.count_tokens(model="ct-claude", messages=MESSAGES,
                                                             extra_body={"max_tokens": 10})
    assert "max_tokens" in refused.value.message


async def test_count_tokens_usage_record_costs_nothing(count_gateway: CountGateway,  # noqa: F811
                                                       make_tenant: Callable[..., Any]) -> None:
    tenant_id, api_key = await make_tenant()
    await claude(count_gateway, str(api_key)).messages.count_tokens(model="ct-claude", messages=MESSAGES)
    rows = await usage_rows(str(tenant_id), 1)
    assert len(rows) == 1
    assert rows[0]["cost_usd"] == 0 and rows[0]["status"] == "succeeded" and rows[0]["model"] == "ct-claude-upstream"
    assert rows[0]["endpoint"] == "count_tokens" and rows[0]["prompt_tokens"] == 0


@pytest.mark.parametrize("name", ["ct-gpt", "org/ct-model:v1"])
async def test_models_retrieve_openai_sdk(count_gateway: CountGateway, key: str, name: str) -> None:  # noqa: F811
    client = openai.AsyncOpenAI(base_url=f"{count_gateway.base_url}/v1", api_key=key, max_retries=0)
    model = await client.models.retrieve(name)
    assert (model.id, model.object, model.owned_by) == (name, "model", "llm-gateway")
    with pytest.raises(openai.NotFoundError) as missing:
        await client.models.retrieve("no/such:model")
    assert missing.value.code == "model_not_found"


async def test_models_retrieve_and_list_anthropic_sdk(count_gateway: CountGateway, key: str) -> None:  # noqa: F811
    client = claude(count_gateway, key)
    model = await client.models.retrieve("org/ct-model:v1")
    assert (model.id, model.type, model.display_name) == ("org/ct-model:v1", "model", "org/ct-model:v1")
    names = [info.id async for info in client.models.list(limit=2)]  # pages through the cursor
    assert names == ["ct-claude", "ct-claude-fallback", "ct-claude-then-gpt", "ct-gpt", "org/ct-model:v1"]
    with pytest.raises(anthropic.NotFoundError):
        await client.models.retrieve("nope")
