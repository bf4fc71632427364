"""Redis sharded by tenant (docs/SHARDING.md) on two real, private redis-server processes: tenants are picked
until some land on each shard; on both shards jobs (synchronous, streamed, submitted and polled), the job's
event stream and an exact rate limit work, and every key of a tenant is on its own shard's server and none on
the other. Then shard B stops: shard A's tenants are still fully served, shard B's are refused at once with a
503 `redis_unavailable` in OpenAI's error shape; B starts again (empty: no persistence) and its tenants are
served again. One worker process serves both shards, a second only shard B (WORKER_SHARDS=1)."""

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as sync_redis

from shared.keys import tenant_auth_index_key
from shared.shards import rendezvous_index, shard_identity
from tests.e2e.conftest import ADMIN_KEY
from tests.e2e.faults.conftest import Stack, StackFactory, finished, poll_job, submit, worker_id
from tests.support.processes import RedisServer

AUTH_INDEX = tenant_auth_index_key("").encode()
RATE_LIMIT = 5
PROMPT_REFUSAL_S = 2.0  # a request of a tenant on a stopped shard is answered within this
RECOVERY_BOUND_S = 15.0


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    """Two private redis-servers without persistence (`--save "" --appendonly no`), stopped at the end."""
    pair = []
    for name in ("a", "b"):
        data_dir = tmp_path / f"redis-{name}"
        data_dir.mkdir()
        pair.append(RedisServer(data_dir, appendonly=False))
    try:
        for server in pair:
            server.start()
        yield pair[0], pair[1]
    finally:
        for server in pair:
            server.stop()


async def _tenant_on(gw: Stack, shard: int, names: tuple[str, ...], **limits: object) -> tuple[str, str]:
    """(tenant_id, key) of a new tenant whose id hashes to `shard`: tenants are created until one does."""
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=10) as client:
        for _ in range(64):
            response = await client.post("/api/v1/admin/tenants", headers={"X-API-Key": ADMIN_KEY},
                                         json={"name": f"shard-{uuid.uuid4().hex[:10]}", **limits})
            assert response.status_code == 201, response.text
            if rendezvous_index(response.json()["id"], names) == shard:
                return response.json()["id"], response.json()["api_key"]
    raise AssertionError(f"no tenant of 64 landed on shard {shard}")


def _chat(content: str, **extra: object) -> dict[str, object]:
    return {"model": "paced", "messages": [{"role": "user", "content": f"{content} {uuid.uuid4().hex[:6]}"}],
            **extra}


async def _served(http: httpx.AsyncClient, key: str) -> str:
    """A synchronous, a streamed and a submitted-and-polled job of the tenant, each checked; the last's id."""
    headers = {"X-API-Key": key}
    plain = await http.post("/v1/chat/completions", json=_chat("sync"), headers=headers)
    assert plain.status_code == 200, plain.text
    assert plain.json()["choices"][0]["message"]["content"]
    async with http.stream("POST", "/v1/chat/completions", json=_chat("stream", stream=True),
                           headers=headers) as streamed:
        assert streamed.status_code == 200
        lines = [line async for line in streamed.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                   for line in lines[:-1] if json.loads(line[6:])["choices"])
    assert text, lines
    job_id = await submit(http, key, "paced", "async")
    job = await poll_job(http, key, job_id, until=finished, timeout_s=10)
    assert job["status"] == "succeeded", job
    events = await http.get(f"/api/v1/jobs/{job_id}/events", headers=headers)  # the job's stream, replayed
    assert events.status_code == 200 and "event: done" in events.text, events.text
    return job_id


async def _admitted(http: httpx.AsyncClient, key: str, count: int) -> list[int]:
    headers = {"X-API-Key": key, "Cache-Control": "no-cache, no-store"}
    responses = await asyncio.gather(*(http.post("/api/v1/jobs", json=_chat("limit"), headers=headers)
                                       for _ in range(count)))
    return sorted(response.status_code for response in responses)


def _keys_naming(server: RedisServer, needles: list[str]) -> list[str]:
    """The server's keys naming any of `needles`, but for the auth cache's: it is spread by API key hash, not
    by tenant (its index of a tenant's cached keys lives with them), as docs/SHARDING.md says."""
    client = sync_redis.Redis.from_url(server.url)
    try:
        return [key.decode() for key in client.scan_iter(count=1000)
                if any(needle in key.decode() for needle in needles) and not key.startswith(AUTH_INDEX)]
    finally:
        client.close()


