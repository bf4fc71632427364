"""End-to-end fixtures: a real fake-provider process, a real API process and a real worker process, on the
real Redis and PostgreSQL of this machine. Unreachable services fail the run; they are never skipped."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.databases import recreate_database
from tests.support.processes import Process, free_port, wait_http

REDIS_URL = "redis://127.0.0.1:6379/2"
E2E_DATABASE = "llm_gateway_e2e"
ADMIN_KEY = "test-admin-key"

ROUTES = """
models:
  fake-openai:
    - {{provider: openai, model: fake-model, base_url: "{f}/v1"}}
  fake-anthropic:
    - {{provider: anthropic, model: fake-claude, base_url: "{f}"}}
  claude-via-openai:
    - {{provider: openai, model: served-by-openai, base_url: "{f}/v1"}}
  fallback-500:
    - {{provider: openai, model: primary-fail-500, base_url: "{f}/v1"}}
    - {{provider: anthropic, model: secondary-after-500, base_url: "{f}"}}
  fallback-429:
    - {{provider: openai, model: primary-fail-429-retry-after-0.05, base_url: "{f}/v1"}}
    - {{provider: anthropic, model: secondary-after-429, base_url: "{f}"}}
  fallback-timeout:
    - {{provider: openai, model: primary-slow-5000, base_url: "{f}/v1", timeout_s: 0.3}}
    - {{provider: anthropic, model: secondary-after-timeout, base_url: "{f}"}}
  reject-400:
    - {{provider: openai, model: primary-fail-400, base_url: "{f}/v1"}}
    - {{provider: anthropic, model: secondary-never-called, base_url: "{f}"}}
  cut-stream:
    - {{provider: openai, model: primary-cut-after-3, base_url: "{f}/v1"}}
    - {{provider: anthropic, model: secondary-not-after-tokens, base_url: "{f}"}}
  all-down:
    - {{provider: openai, model: first-fail-503, base_url: "{f}/v1"}}
    - {{provider: anthropic, model: second-fail-529, base_url: "{f}"}}
  slow-300:
    - {{provider: openai, model: paced-slow-300, base_url: "{f}/v1"}}
  priced:
    - {{provider: openai, model: gpt-4o, base_url: "{f}/v1"}}
  slow-3000:
    - {{provider: openai, model: held-slow-3000, base_url: "{f}/v1"}}
"""


class Gateway:
    def __init__(self, base_url: str, fake_url: str, env: dict[str, str], log_dir: Path) -> None:
        self.base_url = base_url
        self.fake_url = fake_url
        self.env = env
        self.log_dir = log_dir
        self.worker_metrics_url = ""
        self.api_metrics_url = ""

    def start_worker(self, name: str) -> Process:
        return Process(name, ["worker"], self.env, self.log_dir)

    def start_api(self, name: str) -> tuple[Process, str]:
        port = free_port()
        process = Process(name, ["serve", "--port", str(port)], self.env, self.log_dir)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", process)
        return process, url

    async def fake_stats(self) -> dict[str, int]:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.fake_url}/_stats")
        requests: dict[str, int] = response.json()["requests"]
        return requests




def gateway_env(*, redis_url: str, database: str, routes: Path, queue_prefix: str,
                **overrides: str) -> dict[str, str]:
    """The environment of a test gateway's processes: fake provider keys, fast retries, a breaker that never
    opens, a queue of its own; `overrides` adds or replaces settings."""
    return {
        "REDIS_URL": redis_url, "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
        "ADMIN_API_KEY": ADMIN_KEY, "ROUTES_FILE": str(routes), "QUEUE_NAME": f"{queue_prefix}:{uuid.uuid4().hex[:8]}",
        "OPENAI_API_KEY": "sk-fake", "ANTHROPIC_API_KEY": "sk-ant-fake", "RETRY_BASE_DELAY_S": "0.01",
        "BREAKER_FAILURE_THRESHOLD": "100000", "WORKER_HEARTBEAT_S": "1", "LOG_LEVEL": "INFO",
        "USAGE_FLUSH_INTERVAL_S": "0.2", "WORKER_METRICS_PORT": "0", "API_METRICS_PORT": "0", **overrides,
    }


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    log_dir = tmp_path_factory.mktemp("logs")
    redis.Redis.from_url(REDIS_URL).flushdb()  # raises if Redis is down: the run fails, never skips
    asyncio.run(recreate_database(E2E_DATABASE))
    fake_port, api_port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    routes = log_dir / "routes.yaml"
    routes.write_text(ROUTES.format(f=fake_url))
    env = gateway_env(redis_url=REDIS_URL, database=E2E_DATABASE, routes=routes, queue_prefix="gw:test")
    fake_args = ["fake-provider", "--port", str(fake_port), "--tokens", "8", "--inter-token-ms", "20"]
    fake = Process("fake-provider", fake_args, env, log_dir)
    migrate = Process("migrate", ["migrate"], env, log_dir)
    assert migrate.proc.wait(timeout=60) == 0, migrate.log_tail()
    migrate.stop()
    api_metrics_port, worker_metrics_port = free_port(), free_port()
    api = Process("api", ["serve", "--port", str(api_port)], {**env, "API_METRICS_PORT": str(api_metrics_port)},
                  log_dir)
    worker = Process("worker-1", ["worker"], {**env, "WORKER_METRICS_PORT": str(worker_metrics_port)}, log_dir)
    gw = Gateway(f"http://127.0.0.1:{api_port}", fake_url, env, log_dir)
    gw.api_metrics_url = f"http://127.0.0.1:{api_metrics_port}/metrics"
    gw.worker_metrics_url = f"http://127.0.0.1:{worker_metrics_port}/metrics"
    try:
        wait_http(f"{fake_url}/_stats", fake)
        wait_http(f"{gw.base_url}/health", api)
        yield gw
    finally:
        for process in (worker, api, fake):
            process.stop()


@pytest.fixture
async def short_api(gateway: Gateway) -> AsyncIterator[str]:
    """The URL of a second API on the session gateway's queue with REQUEST_TIMEOUT_S=1 (the session's worker
    runs its jobs), for tests that follow a job or a response past the request timeout."""
    port = free_port()
    process = Process("api-short-timeout", ["serve", "--port", str(port)],
                      {**gateway.env, "REQUEST_TIMEOUT_S": "1"}, gateway.log_dir)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as client:
        yield client


TenantFactory = Callable[[], "asyncio.Future[tuple[str, str]]"]


@pytest.fixture
def make_tenant(gateway: Gateway) -> Callable[..., object]:
    """Builder: `await make_tenant()` returns (tenant_id, api_key) of a new tenant."""

    async def build(name: str | None = None, **limits: object) -> tuple[str, str]:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as client:
            response = await client.post(
                "/api/v1/admin/tenants", json={"name": name or f"t-{uuid.uuid4().hex[:10]}", **limits},
                headers={"X-API-Key": ADMIN_KEY},
            )
        assert response.status_code == 201, response.text
        body = response.json()
        return body["id"], body["api_key"]

    return build


@pytest.fixture
async def tenant_key(make_tenant: Callable[..., object]) -> str:
    _, key = await make_tenant()  # type: ignore[misc]
    return str(key)
