"""Whatever fails after admission gives back what admission took (api/admission_hold.py), in-process on real
Redis (database 3, no worker) and a SQLite file. Each step from admission to the job's creation is made to
fail in turn; afterwards the tenant, whose limits admit exactly one such request at a time (one slot, tokens
and budget for one), must be admitted again, so its slot, tokens and budget reservation are all back, and
the response cache's in-flight marker is gone. Once the job exists it owns them: a failure then gives back
nothing, and the job's end (here, a cancel) settles."""

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError

import api.admission
import api.submit
import shared.limits
from api.admission_hold import hold_admission
from api.shards import ShardHandles
from shared.cache import ResponseCache, cache_digest
from shared.jobs import JobStore
from shared.keys import cache_inflight_key
from shared.models import WireFormat
from shared.queue import JobQueue
from tests.api.conftest import create_tenant_via_admin, routed_app_client

ADMIN = {"X-API-Key": "hold-admin-key"}
# One target, gpt-4o at $10 per million output tokens: each request reserves about $0.10 and 10,000 tokens.
ROUTES = "models:\n  hold-model:\n    - {provider: openai, model: gpt-4o}\n"
BODY = {"model": "hold-model", "messages": [{"role": "user", "content": "hold on"}], "max_tokens": 10_000}
LIMITS = {"max_concurrent": 1, "budget_usd": 0.15, "tpm_limit": 15_000, "rate_limit": 1000}


class Boom(RuntimeError):
    """The injected failure."""


def _raise(*_: object, **__: object) -> Any:
    raise Boom("injected failure after admission")


async def _raise_async(*_: object, **__: object) -> Any:
    raise Boom("injected failure after admission")


def _after(original: Callable[..., Any], error: BaseException) -> Callable[..., Any]:
    """The real step, then a failure: what it did stays done (a marker set, a record written)."""
    async def step(*args: object, **kwargs: object) -> Any:
        await original(*args, **kwargs)
        raise error
    return step


def _lost_when_admitted(run: Callable[..., Any]) -> Callable[..., Any]:
    """The admission script, whose reply is lost when it admitted (a budget seed's first call is not)."""
    async def step(*args: object, **kwargs: object) -> Any:
        reply = await run(*args, **kwargs)
        if reply[0] == 1:
            raise RedisConnectionError("reply lost")
        return reply
    return step


# Each step after admission, as (name, route, patch): `patch(monkeypatch)` makes that step fail.
STEPS: list[tuple[str, str, Callable[[pytest.MonkeyPatch], None]]] = [
    ("admission-headers", "/v1/chat/completions", lambda mp: mp.setattr(api.admission, "ratelimit_headers", _raise)),
    ("cache-claim", "/v1/chat/completions",
     lambda mp: mp.setattr(ResponseCache, "claim", _after(ResponseCache.claim, Boom("after claim")))),
    ("follow-leader", "/v1/chat/completions", lambda mp: (
        mp.setattr(ResponseCache, "claim", lambda *_a, **_k: _leader("job_someone_else")),
        mp.setattr(JobStore, "add_follower", _raise_async))),
    ("job-options", "/api/v1/jobs", lambda mp: mp.setattr(api.submit, "JobOptions", _raise)),
    ("tenant-share", "/api/v1/jobs", lambda mp: mp.setattr(api.submit, "TenantShare", _raise)),
    ("queue-entry", "/api/v1/jobs", lambda mp: mp.setattr(JobQueue, "enqueue_on", _raise)),
    ("job-record", "/v1/chat/completions", lambda mp: mp.setattr(JobStore, "create", _raise_async)),
    ("job-record-redis-down", "/v1/chat/completions",
     lambda mp: mp.setattr(JobStore, "create", _raise_redis_down)),
    # Without a cache lead to claim, admission creates the job in its own script (shared/lua/admit_create.lua):
    # a failure before the script's reply admitted nothing, so there is nothing to give back.
    ("job-writes", "/api/v1/jobs", lambda mp: mp.setattr(JobStore, "write_on", _raise)),
    ("admit-create-redis-down", "/api/v1/jobs",
     lambda mp: mp.setattr(shared.limits, "ADMIT_CREATE", _Script(_raise_redis_down))),
]


class _Script:
    """Stands in for a LuaScript whose `run` is `run`."""

    def __init__(self, run: Callable[..., Any]) -> None:
        self.run = run


async def _leader(job_id: str) -> str:
    return job_id


async def _raise_redis_down(*_: object, **__: object) -> Any:
    raise RedisConnectionError("injected: Redis went away")


