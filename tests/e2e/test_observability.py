"""After real traffic, the API's and a worker's metrics ports show every metric with sane values (the API
port itself has no /metrics), `serve --workers 2` adds up both processes on its metrics port, and the JSON
logs let one request be followed from API to worker by its request id, with no key or prompt text."""

import asyncio
import json
import re
import shutil
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import ADMIN_KEY, Gateway
from tests.support.processes import REPO, Process, free_port, wait_http

API_METRICS = ["llm_gateway_requests", "llm_gateway_request_duration_seconds", "llm_gateway_overhead_seconds",
               "llm_gateway_active_requests", "llm_gateway_cache_requests", "llm_gateway_rate_limit_rejections",
               "llm_gateway_budget_rejections", "llm_gateway_queue_depth", "llm_gateway_workers"]
WORKER_METRICS = ["llm_gateway_jobs", "llm_gateway_queue_wait_seconds", "llm_gateway_provider_duration_seconds",
                  "llm_gateway_time_to_first_token_seconds", "llm_gateway_tokens", "llm_gateway_cost_usd",
                  "llm_gateway_fallbacks", "llm_gateway_circuit_breaker_state", "llm_gateway_worker_jobs_running"]


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _total(samples: dict, name: str, **labels: str) -> float:
    return sum(value for got, value in samples.get(name, []) if all(got.get(k) == v for k, v in labels.items()))


async def _traffic(http: httpx.AsyncClient, tenant_id: str, key: str, request_id: str) -> None:
    headers = {"X-API-Key": key}
    body = {"model": "priced", "messages": [{"role": "user", "content": f"observe {uuid.uuid4().hex}"}]}
    first = await http.post("/v1/chat/completions", json=body, headers={**headers, "X-Request-ID": request_id})
    assert first.status_code == 200 and first.headers["x-request-id"] == request_id
    assert (await http.post("/v1/chat/completions", json=body, headers=headers)).headers["x-cache"] == "HIT"
    stream = {"model": "fake-openai", "messages": [{"role": "user", "content": "observe stream"}], "stream": True}
    assert (await http.post("/v1/chat/completions", json=stream, headers=headers)).status_code == 200
    fallback = {"model": "fallback-500", "messages": [{"role": "user", "content": f"fb {uuid.uuid4().hex}"}]}
    assert (await http.post("/v1/chat/completions", json=fallback, headers=headers)).status_code == 200
    admin = {"X-API-Key": ADMIN_KEY}
    no_cache = {**headers, "Cache-Control": "no-cache"}
    await http.patch(f"/api/v1/admin/tenants/{tenant_id}", json={"budget_usd": 0}, headers=admin)
    assert (await http.post("/v1/chat/completions", json=body, headers=no_cache)).status_code == 402
    await http.patch(f"/api/v1/admin/tenants/{tenant_id}", json={"rate_limit": 1}, headers=admin)
    assert (await http.post("/v1/chat/completions", json=body, headers=no_cache)).status_code == 429


@pytest.mark.timeout(120)
async def test_metrics_of_api_and_worker_after_real_traffic(gateway: Gateway, http: httpx.AsyncClient,
                                                           make_tenant) -> None:
    tenant_id, key = await make_tenant()
    await _traffic(http, tenant_id, key, f"req-{uuid.uuid4().hex[:12]}")
    async with httpx.AsyncClient() as client:
        api = _samples((await client.get(gateway.api_metrics_url)).text)
        worker = _samples((await client.get(gateway.worker_metrics_url)).text)
    assert [m for m in API_METRICS if not any(name.startswith(m) for name in api)] == []
    assert [m for m in WORKER_METRICS if not any(name.startswith(m) for name in worker)] == []
    assert _total(api, "llm_gateway_requests_total", tenant=tenant_id, status="200") >= 4
    assert _total(api, "llm_gateway_requests_total", tenant=tenant_id, provider="anthropic") >= 1
    assert _total(api, "llm_gateway_cache_requests_total", tenant=tenant_id, result="hit") == 1
    assert _total(api, "llm_gateway_rate_limit_rejections_total", tenant=tenant_id, limit="requests") == 1
    assert _total(api, "llm_gateway_budget_rejections_total", tenant=tenant_id) == 1
    assert _total(api, "llm_gateway_workers") >= 1
    assert 0 < _total(api, "llm_gateway_overhead_seconds_sum") < _total(api, "llm_gateway_request_duration_seconds_sum")
    assert _total(worker, "llm_gateway_jobs_total", tenant=tenant_id, status="succeeded") >= 3
    assert _total(worker, "llm_gateway_cost_usd_total", tenant=tenant_id) > 0
    assert _total(worker, "llm_gateway_tokens_total", tenant=tenant_id, direction="out") >= 24
    assert _total(worker, "llm_gateway_fallbacks_total", model="fallback-500") >= 1
    assert _total(worker, "llm_gateway_queue_wait_seconds_count") >= 3
    assert _total(worker, "llm_gateway_time_to_first_token_seconds_count") >= 1
    waits = _total(worker, "llm_gateway_queue_wait_seconds_sum")
    assert 0 <= waits / _total(worker, "llm_gateway_queue_wait_seconds_count") < 5


