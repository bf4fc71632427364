"""LangChain through the gateway: `ChatOpenAI` (Chat Completions) and `ChatAnthropic` (Messages), each routed
to an OpenAI and to an Anthropic target of the fake provider. `bind_tools`: a tool call comes back with
parsed arguments, and a second turn carrying the ToolMessage gets an answer quoting it; plain and streamed.
`with_structured_output`: a pydantic instance comes back (json_schema for OpenAI, a forced tool for
Anthropic)."""

from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, SecretStr

from tests.e2e.real_clients import BOTH, ClientsGateway, clients_gateway  # noqa: F401 (fixture)


class Weather(BaseModel):
    city: str
    temperature_c: int


@tool
def lookup_weather(city: str, days: int) -> str:
    """The weather forecast of a city for some days."""
    return f"Sunny in {city} for {days} days"


def _chat(kind: str, gw: ClientsGateway, key: str, routed: str) -> BaseChatModel:
    if kind == "openai":
        return ChatOpenAI(model=routed, base_url=gw.openai_url, api_key=SecretStr(key), max_retries=0, timeout=30)
    return ChatAnthropic(model_name=routed, base_url=gw.base_url, api_key=SecretStr(key), max_tokens=300,
                         max_retries=0, timeout=30)  # type: ignore[call-arg]


async def _invoke(model: Any, messages: list[BaseMessage], streamed: bool) -> AIMessage:
    """The answer; streamed, the chunks added up (LangChain's way: the sum goes back into the history)."""
    if not streamed:
        answer: AIMessage = await model.ainvoke(messages)
        return answer
    merged: Any = None
    async for chunk in model.astream(messages):
        merged = chunk if merged is None else merged + chunk
    return merged  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("routed", BOTH)
@pytest.mark.parametrize("streamed", [False, True])
async def test_bind_tools_call_then_tool_message_answer(
    clients_gateway: ClientsGateway, tenant_key: str, kind: str, routed: str, streamed: bool  # noqa: F811
) -> None:
    model = _chat(kind, clients_gateway, tenant_key, routed).bind_tools([lookup_weather])
    question = HumanMessage("Weather in Paris for the week?")
    ai = await _invoke(model, [question], streamed)
    assert [(call["name"], call["args"]) for call in ai.tool_calls] == [
        ("lookup_weather", {"city": "city example", "days": 1})
    ]
    result = await lookup_weather.ainvoke(ai.tool_calls[0]["args"])
    answer = await _invoke(model, [question, ai, ToolMessage(result, tool_call_id=ai.tool_calls[0]["id"])], streamed)
    text = answer.content if isinstance(answer.content, str) else "".join(
        part.get("text", "") for part in answer.content if isinstance(part, dict))
    assert text == "Tool result: Sunny in city example for 1 days"
    assert not answer.tool_calls


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("routed", BOTH)
async def test_with_structured_output_returns_pydantic_instance(
    clients_gateway: ClientsGateway, tenant_key: str, kind: str, routed: str  # noqa: F811
) -> None:
    model = _chat(kind, clients_gateway, tenant_key, routed).with_structured_output(Weather)
    result = await model.ainvoke("Weather in Paris?")
    assert result == Weather(city="city example", temperature_c=1)
