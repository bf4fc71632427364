"""Fault tests start their own processes, fresh for each test, because each test kills, stops or starves some
of them: a fake provider, an API and workers on a queue of their own (and, for the Redis test, a Redis of
their own), with short leases, drains and breaker timings so every fault resolves in seconds. They use a
database and a Redis db of their own, so another end-to-end run resetting its state cannot pull them away.

Billing once is checked where a duplicate would show: the job's terminal events in Redis (a job's end commits
its terminal event and its usage record in one transaction, and the database insert skips a repeated job
id, so a double bill would never reach PostgreSQL as a second row) and the database row."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis as sync_redis
import redis.asyncio as redis

from shared.keys import job_events_key
from tests.e2e.conftest import ADMIN_KEY
from tests.support.databases import recreate_database
from tests.support.processes import Process, free_port, wait_http

LEASE_S = 2.0
FAULTS_DATABASE = "llm_gateway_faults"
PG_DSN = f"postgresql://postgres@127.0.0.1:5432/{FAULTS_DATABASE}"
REDIS_URL = "redis://127.0.0.1:6379/11"
TERMINAL_EVENTS = ("done", "error", "cancelled")

ROUTES = """
models:
  slow:
    - {{provider: openai, model: held-slow-3000, base_url: "{f}/v1"}}
  paced:
    - {{provider: openai, model: fake-model, base_url: "{f}/v1"}}
  down-then-up:
    - {{provider: openai, model: primary-down, base_url: "{down}/v1"}}
    - {{provider: anthropic, model: secondary-after-down, base_url: "{f}"}}
  down-only:
    - {{provider: openai, model: only-down, base_url: "{down}/v1"}}
  slow-only:
    - {{provider: openai, model: only-slow-2000, base_url: "{f}/v1", timeout_s: 0.5}}
  garbage-json:
    - {{provider: openai, model: primary-garbage-json, base_url: "{f}/v1"}}
    - {{provider: anthropic, model: secondary-after-garbage, base_url: "{f}"}}
  garbage-json-only:
    - {{provider: openai, model: only-garbage-json, base_url: "{f}/v1"}}
  garbage-shape-only:
    - {{provider: anthropic, model: only-garbage-shape, base_url: "{f}"}}
"""


@dataclass
class Stack:
    """One test's gateway: `down_port` is where no provider listens until a test starts one there."""

    env: dict[str, str]
    log_dir: Path
    fake_url: str
    down_port: int
    base_url: str = ""
    api: Process | None = None
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Process:
        process = Process(name, args, {**self.env, **(env or {})}, self.log_dir)
        self.processes.append(process)
        return process

    def named(self, name: str) -> Process:
        return next(process for process in reversed(self.processes) if process.name == name)

    def start_worker(self, name: str, env: dict[str, str] | None = None) -> Process:
        return self.start(name, ["worker"], env)

    def start_api(self, name: str = "api") -> Process:
        port = free_port()
        self.api = self.start(name, ["serve", "--port", str(port)])
        self.base_url = f"http://127.0.0.1:{port}"
        return self.api

    def start_fake(self, name: str, port: int, args: list[str] | None = None) -> Process:
        return self.start(name, ["fake-provider", "--port", str(port), *(args or [])])

    def client(self, timeout_s: float = 30) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s)

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            if not process._log.closed:
                process.stop(timeout_s=5)