@pytest.fixture
async def http(clean_redis: str, sqlite_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with routed_app_client(ROUTES, tmp_path, redis_url=clean_redis, database_url=sqlite_url,
                                 admin_api_key=ADMIN["X-API-Key"]) as client:
        yield client


async def _post(http: httpx.AsyncClient, route: str, auth: dict[str, str]) -> int:
    """The answer's status; 500 for an unexpected error, which the in-process transport raises after the
    error handler answered."""
    try:
        return (await http.post(route, json=BODY, headers=auth)).status_code
    except Boom:
        return 500


async def _tenant(http: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    tenant = await create_tenant_via_admin(http, ADMIN, "holder", **LIMITS)
    return tenant["id"], {"X-API-Key": tenant["api_key"]}


async def _in_flight(raw: redis.asyncio.Redis) -> list[bytes]:
    return list(await raw.keys(cache_inflight_key("*")))


async def _admitted_again(http: httpx.AsyncClient, auth: dict[str, str]) -> httpx.Response:
    """Another request of the same size: 202 only if the slot, the tokens and the budget are all back."""
    return await http.post("/api/v1/jobs", json=BODY, headers=auth)


@pytest.mark.parametrize(("step", "route", "patch"), STEPS, ids=[step for step, _, _ in STEPS])
async def test_admission_hold_gives_back_everything_when_a_step_after_admission_fails(
        http: httpx.AsyncClient, raw: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch,
        step: str, route: str, patch: Callable[[pytest.MonkeyPatch], None]) -> None:
    _, auth = await _tenant(http)
    with monkeypatch.context() as patched:
        patch(patched)
        failed = await _post(http, route, auth)
    assert failed >= 500, step
    assert await _in_flight(raw) == []
    again = await _admitted_again(http, auth)
    assert again.status_code == 202, again.text


@pytest.mark.parametrize("path", ["cache-lead", "admit-create"])
async def test_admission_hold_gives_back_everything_when_the_request_is_cancelled(
        http: httpx.AsyncClient, raw: redis.asyncio.Redis,
        monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """A client that disconnects cancels the request's task mid-step; the give-back still runs to its end.
    Cancelled while its admission-and-creation script is under way, it was admitted with its job or not at
    all."""
    _, auth = await _tenant(http)
    entered = asyncio.Event()

    async def hang(*_: object, **__: object) -> None:
        entered.set()
        await asyncio.sleep(60)

    if path == "cache-lead":
        monkeypatch.setattr(JobStore, "create", hang)
        route = "/v1/chat/completions"
    else:
        monkeypatch.setattr(shared.limits, "ADMIT_CREATE", _Script(hang))
        route = "/api/v1/jobs"
    request = asyncio.create_task(http.post(route, json=BODY, headers=auth))
    await asyncio.wait_for(entered.wait(), 5)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    monkeypatch.undo()
    await asyncio.sleep(0.2)  # the shielded give-back finishes on its own
    assert (await _admitted_again(http, auth)).status_code == 202


@pytest.mark.parametrize("path", ["cache-lead", "admit-create"])
async def test_admission_hold_leaves_the_admission_to_a_job_that_was_created(
        http: httpx.AsyncClient, raw: redis.asyncio.Redis,
        monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """The record was written but its reply lost: the job exists and owns the slot (releasing it here too
    would free the budget reservation twice); cancelling the job gives everything back, once. Likewise when
    the lost reply is the admission-and-creation script's."""
    _, auth = await _tenant(http)
    with monkeypatch.context() as patched:
        if path == "cache-lead":
            patched.setattr(JobStore, "create", _after(JobStore.create, RedisConnectionError("reply lost")))
            route = "/v1/chat/completions"
        else:
            patched.setattr(shared.limits, "ADMIT_CREATE", _Script(_lost_when_admitted(shared.limits.ADMIT_CREATE.run)))
            route = "/api/v1/jobs"
        failed = await _post(http, route, auth)
    assert failed == 503
    refused = await _admitted_again(http, auth)
    assert refused.status_code == 429, refused.text  # the job holds the tokens and the slot
    listed = (await http.get("/api/v1/jobs", headers=auth)).json()["data"]
    assert len(listed) == 1
    cancel = await http.post(f"/api/v1/jobs/{listed[0]['id']}/cancel", headers=auth)
    assert cancel.status_code == 200, cancel.text
    assert (await _admitted_again(http, auth)).status_code == 202


async def test_admission_hold_clears_only_its_own_cache_marker(
        raw: redis.asyncio.Redis) -> None:
    """Another request that leads the same answer by now keeps its marker."""
    shard = cast(ShardHandles, SimpleNamespace(redis=raw, cache=ResponseCache(raw)))
    digest = cache_digest("ten_x", WireFormat.OPENAI, BODY)
    await raw.set(cache_inflight_key(digest), "job_other")
    with pytest.raises(Boom):
        async with hold_admission(shard, "job_mine") as hold:
            hold.lead(digest)
            raise Boom("after the claim was lost to another request")
    assert await raw.get(cache_inflight_key(digest)) == b"job_other"
