"""The official `openai` SDK's Responses API (`client.responses`) through the gateway, served by an OpenAI and
by an Anthropic target of the fake provider: plain, streamed (raw events and the SDK's `responses.stream`
accumulator), a function tool round trip, `previous_response_id` chained across providers, background mode
polled, cancelled and streamed again from a sequence number after a disconnect."""

import json
import time

import httpx
import pytest
from openai import BadRequestError, NotFoundError

from tests.e2e.conftest import Gateway
from tests.e2e.real_clients import BOTH, ClientsGateway, clients_gateway  # noqa: F401 (fixture)
from tests.support.responses_client import responses_client, stream_until_first_text

TOOL = {"type": "function", "name": "get_weather", "description": "The weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.mark.parametrize("routed", BOTH)
async def test_responses_create_answers_plain(clients_gateway: ClientsGateway, tenant_key: str,  # noqa: F811
                                        routed: str) -> None:
    client = responses_client(clients_gateway.base_url, tenant_key)
    response = client.responses.create(model=routed, input="Hello there", instructions="Be brief.",
                                       metadata={"team": "qa"}, temperature=0.5, max_output_tokens=200)
    assert response.status == "completed"
    assert response.output_text
    assert response.metadata == {"team": "qa"} and response.instructions == "Be brief." and response.temperature == 0.5
    assert response.usage is not None and response.usage.total_tokens == (response.usage.input_tokens
                                                                          + response.usage.output_tokens)
    upstream = clients_gateway.upstream_requests(routed)[-1]["body"]
    system = upstream.get("system") or upstream["messages"][0]["content"]
    assert "Be brief." in str(system)


@pytest.mark.parametrize("routed", BOTH)
async def test_responses_stream_events_are_numbered_and_accumulate(clients_gateway: ClientsGateway,  # noqa: F811
                                                             tenant_key: str, routed: str) -> None:
    client = responses_client(clients_gateway.base_url, tenant_key)
    events = list(client.responses.create(model=routed, input="Stream please", stream=True))
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert [events[0].type, events[1].type, events[-1].type] == ["response.created", "response.in_progress",
                                                                 "response.completed"]
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text and events[-1].response.output_text == text
    with client.responses.stream(model=routed, input="Stream please") as stream:
        final = stream.get_final_response()
    assert final.output_text == text


@pytest.mark.parametrize("routed", BOTH)
async def test_responses_function_tool_round_trip(clients_gateway: ClientsGateway, tenant_key: str,  # noqa: F811
                                            routed: str) -> None:
    client = responses_client(clients_gateway.base_url, tenant_key)
    first = client.responses.create(model=routed, input="Weather?", tools=[TOOL], tool_choice="required")
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    result = {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 21 C"}
    second = client.responses.create(model=routed, input=[{"role": "user", "content": "Weather?"}, *first.output,
                                                          result], tools=[TOOL], store=False)
    assert "Sunny, 21 C" in second.output_text


@pytest.mark.parametrize("routed", BOTH)
async def test_responses_text_format_reasoning_and_max_output_tokens_reach_the_target(
    clients_gateway: ClientsGateway, tenant_key: str, routed: str  # noqa: F811
) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "sunny": {"type": "boolean"}},
              "required": ["city", "sunny"], "additionalProperties": False}
    client = responses_client(clients_gateway.base_url, tenant_key)
    response = client.responses.create(
        model=routed, input="Weather in Paris?", max_output_tokens=4000, reasoning={"effort": "low"},
        text={"format": {"type": "json_schema", "name": "weather", "schema": schema, "strict": True}})
    assert set(json.loads(response.output_text)) == {"city", "sunny"}  # the answer follows the schema
    sent = clients_gateway.upstream_requests(routed)[-1]["body"]
    if routed == "rc-openai":
        assert sent["response_format"]["json_schema"]["schema"] == schema and sent["reasoning_effort"] == "low"
        assert sent.get("max_completion_tokens", sent.get("max_tokens")) == 4000
    else:
        assert sent["output_config"]["format"]["schema"] == schema and sent["max_tokens"] == 4000
        assert sent["thinking"]["type"] == "enabled"


@pytest.mark.parametrize("first,second", [("rc-openai", "rc-anthropic"), ("rc-anthropic", "rc-openai")])
async def test_responses_previous_response_id_chains_across_providers(
    clients_gateway: ClientsGateway, tenant_key: str, first: str, second: str  # noqa: F811
) -> None:
    client = responses_client(clients_gateway.base_url, tenant_key)
    one = client.responses.create(model=first, input="My name is Ada")
    two = client.responses.create(model=second, input="What is my name?", previous_response_id=one.id)
    assert two.previous_response_id == one.id and two.output_text
    upstream = str(clients_gateway.upstream_requests(second)[-1]["body"]["messages"])
    assert "My name is Ada" in upstream and one.output_text in upstream and "What is my name?" in upstream


