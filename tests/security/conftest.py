"""Fixtures of the security tests. A gateway of real processes of its own (fake provider, worker, API) on
Redis database 6 and PostgreSQL database `llm_gateway_security`, so that fuzzing and slow-loris clients never
touch the end-to-end suite's data; its body-read timeout is short so slow bodies are refused in seconds.
The in-process fixtures of tests/api (real Redis database 3, a SQLite file) are re-exported for the
isolation tests."""

import asyncio
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from tests.api.conftest import clean_redis, sqlite_url  # noqa: F401  (fixtures re-exported)
from tests.e2e.conftest import ROUTES, Gateway, gateway_env
from tests.support.databases import recreate_database
from tests.support.processes import Process, free_port, wait_http

REDIS_URL = "redis://127.0.0.1:6379/6"
DATABASE = "llm_gateway_security"
ADMIN_KEY = "security-admin-key"
BODY_READ_TIMEOUT_S = 2.0




@pytest.fixture(scope="session")
def secure_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    log_dir = tmp_path_factory.mktemp("security-logs")
    redis.Redis.from_url(REDIS_URL).flushdb()  # raises if Redis is down: the run fails, never skips
    asyncio.run(recreate_database(DATABASE))
    fake_port, api_port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    routes = log_dir / "routes.yaml"
    routes.write_text(ROUTES.format(f=fake_url))
    env = gateway_env(redis_url=REDIS_URL, database=DATABASE, routes=routes, queue_prefix="gw:sec",
                      LOG_LEVEL="DEBUG", REQUEST_TIMEOUT_S="20", BODY_READ_TIMEOUT_S=str(BODY_READ_TIMEOUT_S),
                      KEEP_ALIVE_TIMEOUT_S="2", ADMIN_API_KEY=ADMIN_KEY)
    fake = Process("fake-provider", ["fake-provider", "--port", str(fake_port), "--tokens", "4"], env, log_dir)
    migrate = Process("migrate", ["migrate"], env, log_dir)
    assert migrate.proc.wait(timeout=60) == 0, migrate.log_tail()
    migrate.stop()
    api = Process("api", ["serve", "--port", str(api_port)], env, log_dir)
    worker = Process("worker", ["worker"], env, log_dir)
    gw = Gateway(f"http://127.0.0.1:{api_port}", fake_url, env, log_dir)
    try:
        wait_http(f"{fake_url}/_stats", fake)
        wait_http(f"{gw.base_url}/health", api)
        yield gw
    finally:
        for process in (worker, api, fake):
            process.stop()


def create_tenant(base_url: str, **limits: object) -> tuple[str, str]:
    """(tenant_id, api_key) of a new tenant, made through the admin API of the gateway at `base_url`."""
    response = httpx.post(f"{base_url}/api/v1/admin/tenants", headers={"X-API-Key": ADMIN_KEY}, timeout=10,
                          json={"name": f"sec-{uuid.uuid4().hex[:10]}", **limits})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["id"], body["api_key"]


@pytest.fixture
def secure_tenant(secure_gateway: Gateway) -> Callable[..., tuple[str, str]]:
    """Builder: `secure_tenant(**limits)` returns (tenant_id, api_key) of a new tenant of `secure_gateway`."""
    return lambda **limits: create_tenant(secure_gateway.base_url, **limits)
