"""Responses API background mode and request options end to end (real API, worker, fake provider, Redis): a
background response outlives its job record (the worker settles it), an `Idempotency-Key` repeat is the same
response, the SDK's `responses.stream(response_id=..., starting_after=...)` resumes a stream, a replay that
reaches REQUEST_TIMEOUT_S ends without a terminal event and resumes to the end, a target's refusal names the
Responses field, and `include` is checked on the read endpoints."""

import asyncio
import json
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
import redis.asyncio as aioredis
from openai import ConflictError

from shared.keys import job_key
from shared.response_store import job_id_of, response_key
from tests.e2e.conftest import REDIS_URL, Gateway
from tests.e2e.real_clients import BOTH, ClientsGateway, clients_gateway  # noqa: F401 (fixture)
from tests.support.responses_client import responses_client, stream_until_first_text

ENDED = ("response.completed", "response.failed", "response.incomplete")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _stored_status(tenant_id: str, response_id: str, timeout_s: float = 15) -> str | None:
    """The stored response's status as Redis holds it, read without the API (which would settle it itself)."""
    client = aioredis.from_url(REDIS_URL)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            raw = await client.get(response_key(tenant_id, response_id))
            status = json.loads(raw)["status"] if raw else None
            if status is not None or time.monotonic() > deadline:
                return status
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def test_responses_background_outlives_its_job_record(clients_gateway: ClientsGateway,  # noqa: F811
                                                           make_tenant: Callable[..., object]) -> None:
    tenant_id, key = await make_tenant()  # type: ignore[misc]
    client = responses_client(clients_gateway.base_url, key)
    queued = client.responses.create(model="rc-openai", input="Remember the word heron", background=True)
    assert await _stored_status(tenant_id, queued.id) == "completed"  # settled by the worker alone
    redis = aioredis.from_url(REDIS_URL)
    try:
        assert await redis.delete(job_key(str(job_id_of(queued.id)))) == 1  # as JOB_TTL_S would expire it
    finally:
        await redis.aclose()
    response = client.responses.retrieve(queued.id)
    assert response.status == "completed" and response.output_text
    chained = client.responses.create(model="rc-anthropic", input="Which word?", previous_response_id=queued.id)
    assert chained.status == "completed"
    upstream = str(clients_gateway.upstream_requests("rc-anthropic")[-1]["body"]["messages"])
    assert "Remember the word heron" in upstream and response.output_text in upstream


