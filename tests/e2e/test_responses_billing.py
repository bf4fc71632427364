"""What `POST /v1/responses` shares with `/api/v1/jobs` end to end (real API, worker, fake provider, Redis,
PostgreSQL): a response, foreground or background, is billed once and recorded in usage like any chat job,
with the cost its job and headers say; a background response is queued as batch work (the fair scheduler's
lower class, as a submitted job is) and a foreground one as interactive; and `previous_response_id` chains a
conversation across fallback, whichever provider served each turn."""

from collections.abc import Callable

import httpx
import pytest
import redis.asyncio as aioredis

from shared.keys import job_key
from shared.response_store import job_id_of
from tests.e2e.conftest import E2E_DATABASE, REDIS_URL
from tests.e2e.real_clients import ClientsGateway, clients_gateway  # noqa: F401 (fixture)
from tests.support.databases import tenant_usage_rows
from tests.support.responses_client import responses_client


async def _priority(job_id: str) -> str:
    client = aioredis.from_url(REDIS_URL, decode_responses=True)  # type: ignore[no-untyped-call]
    try:
        return str(await client.hget(job_key(job_id), "priority"))
    finally:
        await client.aclose()


async def test_responses_are_billed_and_recorded_like_jobs(clients_gateway: ClientsGateway,  # noqa: F811
                                                           make_tenant: Callable[..., object]) -> None:
    tenant_id, key = await make_tenant()  # type: ignore[misc]
    client = responses_client(clients_gateway.base_url, key)
    raw = client.responses.with_raw_response.create(model="rc-openai", input="Bill me once")
    foreground = raw.parse()
    queued = client.responses.create(model="rc-anthropic", input="Bill me in the background", background=True)
    background_job = str(job_id_of(queued.id))
    assert await _priority(raw.headers["x-gateway-job-id"]) == "interactive"
    assert await _priority(background_job) == "batch"
    rows = {row["public_model"]: row for row in await tenant_usage_rows(E2E_DATABASE, tenant_id, 2)}
    assert set(rows) == {"rc-openai", "rc-anthropic"}  # one record each: billed once
    background = client.responses.retrieve(queued.id)
    async with httpx.AsyncClient(base_url=clients_gateway.base_url, timeout=10) as http:
        job = (await http.get(f"/api/v1/jobs/{background_job}", headers={"X-API-Key": key})).json()
    for row, response, cost in ((rows["rc-openai"], foreground, float(raw.headers["x-gateway-cost-usd"])),
                                (rows["rc-anthropic"], background, float(job["cost_usd"]))):
        assert response.status == "completed" and response.usage is not None
        assert (row["prompt_tokens"], row["completion_tokens"]) == (response.usage.input_tokens,
                                                                    response.usage.output_tokens)
        assert row["status"] == "succeeded" and row["endpoint"] == "chat"  # the provider call is a chat call
        assert cost > 0 and float(row["cost_usd"]) == pytest.approx(cost)
    assert (rows["rc-openai"]["provider"], rows["rc-anthropic"]["provider"]) == ("openai", "anthropic")


async def test_responses_previous_response_id_chains_across_fallback(clients_gateway: ClientsGateway,  # noqa: F811
                                                                      tenant_key: str) -> None:
    """Each turn's first target fails with 503; the other provider serves it, and the next turn, on a route
    whose fallback is the first turn's provider's opposite, still sees the whole conversation."""
    client = responses_client(clients_gateway.base_url, tenant_key)
    one = client.responses.with_raw_response.create(model="rc-openai-then-anthropic", input="My name is Grace")
    assert (one.headers["x-gateway-fallback"], one.headers["x-gateway-provider"]) == ("true", "anthropic")
    first = one.parse()
    two = client.responses.with_raw_response.create(model="rc-anthropic-then-openai", input="And my name?",
                                                    previous_response_id=first.id)
    assert (two.headers["x-gateway-fallback"], two.headers["x-gateway-provider"]) == ("true", "openai")
    assert two.parse().previous_response_id == first.id and two.parse().output_text
    upstream = str(clients_gateway.upstream_requests("rc-anthropic-then-openai")[-1]["body"]["messages"])
    assert "My name is Grace" in upstream and first.output_text in upstream and "And my name?" in upstream
