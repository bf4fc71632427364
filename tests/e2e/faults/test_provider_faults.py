"""A provider down (connection refused), slow (past its timeout) or answering garbage (a 200 that is not JSON,
or JSON that is not a completion): the gateway falls back, or answers a clear 5xx within a bounded time.
The circuit breaker of a down target opens after BREAKER_FAILURE_THRESHOLD failures, skips it while open,
and closes again through a half-open probe once the provider is back. (tests/e2e/test_fallback.py covers
fallback on 500, 429 and timeouts, and a 400 passed through.)"""

import time
import uuid

import httpx
import pytest
import redis.asyncio as redis

from shared.keys import breaker_key
from shared.routing_table import Target
from tests.e2e.faults.conftest import REDIS_URL, Stack, StackFactory, new_tenant
from tests.support.processes import wait_http

OPEN_S = 2.0
BOUND_S = 5.0  # one attempt per target (MAX_ATTEMPTS_PER_TARGET=1), each at most 0.5 s or an instant failure
BREAKER_ENV = {"BREAKER_FAILURE_THRESHOLD": "2", "BREAKER_OPEN_S": str(OPEN_S)}


async def _ask(http: httpx.AsyncClient, key: str, model: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await http.post("/api/v1/completions", headers={"X-API-Key": key},
                               json={"model": model, "messages": [{"role": "user", "content": f"x {uuid.uuid4()}"}]})
    return response, time.monotonic() - started


async def _breaker(gw: Stack, model: str) -> dict[bytes, bytes]:
    target = Target(provider="openai", model=model, base_url=f"http://127.0.0.1:{gw.down_port}/v1")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return dict(await client.hgetall(breaker_key(target.target_id)))
    finally:
        await client.aclose()


@pytest.mark.timeout(60)
async def test_provider_down_breaker_opens_then_closes_when_back(stack: StackFactory) -> None:
    gw = await stack(workers=1, env=BREAKER_ENV)
    _, key = await new_tenant(gw)
    async with gw.client() as http:
        answers = [await _ask(http, key, "down-then-up") for _ in range(2)]  # two refused connections
        opened = await _breaker(gw, "primary-down")
        while_open, _ = await _ask(http, key, "down-then-up")
        still_open = await _breaker(gw, "primary-down")
        wait_http(f"http://127.0.0.1:{gw.down_port}/_stats", gw.start_fake("provider-back", gw.down_port))
        time.sleep(max(0.0, float(opened[b"opened_until"]) - time.time()) + 0.1)
        probe, _ = await _ask(http, key, "down-then-up")  # half-open: this request probes the primary
        closed = await _breaker(gw, "primary-down")
    for response, elapsed in answers:
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "secondary-after-down" and response.json()["fallback_used"] is True
        assert elapsed < BOUND_S
    assert float(opened[b"opened_until"]) > time.time() - OPEN_S, f"breaker not open after 2 failures: {opened}"
    assert while_open.status_code == 200 and while_open.json()["model"] == "secondary-after-down"
    assert still_open[b"opened_until"] == opened[b"opened_until"], "an open breaker let a request through"
    assert probe.status_code == 200, probe.text
    assert probe.json()["model"] == "primary-down" and probe.json()["fallback_used"] is False
    assert closed == {}, f"breaker not closed after a successful probe: {closed}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("model", "status", "cause"), [
    ("down-only", 502, "connection failed"),
    ("slow-only", 504, "timed out"),
    ("garbage-json-only", 502, "not a JSON object"),
    ("garbage-shape-only", 502, "not a message"),
])
async def test_provider_failure_is_clear_error_within_bound(stack: StackFactory, model: str, status: int,
                                                            cause: str) -> None:
    """With every target failed the answer is `all_targets_failed` (the route's contract, see test_fallback.py):
    504 when the last cause was a timeout, else 502, naming that cause; garbage with a fallback falls back."""
    gw = await stack(workers=1)
    _, key = await new_tenant(gw)
    async with gw.client() as http:
        response, elapsed = await _ask(http, key, model)
        fallback, _ = await _ask(http, key, "garbage-json")
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == "all_targets_failed" and cause in error["message"], error
    assert elapsed < BOUND_S, f"{model} took {elapsed:.1f}s"
    assert fallback.status_code == 200 and fallback.json()["model"] == "secondary-after-garbage"