async def test_responses_previous_response_id_unknown_is_400(clients_gateway: ClientsGateway,  # noqa: F811
                                                              tenant_key: str) -> None:
    client = responses_client(clients_gateway.base_url, tenant_key)
    with pytest.raises(BadRequestError) as refused:
        client.responses.create(model="rc-openai", input="x", previous_response_id="resp_job_unknown")
    assert refused.value.code == "previous_response_not_found"
    unstored = client.responses.create(model="rc-openai", input="x", store=False)
    with pytest.raises(NotFoundError):
        client.responses.retrieve(unstored.id)


async def test_responses_of_another_tenant_are_not_found(clients_gateway: ClientsGateway, tenant_key: str,  # noqa: F811
                                                   make_tenant: object) -> None:
    mine = responses_client(clients_gateway.base_url, tenant_key).responses.create(model="rc-openai", input="secret")
    _, other_key = await make_tenant()  # type: ignore[operator]
    other = responses_client(clients_gateway.base_url, other_key)
    with pytest.raises(NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(BadRequestError):
        other.responses.create(model="rc-openai", input="x", previous_response_id=mine.id)


@pytest.mark.parametrize("routed", BOTH)
async def test_responses_background_is_polled_to_completion(clients_gateway: ClientsGateway,  # noqa: F811
                                                      tenant_key: str, routed: str) -> None:
    client = responses_client(clients_gateway.base_url, tenant_key)
    queued = client.responses.create(model=routed, input="In the background", background=True)
    assert queued.status == "queued" and queued.background is True
    response = queued
    deadline = time.monotonic() + 20
    while response.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.1)
        response = client.responses.retrieve(queued.id)
    assert response.status == "completed" and response.output_text
    items = client.responses.input_items.list(queued.id)
    assert [item.type for item in items.data] == ["message"]
    client.responses.delete(queued.id)
    with pytest.raises(NotFoundError):
        client.responses.retrieve(queued.id)


async def test_responses_background_is_cancelled(gateway: Gateway, tenant_key: str) -> None:
    client = responses_client(gateway.base_url, tenant_key)
    queued = client.responses.create(model="slow-3000", input="Never mind", background=True)
    cancelled = client.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    deadline = time.monotonic() + 10
    while client.responses.retrieve(queued.id).status != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.responses.retrieve(queued.id).status == "cancelled"


@pytest.mark.parametrize("routed", BOTH)
async def test_responses_stream_resumes_after_disconnect_without_gap(clients_gateway: ClientsGateway,  # noqa: F811
                                                                tenant_key: str, routed: str) -> None:
    client = responses_client(clients_gateway.base_url, tenant_key)
    first, last, response_id = stream_until_first_text(client, routed)
    rest = list(client.responses.retrieve(response_id, stream=True, starting_after=last))
    events = [*first, *rest]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[-1].type == "response.completed"
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == events[-1].response.output_text
    replayed = list(client.responses.retrieve(response_id, stream=True))
    assert [event.model_dump() for event in replayed] == [event.model_dump() for event in events]  # same events


def _error(response: httpx.Response) -> dict[str, object]:
    body: dict[str, object] = response.json()["error"]
    assert set(body) == {"message", "type", "code", "param"}  # OpenAI's error shape
    return body


async def test_responses_create_refuses_an_unknown_field_in_openai_shape(
    clients_gateway: ClientsGateway, tenant_key: str  # noqa: F811
) -> None:
    response = httpx.post(f"{clients_gateway.openai_url}/responses", headers={"Authorization": f"Bearer {tenant_key}"},
                          json={"model": "rc-openai", "input": "x", "conversation": "conv_1"}, timeout=10)
    assert response.status_code == 400 and "'conversation'" in str(_error(response)["message"])


@pytest.mark.parametrize(("method", "path", "params", "status"), [
    ("POST", "/cancel", {}, 400),  # not a background response
    ("GET", "", {"starting_after": "3"}, 400),  # starting_after without stream=true
    ("GET", "/input_items", {"after": "msg_unknown"}, 400),
])
async def test_responses_routes_refuse_what_openai_refuses(
    clients_gateway: ClientsGateway, tenant_key: str, method: str, path: str,  # noqa: F811
    params: dict[str, str], status: int
) -> None:
    created = responses_client(clients_gateway.base_url, tenant_key).responses.create(model="rc-openai", input="x")
    response = httpx.request(method, f"{clients_gateway.openai_url}/responses/{created.id}{path}", params=params,
                             headers={"Authorization": f"Bearer {tenant_key}"}, timeout=10)
    assert response.status_code == status and _error(response)["type"] == "invalid_request_error"


async def test_responses_delete_of_an_unknown_id_is_404(clients_gateway: ClientsGateway,  # noqa: F811
                                                         tenant_key: str) -> None:
    with pytest.raises(NotFoundError):
        responses_client(clients_gateway.base_url, tenant_key).responses.delete("resp_job_unknown")
