"""openai-agents through the gateway, served by an OpenAI and by an Anthropic target of the fake provider, in
both its modes: `OpenAIChatCompletionsModel` (`/v1/chat/completions`) and its default `OpenAIResponsesModel`
(`/v1/responses`, nothing set to make the agent speak Chat Completions). A function tool round trip in each
mode (the agent calls the tool, sends its result back, as a `function_call_output` item on /v1/responses, and
the final answer quotes it) plain and streamed, and a structured `output_type` (the answer must parse into the
pydantic model). The default mode is also run as a user runs it: a model given by name only, the provider
left to choose the API, every call it makes seen on the wire to be `POST /v1/responses`."""

import httpx2
import pytest
from agents import (
    Agent,
    Model,
    OpenAIChatCompletionsModel,
    OpenAIProvider,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    function_tool,
)
from openai import AsyncOpenAI
from pydantic import BaseModel

from tests.e2e.real_clients import BOTH, ClientsGateway, clients_gateway  # noqa: F401 (fixture)

NO_TRACING = RunConfig(tracing_disabled=True)  # tracing would call api.openai.com


class Weather(BaseModel):
    city: str
    temperature_c: int
    sunny: bool


calls: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The current weather of a city."""
    calls.append(city)
    return f"Sunny in {city}, 21 C"


def _model(gw: ClientsGateway, key: str, routed: str, mode: str = "chat") -> Model:
    client = AsyncOpenAI(base_url=gw.openai_url, api_key=key, max_retries=0, timeout=30)
    if mode == "responses":
        return OpenAIResponsesModel(model=routed, openai_client=client)
    return OpenAIChatCompletionsModel(model=routed, openai_client=client)


@pytest.mark.parametrize("routed", BOTH)
@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("mode", ["chat", "responses"])
async def test_agent_function_tool_round_trip(
    clients_gateway: ClientsGateway, tenant_key: str, routed: str, streamed: bool, mode: str  # noqa: F811
) -> None:
    calls.clear()
    agent = Agent(name="weather", instructions="Use the tool.", tools=[get_weather],
                  model=_model(clients_gateway, tenant_key, routed, mode))
    if streamed:
        run = Runner.run_streamed(agent, "What is the weather?", run_config=NO_TRACING)
        async for _ in run.stream_events():
            pass
        output = run.final_output
    else:
        output = (await Runner.run(agent, "What is the weather?", run_config=NO_TRACING)).final_output
    assert calls == ["city example"]  # arguments generated from the tool's schema, parsed by the agent
    assert output == "Tool result: Sunny in city example, 21 C"
    upstream = clients_gateway.upstream_requests(routed)[-1]["body"]
    tools = upstream["tools"]
    names = [tool["function"]["name"] if "function" in tool else tool["name"] for tool in tools]
    assert names == ["get_weather"]


@pytest.mark.parametrize("routed", BOTH)
async def test_agent_default_mode_speaks_responses_with_a_function_tool(
    clients_gateway: ClientsGateway, tenant_key: str, routed: str  # noqa: F811
) -> None:
    """Nothing chooses the API: the agent names its model as a string and the provider picks the mode, which
    by default is the Responses API (the mode that was 404 before /v1/responses existed)."""
    calls.clear()
    paths: list[str] = []

    async def record(request: httpx2.Request) -> None:
        paths.append(f"{request.method} {request.url.path}")

    http = httpx2.AsyncClient(event_hooks={"request": [record]}, timeout=30)
    client = AsyncOpenAI(base_url=clients_gateway.openai_url, api_key=tenant_key, max_retries=0, http_client=http)
    config = RunConfig(model_provider=OpenAIProvider(openai_client=client), tracing_disabled=True)
    agent = Agent(name="weather", instructions="Use the tool.", tools=[get_weather], model=routed)
    result = await Runner.run(agent, "What is the weather?", run_config=config)
    await http.aclose()
    assert calls == ["city example"]
    assert result.final_output == "Tool result: Sunny in city example, 21 C"
    assert paths == ["POST /v1/responses"] * 2  # the tool call, then the answer quoting its result


@pytest.mark.parametrize("routed", BOTH)
async def test_agent_structured_output_type(
    clients_gateway: ClientsGateway, tenant_key: str, routed: str  # noqa: F811
) -> None:
    agent = Agent(name="extract", instructions="Answer as JSON.", output_type=Weather,
                  model=_model(clients_gateway, tenant_key, routed))
    result = await Runner.run(agent, "Weather in Paris?", run_config=NO_TRACING)
    assert result.final_output == Weather(city="city example", temperature_c=1, sunny=True)
