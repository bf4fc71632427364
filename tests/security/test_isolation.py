"""Tenant isolation, in-process against real Redis (database 3) and a SQLite file. Complements
tests/e2e/test_jobs.py (another tenant's job, events and cancel are 404) and tests/e2e/test_cache.py (the
cache never answers across tenants) with what they leave out: the 404 for another tenant's job is the very
answer an unknown id gets, so ids do not leak; usage is per tenant; every admin operation refuses a tenant
key; the cache key is bound to the tenant and to the endpoint."""

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from api.main import create_app
from shared.cache import cache_digest
from shared.config import Settings
from shared.db.engine import create_engine, create_session_factory
from shared.db.tables import UsageRecord
from shared.endpoint import Endpoint
from shared.models import WireFormat
from shared.tenants import create_tenant
from tests.api.conftest import app_client

ADMIN_KEY = "isolation-admin-key"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "mine"}]}
ADMIN_OPERATIONS = sorted(
    (method.upper(), path.replace("{tenant_id}", "ten_0000000000000000"))
    for path, item in create_app(Settings(_env_file=None)).openapi()["paths"].items()  # type: ignore[call-arg]
    if path.startswith("/api/v1/admin") for method in item
)


@pytest.fixture
async def http(clean_redis: str, sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, admin_api_key=ADMIN_KEY) as client:
        yield client


async def _new_tenant(database_url: str) -> tuple[str, str]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            tenant, key = await create_tenant(session, f"iso-{uuid.uuid4().hex[:8]}")
    finally:
        await engine.dispose()
    return tenant.id, key


@pytest.fixture
async def tenants(sqlite_url: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """((id, key) of the owner, (id, key) of another tenant)."""
    return await _new_tenant(sqlite_url), await _new_tenant(sqlite_url)


@pytest.fixture
def keys(tenants: tuple[tuple[str, str], tuple[str, str]]) -> tuple[str, str]:
    return tenants[0][1], tenants[1][1]


def _comparable(response: httpx.Response, job_id: str) -> tuple[int, str]:
    return response.status_code, response.text.replace(job_id, "ID")


async def test_isolation_other_tenants_job_answers_exactly_like_an_unknown_id(
        http: httpx.AsyncClient, keys: tuple[str, str]) -> None:
    owner, other = keys
    submitted = await http.post("/api/v1/jobs", json=CHAT, headers={"X-API-Key": owner})
    assert submitted.status_code == 202, submitted.text
    job_id, unknown = submitted.json()["id"], f"job_{uuid.uuid4().hex}"
    for method, suffix in (("GET", ""), ("GET", "/events"), ("POST", "/cancel")):
        theirs = await http.request(method, f"/api/v1/jobs/{job_id}{suffix}", headers={"X-API-Key": other})
        missing = await http.request(method, f"/api/v1/jobs/{unknown}{suffix}", headers={"X-API-Key": other})
        assert theirs.status_code == 404, (suffix, theirs.text)
        assert _comparable(theirs, job_id) == _comparable(missing, unknown)
    # The owner still sees it, and the other tenant's cancel changed nothing.
    mine = await http.get(f"/api/v1/jobs/{job_id}", headers={"X-API-Key": owner})
    assert mine.status_code == 200 and mine.json()["status"] == "queued"


async def test_isolation_usage_report_shows_only_the_callers_records(
        http: httpx.AsyncClient, tenants: tuple[tuple[str, str], tuple[str, str]], sqlite_url: str) -> None:
    (owner_id, owner), (_, other) = tenants
    empty = (await http.get("/api/v1/usage", headers={"X-API-Key": other})).json()
    await _add_usage(sqlite_url, owner_id, requests=3)
    theirs = (await http.get("/api/v1/usage", headers={"X-API-Key": other})).json()
    mine = (await http.get("/api/v1/usage", headers={"X-API-Key": owner})).json()
    assert theirs == empty
    assert mine["totals"] != empty["totals"] and "3" in str(mine["totals"])


@pytest.mark.parametrize(("method", "path"), ADMIN_OPERATIONS, ids=[f"{m} {p}" for m, p in ADMIN_OPERATIONS])
async def test_isolation_admin_operation_refuses_tenant_key(http: httpx.AsyncClient, keys: tuple[str, str],
                                                            method: str, path: str) -> None:
    for headers in ({"X-API-Key": keys[0]}, {"Authorization": f"Bearer {keys[0]}"}):
        response = await http.request(method, path, headers=headers, json={"name": "x"})
        assert response.status_code in (401, 403), response.text
        assert response.json()["error"]["type"] in ("authentication_error", "permission_error")


def test_isolation_cache_key_is_bound_to_the_tenant() -> None:
    assert cache_digest("ten_a", WireFormat.OPENAI, CHAT) != cache_digest("ten_b", WireFormat.OPENAI, CHAT)


def test_isolation_cache_key_is_bound_to_the_endpoint() -> None:
    """Unmodelled fields are forwarded, so one body can be valid on two endpoints; a legacy completion must
    never answer an embeddings request (or a chat one). Chat keys stay what they were before endpoints."""
    body = {"model": "demo", "prompt": "same", "input": "same", "messages": [{"role": "user", "content": "same"}]}
    digests = {endpoint: cache_digest("ten_a", WireFormat.OPENAI, body, endpoint) for endpoint in Endpoint}
    assert len(set(digests.values())) == len(Endpoint)
    assert digests[Endpoint.CHAT] == cache_digest("ten_a", WireFormat.OPENAI, body)


async def _add_usage(database_url: str, tenant_id: str, requests: int) -> None:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            for _ in range(requests):
                session.add(UsageRecord(request_id=f"job_{uuid.uuid4().hex}", tenant_id=tenant_id,
                                        public_model="gpt-4o", provider="openai", model="gpt-4o", prompt_tokens=10,
                                        completion_tokens=5, cost_usd=0.01, latency_ms=100, status="succeeded"))
            await session.commit()
    finally:
        await engine.dispose()