def worker_id(process: Process, timeout_s: float = 30) -> str:
    """The id a worker process logs once it is ready (its jobs' records carry it)."""
    return process.wait_log(r"worker (worker-[0-9a-f]{12}) started", timeout_s).group(1)


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture(scope="session")
def faults_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh, migrated database and an empty Redis db for the fault tests (a service down fails the run)."""
    sync_redis.Redis.from_url(REDIS_URL).flushdb()
    asyncio.run(recreate_database(FAULTS_DATABASE))
    env = {
        "REDIS_URL": REDIS_URL, "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{FAULTS_DATABASE}",
        "ADMIN_API_KEY": ADMIN_KEY, "OPENAI_API_KEY": "sk-fake", "ANTHROPIC_API_KEY": "sk-ant-fake",
        "RETRY_BASE_DELAY_S": "0.01", "LOG_LEVEL": "INFO", "USAGE_FLUSH_INTERVAL_S": "0.2",
    }
    migrate = Process("migrate", ["migrate"], env, tmp_path_factory.mktemp("faults-migrate"))
    assert migrate.proc.wait(timeout=60) == 0, migrate.log_tail()
    migrate.stop()
    return env




@pytest.fixture
async def stack(faults_env: dict[str, str], tmp_path: Path) -> AsyncIterator[StackFactory]:
    """`await stack(workers=1, env={...}, fake_args=[...])`: a started fake provider, API and workers."""
    started: list[Stack] = []

    async def build(*, workers: int = 1, env: dict[str, str] | None = None, fake_args: list[str] | None = None,
                    api: bool = True) -> Stack:
        fake_port, down_port = free_port(), free_port()
        fake_url = f"http://127.0.0.1:{fake_port}"
        routes = tmp_path / "routes.yaml"
        routes.write_text(ROUTES.format(f=fake_url, down=f"http://127.0.0.1:{down_port}"))
        base_env = {
            **faults_env, "ROUTES_FILE": str(routes), "QUEUE_NAME": f"gw:faults:{uuid.uuid4().hex[:8]}",
            "WORKER_LEASE_S": str(LEASE_S), "WORKER_DRAIN_S": "2", "WORKER_METRICS_PORT": "0",
            "WORKER_HEARTBEAT_S": "0.5", "MAX_ATTEMPTS_PER_TARGET": "1", **(env or {}),
        }
        current = Stack(env=base_env, log_dir=tmp_path, fake_url=fake_url, down_port=down_port)
        started.append(current)
        fake = current.start_fake("fake-provider", fake_port,
                                  fake_args or ["--tokens", "8", "--inter-token-ms", "20"])
        api_process = current.start_api() if api else None
        worker_processes = [current.start_worker(f"worker-{n + 1}") for n in range(workers)]
        wait_http(f"{fake_url}/_stats", fake)
        if api_process is not None:
            wait_http(f"{current.base_url}/health", api_process, expect=200 if workers else 503)
        for process in worker_processes:
            worker_id(process)
        return current

    yield build
    for current in started:
        current.stop_all()


async def new_tenant(gw: Stack) -> tuple[str, str]:
    """(tenant_id, api_key) of a new tenant, created through the stack's API."""
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as client:
        response = await client.post("/api/v1/admin/tenants", json={"name": f"f-{uuid.uuid4().hex[:10]}"},
                                     headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["api_key"]


async def usage_rows(job_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(PG_DSN)
    try:
        return list(await conn.fetch("SELECT * FROM usage_record WHERE request_id = $1", job_id))
    finally:
        await conn.close()


async def billed(job_id: str, redis_url: str = REDIS_URL) -> list[str]:
    """The job's terminal events: one per usage record emitted (both come from one transaction)."""
    client = redis.Redis.from_url(redis_url)
    try:
        entries = await client.xrange(job_events_key(job_id))
    finally:
        await client.aclose()
    kinds = [fields[b"t"].decode() for _, fields in entries]
    return [kind for kind in kinds if kind in TERMINAL_EVENTS]


async def wait_usage_rows(job_id: str, timeout_s: float = 15, redis_url: str = REDIS_URL) -> list[asyncpg.Record]:
    """The job's database rows once one is written; asserts the job was billed exactly once."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = await usage_rows(job_id)
        if rows:
            await asyncio.sleep(0.5)  # a second record would be emitted by then
            emitted = await billed(job_id, redis_url)
            assert len(emitted) == 1, f"job {job_id} billed {len(emitted)} times: {emitted}"
            return await usage_rows(job_id)
        await asyncio.sleep(0.2)
    raise AssertionError(f"no usage row for {job_id} within {timeout_s}s")


async def poll_job(http: httpx.AsyncClient, key: str, job_id: str, *, until: Callable[[dict], bool],
                   timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    body: dict = {}
    while time.monotonic() < deadline:
        response = await http.get(f"/api/v1/jobs/{job_id}", headers={"X-API-Key": key})
        if response.status_code == 200:
            body = response.json()
            if until(body):
                return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} not as expected within {timeout_s}s; last: {body}")


def finished(job: dict) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


async def submit(http: httpx.AsyncClient, key: str, model: str, content: str = "fault please") -> str:
    response = await http.post("/api/v1/jobs", json={"model": model, "messages": [{"role": "user",
                               "content": f"{content} {uuid.uuid4().hex[:6]}"}]}, headers={"X-API-Key": key})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])