async def test_logs_follow_one_request_from_api_to_worker_without_secrets(gateway: Gateway, http: httpx.AsyncClient,
                                                                          make_tenant) -> None:
    _, key = await make_tenant()
    request_id = f"trace-{uuid.uuid4().hex[:12]}"
    prompt = f"secret prompt {uuid.uuid4().hex}"
    response = await http.post("/v1/chat/completions", headers={"X-API-Key": key, "X-Request-ID": request_id},
                               json={"model": "fake-openai", "messages": [{"role": "user", "content": prompt}]})
    job_id = response.headers["x-gateway-job-id"]
    await asyncio.sleep(0.3)
    api_lines = _json_lines(gateway, "api.log", request_id)
    worker_lines = _json_lines(gateway, "worker-1.log", request_id)
    assert any(line.get("path") == "/v1/chat/completions" and line.get("job_id") == job_id for line in api_lines)
    assert any(line.get("job_id") == job_id and line["message"] == "job succeeded" for line in worker_lines)
    for name in ("api.log", "worker-1.log"):
        text = (gateway.log_dir / name).read_text()
        assert key not in text and prompt not in text


async def test_request_id_is_generated_when_missing_or_invalid(http: httpx.AsyncClient) -> None:
    generated = await http.get("/health")
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    replaced = await http.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])


def _json_lines(gateway: Gateway, name: str, request_id: str) -> list[dict]:
    lines = []
    for raw in (gateway.log_dir / name).read_text().splitlines():
        if raw.startswith("{") and request_id in raw:
            lines.append(json.loads(raw))
    return lines


@pytest.mark.timeout(120)
async def test_real_prometheus_evaluates_every_dashboard_query_against_the_gateway(gateway: Gateway,
                                                                                  http: httpx.AsyncClient,
                                                                                  make_tenant) -> None:
    tenant_id, key = await make_tenant()
    await _traffic(http, tenant_id, key, f"prom-{uuid.uuid4().hex[:12]}")
    worker_url = gateway.worker_metrics_url.removesuffix("/metrics")
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "scripts" / "check_dashboard_queries.py"),
        "--api-metrics-url", gateway.api_metrics_url.removesuffix("/metrics"), "--worker-metrics-url", worker_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=100)
    assert process.returncode == 0, output.decode()[-3000:]


async def test_metrics_not_on_the_api_port_of_a_real_process(gateway: Gateway, http: httpx.AsyncClient) -> None:
    public = await http.get("/metrics")
    assert public.status_code == 404 and "llm_gateway" not in public.text
    async with httpx.AsyncClient() as client:
        private = await client.get(gateway.api_metrics_url)
    assert private.status_code == 200 and "llm_gateway_requests_total" in private.text


UNAUTHENTICATED = 60


@pytest.mark.timeout(120)
async def test_metrics_port_of_serve_workers_adds_up_every_process(gateway: Gateway, tmp_path: Path) -> None:
    """Both processes of `serve --workers 2` listen on the metrics port; whichever answers a scrape reports
    the requests of both (each process's own files in PROMETHEUS_MULTIPROC_DIR show it served some)."""
    multiproc, port, metrics_port = tmp_path / "multiproc", free_port(), free_port()
    multiproc.mkdir()
    env = {**gateway.env, "PROMETHEUS_MULTIPROC_DIR": str(multiproc), "API_METRICS_PORT": str(metrics_port)}
    api = Process("api-two-processes", ["serve", "--port", str(port), "--workers", "2"], env, gateway.log_dir)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", api)
        wait_http(f"http://127.0.0.1:{metrics_port}/metrics", api)
        fresh = httpx.Limits(max_keepalive_connections=0)  # a connection per request: both processes accept
        async with httpx.AsyncClient(limits=fresh, timeout=10) as client:
            body = {"model": "fake-openai", "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(UNAUTHENTICATED):
                response = await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
                                             headers={"X-API-Key": f"gw-{uuid.uuid4().hex}"})
                assert response.status_code == 401
            assert (await client.get(f"http://127.0.0.1:{port}/metrics")).status_code == 404
            scrapes = [_samples((await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text)
                       for _ in range(8)]
    finally:
        api.stop()
    for scraped in scrapes:
        assert _total(scraped, "llm_gateway_requests_total", tenant="unauthenticated") == UNAUTHENTICATED
    per_process = _requests_per_process(multiproc, tmp_path / "one-process")
    assert sum(per_process.values()) == UNAUTHENTICATED
    assert len([n for n in per_process.values() if n > 0]) == 2, per_process


def _requests_per_process(multiproc: Path, scratch: Path) -> dict[str, float]:
    """llm_gateway_requests_total by process, from each process's own files of the multiprocess directory."""
    counts: dict[str, float] = {}
    for pid in {m[1] for f in multiproc.glob("counter_*.db") if (m := re.search(r"_(\d+)\.db$", f.name))}:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        for path in multiproc.glob(f"*_{pid}.db"):
            shutil.copy(path, scratch / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(scratch))
        counts[pid] = _total(_samples(generate_latest(registry).decode()), "llm_gateway_requests_total")
    return counts

