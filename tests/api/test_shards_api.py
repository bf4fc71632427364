"""The API on two Redis shards, one of them down (a closed port): a tenant on the live shard is served (its
key authenticated from the database when the auth cache's shard is the down one), a tenant on the down shard
is refused at once with a 503 `redis_unavailable` in its route's error shape, /health says `degraded` and
names the shard, the metrics label each shard's gauges with its number, and an operator's lookup across
shards names the shard that did not answer."""

import time
from itertools import count

import httpx
import pytest
import redis.asyncio
from prometheus_client.parser import text_string_to_metric_families

from api.shards import ShardsUnavailable, find_job, open_shards
from shared.config import Settings
from shared.db.engine import create_engine, create_session_factory
from shared.keys import WORKERS_KEY, auth_cache_key
from shared.models import WireFormat
from shared.redis import create_redis
from shared.shard_clients import ShardClients
from shared.shards import rendezvous_index, shard_identity
from shared.tenants import create_tenant, hash_key
from tests.api.conftest import CLOSED_REDIS_URL, app_client
from tests.factories import make_chat_request
from tests.support.processes import free_port

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
PROMPT_S = 1.0


def _names(live: str) -> tuple[str, str]:
    return shard_identity(live), shard_identity(CLOSED_REDIS_URL)


async def _tenant(sqlite_url: str, live: str, *, tenant_shard: int, key_shard: int) -> tuple[str, str]:
    """(tenant_id, key) of a new tenant on `tenant_shard` whose key's auth cache lives on `key_shard`."""
    names, engine = _names(live), create_engine(sqlite_url)
    try:
        async with create_session_factory(engine)() as session:
            for n in count():
                assert n < 200, "no tenant landed where wanted"
                tenant, key = await create_tenant(session, f"shards-{n}")
                if (rendezvous_index(tenant.id, names), rendezvous_index(hash_key(key), names)) == \
                        (tenant_shard, key_shard):
                    return tenant.id, key
    finally:
        await engine.dispose()
    raise AssertionError("unreachable")


def _shards(live: str) -> str:
    return f"{live},{CLOSED_REDIS_URL}"


async def test_tenant_on_the_live_shard_is_served_with_its_auth_shard_down(clean_redis: str,
                                                                            sqlite_url: str) -> None:
    _, key = await _tenant(sqlite_url, clean_redis, tenant_shard=0, key_shard=1)
    async with app_client(redis_shards=_shards(clean_redis), database_url=sqlite_url) as http:
        listed = await http.get("/api/v1/jobs", headers={"X-API-Key": key})
    assert listed.status_code == 200, listed.text  # authenticated from the database: nothing could be cached
    assert listed.json()["data"] == []


async def test_auth_cache_lives_on_the_key_hash_shard(clean_redis: str, sqlite_url: str,
                                                      raw: redis.asyncio.Redis) -> None:
    _, key = await _tenant(sqlite_url, clean_redis, tenant_shard=0, key_shard=0)
    async with app_client(redis_shards=_shards(clean_redis), database_url=sqlite_url) as http:
        assert (await http.get("/api/v1/jobs", headers={"X-API-Key": key})).status_code == 200
    assert await raw.exists(auth_cache_key(hash_key(key))) == 1


@pytest.mark.parametrize("key_shard", [0, 1])
async def test_tenant_on_the_down_shard_is_refused_at_once(clean_redis: str, sqlite_url: str,
                                                            key_shard: int) -> None:
    _, key = await _tenant(sqlite_url, clean_redis, tenant_shard=1, key_shard=key_shard)
    async with app_client(redis_shards=_shards(clean_redis), database_url=sqlite_url, openai_api_key="sk") as http:
        answers: list[tuple[httpx.Response, float]] = []
        for method, path, body in [("POST", "/v1/chat/completions", CHAT), ("POST", "/api/v1/jobs", CHAT),
                                   ("GET", "/api/v1/jobs", None), ("POST", "/v1/messages", {**CHAT, "max_tokens": 5})]:
            started = time.monotonic()
            response = await http.request(method, path, json=body, headers={"X-API-Key": key})
            answers.append((response, time.monotonic() - started))
    for response, elapsed in answers:
        assert response.status_code == 503 and elapsed < PROMPT_S, (response.text, elapsed)
        assert int(response.headers["retry-after"]) >= 1
    for response, _ in answers[:3]:
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("service_unavailable", "redis_unavailable"), error
    anthropic = answers[3][0].json()  # Anthropic's error shape on /v1/messages
    assert anthropic["type"] == "error" and anthropic["error"]["message"], anthropic


