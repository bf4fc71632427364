"""openai-agents in its default mode (`OpenAIResponsesModel`, i.e. `/v1/responses`) through the gateway, served
by an OpenAI and by an Anthropic target of the fake provider: a function tool round trip (the agent calls the
tool, sends its result back as a `function_call_output` item, and the final answer quotes it), plain and
streamed. Nothing is set to make the agent speak Chat Completions."""

import pytest
from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool
from openai import AsyncOpenAI

from tests.e2e.real_clients import BOTH, ClientsGateway, clients_gateway  # noqa: F401 (fixture)

NO_TRACING = RunConfig(tracing_disabled=True)  # tracing would call api.openai.com

calls: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The current weather of a city."""
    calls.append(city)
    return f"Sunny in {city}, 21 C"


def _model(gw: ClientsGateway, key: str, routed: str) -> OpenAIResponsesModel:
    client = AsyncOpenAI(base_url=gw.openai_url, api_key=key, max_retries=0, timeout=30)
    return OpenAIResponsesModel(model=routed, openai_client=client)


@pytest.mark.parametrize("routed", BOTH)
@pytest.mark.parametrize("streamed", [False, True])
async def test_agent_responses_function_tool_round_trip(
    clients_gateway: ClientsGateway, tenant_key: str, routed: str, streamed: bool  # noqa: F811
) -> None:
    calls.clear()
    agent = Agent(name="weather", instructions="Use the tool.", tools=[get_weather],
                  model=_model(clients_gateway, tenant_key, routed))
    if streamed:
        run = Runner.run_streamed(agent, "What is the weather?", run_config=NO_TRACING)
        async for _ in run.stream_events():
            pass
        output = run.final_output
    else:
        output = (await Runner.run(agent, "What is the weather?", run_config=NO_TRACING)).final_output
    assert calls == ["city example"]
    assert output == "Tool result: Sunny in city example, 21 C"
    upstream = clients_gateway.upstream_requests(routed)[-1]["body"]
    names = [tool["function"]["name"] if "function" in tool else tool["name"] for tool in upstream["tools"]]
    assert names == ["get_weather"]
