"""The API's metrics: on their own port, never the public one, and with label values from closed sets only,
so no client can add series (issue 12, items 6 and 7)."""

import secrets
import uuid

import httpx
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import app_client, make_tenant_key
from tests.support.processes import free_port

MADE_UP_NAMES = 2000


def _series() -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every series of the gateway's metrics in this process's registry (what /metrics would list)."""
    return {(sample.name, tuple(sorted(sample.labels.items())))
            for family in REGISTRY.collect() if family.name.startswith("llm_gateway_")
            for sample in family.samples}


async def _send_made_up_models(http: httpx.AsyncClient, key: str, count: int) -> list[int]:
    statuses = []
    for _ in range(count):
        model = f"gpt-{secrets.token_hex(240)}"  # 484 characters, routed by the default `gpt-*` route
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        response = await http.post("/api/v1/jobs", json=body, headers={"X-API-Key": key})
        statuses.append(response.status_code)
    return statuses


async def test_metrics_series_stay_flat_when_a_tenant_sends_thousands_of_made_up_model_names(
        clean_redis: str, sqlite_url: str) -> None:
    key = await make_tenant_key(sqlite_url)
    # No routes file: every gpt-* name is routed. One request a minute: all but the first are refused, as in
    # the attack, whose refused requests had still labelled their made-up names.
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, default_rate_limit=1) as http:
        assert set(await _send_made_up_models(http, key, 20)) == {202, 429}
        before = _series()
        statuses = await _send_made_up_models(http, key, MADE_UP_NAMES)
        after = _series()
    assert set(statuses) == {429}
    assert after - before == set()
    models = {dict(labels).get("model") for name, labels in after if name == "llm_gateway_requests_total"}
    assert all(model is None or len(model) < 64 for model in models), "a made-up name became a label value"


async def test_metrics_series_stay_flat_when_unauthenticated_requests_present_thousands_of_keys(
        clean_redis: str, sqlite_url: str) -> None:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url) as http:
        async def send(count: int) -> set[int]:
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
            return {(await http.post("/v1/chat/completions", json=body,
                                     headers={"X-API-Key": f"gw-{uuid.uuid4().hex}"})).status_code
                    for _ in range(count)}

        assert await send(5) == {401}
        before = _series()
        assert await send(500) == {401}
    assert _series() - before == set()


async def test_metrics_public_port_answers_404_for_metrics(clean_redis: str, sqlite_url: str) -> None:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url) as http:
        response = await http.get("/metrics")
    assert response.status_code == 404
    assert "llm_gateway" not in response.text


async def test_metrics_served_on_the_metrics_port_only(clean_redis: str, sqlite_url: str) -> None:
    port = free_port()
    key = await make_tenant_key(sqlite_url)
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, api_metrics_port=port,
                          metrics_host="127.0.0.1") as http:
        await http.post("/v1/chat/completions", json={"model": "nope", "messages": []}, headers={"X-API-Key": key})
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as scraper:
            scraped = await scraper.get("/metrics")
            elsewhere = await scraper.get("/v1/models")
    assert scraped.status_code == 200
    names = {family.name for family in text_string_to_metric_families(scraped.text)}
    assert {"llm_gateway_requests", "llm_gateway_queue_depth", "llm_gateway_workers"} <= names
    assert elsewhere.status_code == 404


async def test_metrics_label_each_request_with_its_endpoint(clean_redis: str, sqlite_url: str) -> None:
    """The endpoint comes from the path: a request refused before its body is read (here: no key) has it."""
    paths = {"/v1/chat/completions": "chat", "/v1/messages": "chat", "/api/v1/jobs": "chat", "/v1/responses": "chat",
             "/v1/embeddings": "embeddings", "/v1/completions": "completions"}

    def count(endpoint: str) -> float:
        labels = {"tenant": "unauthenticated", "model": "unknown", "provider": "none", "status": "401",
                  "endpoint": endpoint}
        return REGISTRY.get_sample_value("llm_gateway_requests_total", labels) or 0.0

    before = {endpoint: count(endpoint) for endpoint in set(paths.values())}
    async with app_client(redis_url=clean_redis, database_url=sqlite_url) as http:
        for path in paths:
            assert (await http.post(path, json={}, headers={"X-API-Key": "gw-wrong"})).status_code == 401
        assert (await http.get("/v1/models", headers={"X-API-Key": "gw-wrong"})).status_code == 401
    assert {endpoint: count(endpoint) - before[endpoint] for endpoint in before} == \
        {"chat": 4, "embeddings": 1, "completions": 1}
    endpoints = {dict(labels).get("endpoint") for name, labels in _series() if name == "llm_gateway_requests_total"}
    assert endpoints <= {"chat", "embeddings", "completions", "count_tokens"}
