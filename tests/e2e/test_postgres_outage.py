"""PostgreSQL stopped and restarted during traffic: completions go on (tenants are authenticated from the
Redis cache, usage waits in the Redis stream) and every usage record reaches the database once it is back.
This stops the machine's real PostgreSQL server for a few seconds."""

import asyncio
import subprocess
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import E2E_DATABASE

REQUESTS_DURING_OUTAGE = 20


def _pg_ctl(action: str) -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, *(
        ["-m", "fast"] if action == "stop" else [])], check=True, timeout=60)


async def _usage_rows(tenant_id: str) -> int:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{E2E_DATABASE}")
    try:
        return int(await conn.fetchval("SELECT count(*) FROM usage_record WHERE tenant_id = $1", tenant_id))
    finally:
        await conn.close()


async def _chat(http: httpx.AsyncClient, key: str) -> httpx.Response:
    body = {"model": "fake-openai", "messages": [{"role": "user", "content": f"outage {uuid.uuid4().hex}"}]}
    return await http.post("/v1/chat/completions", json=body, headers={"X-API-Key": key})


@pytest.mark.timeout(150)
async def test_usage_is_intact_after_postgres_restart_during_traffic(http: httpx.AsyncClient, make_tenant) -> None:
    tenant_id, key = await make_tenant()
    assert (await _chat(http, key)).status_code == 200  # the tenant is now in the Redis auth cache
    _pg_ctl("stop")
    try:
        responses = await asyncio.gather(*(_chat(http, key) for _ in range(REQUESTS_DURING_OUTAGE)))
        health = await http.get("/health")
    finally:
        _pg_ctl("start")
    assert [r.status_code for r in responses] == [200] * REQUESTS_DURING_OUTAGE
    assert health.status_code == 503 and health.json()["checks"]["database"]["ok"] is False
    rows = 0
    for _ in range(200):  # the usage writer retries with backoff of up to 10 s
        await asyncio.sleep(0.5)
        try:
            rows = await _usage_rows(tenant_id)
        except (OSError, asyncpg.PostgresError):
            continue
        if rows >= REQUESTS_DURING_OUTAGE + 1:
            break
    assert rows == REQUESTS_DURING_OUTAGE + 1