async def test_health_is_degraded_with_one_shard_down(clean_redis: str, sqlite_url: str,
                                                      raw: redis.asyncio.Redis) -> None:
    await raw.zadd(WORKERS_KEY, {"worker-x": int(time.time() * 1000)})
    async with app_client(redis_shards=_shards(clean_redis), database_url=sqlite_url) as http:
        response = await http.get("/health")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "degraded", body
    shards = body["checks"]["shards"]
    assert [(s["shard"], s["ok"], s["redis"]) for s in shards] == [(0, True, True), (1, False, False)]
    assert shards[0]["queue_depth"] == 0 and shards[0]["workers"] == 1
    assert body["checks"]["redis"]["ok"] is False and "shard(s) 1" in body["checks"]["redis"]["detail"]


async def test_health_is_unavailable_with_every_shard_down(sqlite_url: str) -> None:
    async with app_client(redis_shards=f"{CLOSED_REDIS_URL},redis://127.0.0.1:2/0", database_url=sqlite_url) as http:
        response = await http.get("/health")
    assert response.status_code == 503 and response.json()["status"] == "unavailable"


async def test_dead_letters_of_an_unknown_shard_are_a_400(clean_redis: str, sqlite_url: str) -> None:
    admin = {"X-API-Key": "admin-secret"}
    async with app_client(redis_shards=_shards(clean_redis), database_url=sqlite_url,
                          admin_api_key="admin-secret") as http:
        first = await http.get("/api/v1/admin/webhooks/dead?shard=0", headers=admin)
        unknown = await http.get("/api/v1/admin/webhooks/dead?shard=2", headers=admin)
        down = await http.get("/api/v1/admin/webhooks/dead?shard=1", headers=admin)
    assert first.status_code == 200 and first.json()["shards"] == 2
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_shard"
    assert down.status_code == 503 and down.json()["error"]["code"] == "redis_unavailable"


async def test_find_job_across_shards_names_the_shard_that_did_not_answer(clean_redis: str) -> None:
    settings = Settings(_env_file=None, redis_shards=_shards(clean_redis))  # type: ignore[call-arg]
    live, down = create_redis(settings, url=clean_redis), create_redis(settings, url=CLOSED_REDIS_URL)
    shards = open_shards(settings, ShardClients(clients=(live, down), names=_names(clean_redis)))
    try:
        await shards.handles[0].store.create("job_here", "ten_1", make_chat_request("gpt-4o"), WireFormat.OPENAI)
        found = await find_job(shards, "job_here")
        assert found is not None and found[0].id == "job_here" and found[1].index == 0
        with pytest.raises(ShardsUnavailable, match=r"shard\(s\) 1 did not answer") as caught:
            await find_job(shards, "job_elsewhere")
        assert caught.value.status == 503 and caught.value.code == "redis_unavailable"
    finally:
        await live.aclose()
        await down.aclose()


async def test_metrics_report_each_shard_by_number(clean_redis: str, sqlite_url: str,
                                                   raw: redis.asyncio.Redis) -> None:
    await raw.zadd(WORKERS_KEY, {"worker-x": int(time.time() * 1000)})
    port = free_port()
    async with app_client(redis_shards=_shards(clean_redis), database_url=sqlite_url, api_metrics_port=port,
                          metrics_host="127.0.0.1"), \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as scraper:
        scraped = await scraper.get("/metrics")
    samples = {(sample.name, sample.labels.get("shard")): sample.value
               for family in text_string_to_metric_families(scraped.text) for sample in family.samples
               if sample.name in ("llm_gateway_redis_shard_up", "llm_gateway_queue_depth", "llm_gateway_workers")}
    assert samples[("llm_gateway_redis_shard_up", "0")] == 1 and samples[("llm_gateway_redis_shard_up", "1")] == 0
    assert samples[("llm_gateway_queue_depth", "0")] == 0 and samples[("llm_gateway_workers", "0")] == 1