async def _refused(http: httpx.AsyncClient, key: str) -> list[httpx.Response]:
    """The tenant's synchronous, streamed and submitted requests, and a job read, each timed (the slowest
    is printed)."""
    headers = {"X-API-Key": key}
    calls = [http.post("/v1/chat/completions", json=_chat("down"), headers=headers),
             http.post("/v1/chat/completions", json=_chat("down", stream=True), headers=headers),
             http.post("/api/v1/jobs", json=_chat("down"), headers=headers),
             http.get("/api/v1/jobs/job_0123456789abcdef0123456789abcdef", headers=headers)]
    responses, slowest = [], 0.0
    for call in calls:
        started = time.monotonic()
        response = await call
        elapsed = time.monotonic() - started
        assert elapsed < PROMPT_REFUSAL_S, f"{response.request.url} took {elapsed:.1f}s to refuse"
        responses.append(response)
        slowest = max(slowest, elapsed)
    print(f"shard B down: its tenant's 4 requests refused, the slowest in {slowest * 1000:.0f} ms")
    return responses


@pytest.mark.timeout(90)
async def test_two_shards_serve_their_tenants_and_survive_one_down(servers: tuple[RedisServer, RedisServer],
                                                                    stack: StackFactory) -> None:
    a, b = servers
    names = (shard_identity(a.url), shard_identity(b.url))
    gw = await stack(workers=1, env={"REDIS_URL": "", "REDIS_SHARDS": f"{a.url},{b.url}"})
    worker_id(gw.start_worker("worker-b-only", {"WORKER_SHARDS": "1"}))
    tenant_a, key_a = await _tenant_on(gw, 0, names)
    tenant_b, key_b = await _tenant_on(gw, 1, names)
    limited_a, limited_key_a = await _tenant_on(gw, 0, names, rate_limit=RATE_LIMIT)
    limited_b, limited_key_b = await _tenant_on(gw, 1, names, rate_limit=RATE_LIMIT)
    async with gw.client(timeout_s=20) as http:
        job_a, job_b = await asyncio.gather(_served(http, key_a), _served(http, key_b))
        limits = await asyncio.gather(_admitted(http, limited_key_a, RATE_LIMIT + 3),
                                      _admitted(http, limited_key_b, RATE_LIMIT + 3))
        health = (await http.get("/health")).json()

        # Each tenant's keys (limits, jobs, events, queue state) on its own shard's server, none on the other's.
        own_a = _keys_naming(a, [tenant_a, limited_a, job_a])
        own_b = _keys_naming(b, [tenant_b, limited_b, job_b])
        stray = _keys_naming(b, [tenant_a, limited_a, job_a]) + _keys_naming(a, [tenant_b, limited_b, job_b])

        b.stop()
        still_a = await _served(http, key_a)
        refused = await _refused(http, key_b)
        degraded = await http.get("/health")

        b.start()
        started = time.monotonic()
        recovered = None
        while time.monotonic() - started < RECOVERY_BOUND_S:
            response = await http.post("/v1/chat/completions", json=_chat("back"), headers={"X-API-Key": key_b})
            if response.status_code == 200:
                recovered = time.monotonic() - started
                break
            await asyncio.sleep(0.2)
        assert recovered is not None, f"shard B's tenant not served within {RECOVERY_BOUND_S}s of B returning"
        again_b = await _served(http, key_b)
    print(f"shard B back: first completion after {recovered:.1f}s; jobs {still_a} on A, {again_b} on B")

    assert limits == [[202] * RATE_LIMIT + [429] * 3] * 2, limits
    assert health["status"] == "ok" and [s["ok"] for s in health["checks"]["shards"]] == [True, True], health
    assert any(tenant_a in key for key in own_a) and any(job_a in key for key in own_a), own_a
    assert any(tenant_b in key for key in own_b) and any(job_b in key for key in own_b), own_b
    assert any(limited_a in key for key in own_a) and any(limited_b in key for key in own_b)
    assert stray == [], f"keys on the other shard's server: {stray}"
    for response in refused:
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("service_unavailable", "redis_unavailable"), error
        assert error["message"] and int(response.headers["retry-after"]) >= 1
    body = degraded.json()
    assert degraded.status_code == 200 and body["status"] == "degraded", body
    assert [s["redis"] for s in body["checks"]["shards"]] == [True, False], body
    assert all(process.alive() for process in gw.processes), "a process died while shard B was down"