async def test_responses_idempotency_key_repeat_is_the_same_response(clients_gateway: ClientsGateway,  # noqa: F811
                                                                     tenant_key: str) -> None:
    client = responses_client(clients_gateway.base_url, tenant_key)
    text = f"once only {uuid.uuid4().hex}"
    headers = {"Idempotency-Key": f"resp-{uuid.uuid4().hex}"}
    first = client.responses.with_raw_response.create(model="rc-openai", input=text, extra_headers=headers)
    again = client.responses.with_raw_response.create(model="rc-openai", input=text, extra_headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.parse().id == first.parse().id and again.parse().output_text == first.parse().output_text
    sent = [entry for entry in clients_gateway.upstream_requests("rc-openai") if text in str(entry["body"])]
    assert len(sent) == 1  # one job, one upstream call
    with pytest.raises(ConflictError) as reused:
        client.responses.create(model="rc-openai", input=f"{text}, changed", extra_headers=headers)
    assert reused.value.code == "idempotency_key_reused"


async def test_responses_idempotency_key_repeat_of_background_answers_its_state(
    clients_gateway: ClientsGateway, tenant_key: str  # noqa: F811
) -> None:
    client = responses_client(clients_gateway.base_url, tenant_key)
    headers = {"Idempotency-Key": f"resp-bg-{uuid.uuid4().hex}"}
    queued = client.responses.create(model="rc-openai", input="later", background=True, extra_headers=headers)
    deadline = time.monotonic() + 15
    while client.responses.retrieve(queued.id).status != "completed" and time.monotonic() < deadline:
        time.sleep(0.1)
    again = client.responses.create(model="rc-openai", input="later", background=True, extra_headers=headers)
    assert again.id == queued.id and again.status == "completed" and again.output_text


@pytest.mark.parametrize("routed", BOTH)
async def test_responses_stream_helper_resumes_after_sequence_number(clients_gateway: ClientsGateway,  # noqa: F811
                                                                     tenant_key: str, routed: str) -> None:
    client = responses_client(clients_gateway.base_url, tenant_key)
    first, last, response_id = stream_until_first_text(client, routed)
    with client.responses.stream(response_id=response_id, starting_after=last) as resumed:
        rest = list(resumed)
        final = resumed.get_final_response()
    assert [event.sequence_number for event in rest] == list(range(last + 1, last + 1 + len(rest)))
    assert rest[-1].type == "response.completed" and final.id == response_id
    text = "".join(event.delta for event in [*first, *rest] if event.type == "response.output_text.delta")
    assert text and final.output_text == text


async def _replay(http: httpx.AsyncClient, key: str, response_id: str,
                  after: int | None) -> tuple[list[dict[str, object]], list[str]]:
    """One `GET ?stream=true` to its end: the events, and the SSE comment lines."""
    params = {"stream": "true", **({"starting_after": str(after)} if after is not None else {})}
    events: list[dict[str, object]] = []
    comments: list[str] = []
    async with http.stream("GET", f"/v1/responses/{response_id}", params=params, headers=_auth(key)) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
            elif line.startswith(":") and "ping" not in line:
                comments.append(line)
    return events, comments


async def test_responses_replay_past_request_timeout_resumes_to_the_end(gateway: Gateway, tenant_key: str,
                                                                        short_api: str) -> None:
    client = responses_client(short_api, tenant_key)
    queued = client.responses.create(model="slow-3000", input="take time", background=True)
    events: list[dict[str, object]] = []
    ends: list[str] = []
    async with httpx.AsyncClient(base_url=short_api, timeout=30) as http:
        deadline = time.monotonic() + 20
        while not (events and events[-1]["type"] in ENDED) and time.monotonic() < deadline:
            after = int(str(events[-1]["sequence_number"])) if events else None
            more, comments = await _replay(http, tenant_key, queued.id, after)
            events += more
            ends.append(str(more[-1]["type"]) if more and more[-1]["type"] in ENDED else comments[-1])
    assert len(ends) > 1 and ends[-1] == "response.completed", ends
    assert ends[0].startswith(": the response is still running; resume with starting_after="), ends
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    text = "".join(str(event["delta"]) for event in events if event["type"] == "response.output_text.delta")
    final = events[-1]["response"]
    assert isinstance(final, dict) and final["status"] == "completed"
    assert text and text == final["output"][0]["content"][0]["text"]


@pytest.mark.parametrize(("fields", "named"), [
    ({"text": {"format": {"type": "json_object"}}}, "text.format"),
    ({"reasoning": {"effort": "high"}, "max_output_tokens": 1000}, "reasoning.effort"),
])
async def test_responses_refusal_names_the_responses_field_and_drop_header_takes_it(
    clients_gateway: ClientsGateway, tenant_key: str, fields: dict[str, object], named: str  # noqa: F811
) -> None:
    body = {"model": "rc-anthropic", "input": "x", **fields}
    url = f"{clients_gateway.openai_url}/responses"
    refused = httpx.post(url, headers=_auth(tenant_key), json=body, timeout=10)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "unsupported_parameter" and error["message"].startswith(f"'{named}' cannot be honoured")
    dropped = httpx.post(url, headers={**_auth(tenant_key), "x-gateway-drop-params": named}, json=body, timeout=30)
    assert dropped.status_code == 200, dropped.text
    assert dropped.headers["x-gateway-dropped-params"] == named


async def test_responses_read_endpoints_check_include(clients_gateway: ClientsGateway,  # noqa: F811
                                                      tenant_key: str) -> None:
    client = responses_client(clients_gateway.base_url, tenant_key)
    created = client.responses.create(model="rc-openai", input="x")
    listed = client.responses.input_items.list(created.id, include=["message.input_image.image_url",
                                                                     "reasoning.encrypted_content"])
    assert [item.type for item in listed.data] == ["message"]
    url = f"{clients_gateway.openai_url}/responses/{created.id}"
    for path, value in (("/input_items", "file_search_call.results"), ("", "message.input_image.image_url")):
        for name in ("include[]", "include"):
            response = httpx.get(f"{url}{path}", params={name: value}, headers=_auth(tenant_key), timeout=10)
            assert response.status_code == 400, (path, name, response.text)
            assert response.json()["error"]["message"].startswith(f"'include' '{value}' is not supported")
