"""Attribution, reports and the request log end to end (issue 15): the official SDKs send requests through a
real API and worker to the fake provider; their usage records, on real PostgreSQL, carry the key, the end
user and the tags; reports by key, user and tag add up exactly to the tenant's total; the request log
filters by key and status and pages; CSV parses back; tags over the limit are refused.

The tenant has its `default` key and two more named keys made through the admin keys API. Most requests are
priced (`priced`: gpt-4o's price, so a request costs a fraction of a micro-dollar more than a whole number of
them): reports must add up to the nano-dollar, which free requests could not show."""

import asyncio
import csv
import io
import uuid
from dataclasses import dataclass

import anthropic
import httpx
import openai
import pytest

from tests.e2e.conftest import ADMIN_KEY, Gateway

ADMIN = {"X-API-Key": ADMIN_KEY}
ASK = [{"role": "user", "content": "hi"}]
FIVE_WORDS = [{"role": "user", "content": "one two three four five"}]
NINE_WORDS = [{"role": "user", "content": "one two three four five six seven eight nine"}]


@dataclass
class Team:
    tenant_id: str
    own_key: str  # the tenant's key as created: its `default` key
    key_a: str
    key_b: str
    ids: dict[str, str]  # "own", "a", "b" -> the key's id, as usage records carry it


@pytest.fixture
async def team(http: httpx.AsyncClient) -> Team:
    """A tenant with its default key and two more named keys, made through the admin keys API."""
    created = await http.post("/api/v1/admin/tenants", json={"name": f"team-{uuid.uuid4().hex[:10]}"},
                              headers=ADMIN)
    assert created.status_code == 201, created.text
    body = created.json()
    keys_path = f"/api/v1/admin/tenants/{body['id']}/keys"
    listed = (await http.get(keys_path, headers=ADMIN)).json()["data"]
    ids, plains = {"own": listed[0]["id"]}, []
    for name in ("a", "b"):
        made = await http.post(keys_path, json={"name": f"key-{name}"}, headers=ADMIN)
        assert made.status_code == 201, made.text
        ids[name] = made.json()["id"]
        plains.append(made.json()["api_key"])
    return Team(body["id"], body["api_key"], *plains, ids=ids)


def _openai(gateway: Gateway, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.base_url}/v1", api_key=key, max_retries=0, timeout=30)


async def _send_traffic(gateway: Gateway, team: Team) -> None:
    """Six requests: key_a 2 (the second a cache hit), key_b 3 (one failed), the tenant's own key 1. The three
    priced answers cost 82.5, 92.5 and 102.5 micro-dollars (1, 5 and 9 prompt words at $2.50, 8 answer tokens
    at $10 per million): rounded to micro-dollars per record (halves to even) each rounds down, together 1.5
    short of what the tenant paid."""
    a, b = _openai(gateway, team.key_a), _openai(gateway, team.key_b)
    await a.chat.completions.create(model="priced", messages=ASK, user="alice",  # type: ignore[arg-type]
                                    extra_headers={"x-gateway-tags": "team=search,env=prod"})
    await a.chat.completions.create(model="priced", messages=ASK,  # type: ignore[arg-type]
                                    metadata={"team": "search"}, extra_headers={"x-gateway-user": "bob"})
    stream = await b.chat.completions.create(model="priced", messages=FIVE_WORDS, user="alice",  # type: ignore[arg-type]
                                             stream=True, extra_headers={"x-gateway-tags": "team=ads"})
    async for _ in stream:
        pass
    claude = anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key=team.key_b, max_retries=0, timeout=30)
    await claude.messages.create(model="fake-anthropic", max_tokens=50, messages=ASK,  # type: ignore[arg-type]
                                 metadata={"user_id": "carol"}, extra_headers={"x-gateway-tags": "team=ads"})
    with pytest.raises(openai.BadRequestError):
        await b.chat.completions.create(model="reject-400", messages=ASK,  # type: ignore[arg-type]
                                        extra_headers={"x-gateway-tags": "team=ads"})
    await _openai(gateway, team.own_key).chat.completions.create(model="priced", messages=NINE_WORDS)  # type: ignore[arg-type]


async def _request_log(http: httpx.AsyncClient, team: Team, count: int, **params: str) -> list[dict]:
    """The admin request log once `count` entries are stored (the usage writer batches off the request path)."""
    path = f"/api/v1/admin/tenants/{team.tenant_id}/requests"
    for _ in range(100):
        body = (await http.get(path, params={"limit": "100", **params}, headers=ADMIN)).json()
        if len(body["data"]) >= count:
            return list(body["data"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"the request log never reached {count} entries: {body}")


async def test_reports_by_key_user_and_tag_add_up_exactly_to_the_tenant_total(
        gateway: Gateway, http: httpx.AsyncClient, team: Team) -> None:
    await _send_traffic(gateway, team)
    await _request_log(http, team, 6)
    own = {"Authorization": f"Bearer {team.own_key}"}
    total = (await http.get("/api/v1/usage", headers=own)).json()["totals"]
    assert total["requests"] == 6 and total["failed"] == 1
    assert round(total["cost_usd"] * 1_000_000_000) % 1000 != 0  # priced to fractions of a micro-dollar
    expected = {"key": {team.ids["a"]: 2, team.ids["b"]: 3, team.ids["own"]: 1},
                "user": {"alice": 2, "bob": 1, "carol": 1, None: 2},
                "tag:team": {"search": 2, "ads": 3, None: 1}}
    for group_by, counts in expected.items():
        report = (await http.get("/api/v1/usage", params={"group_by": group_by}, headers=own)).json()
        assert {group[group_by]: group["requests"] for group in report["groups"]} == counts
        for measure in ("requests", "prompt_tokens", "completion_tokens", "cost_nanos", "saved_cost_nanos", "failed"):
            assert sum(group[measure] for group in report["groups"]) == report["totals"][measure]
        assert report["totals"]["prompt_tokens"] == total["prompt_tokens"]
        assert report["totals"]["completion_tokens"] == total["completion_tokens"]
        assert report["totals"]["cost_usd"] == total["cost_usd"]
        assert report["totals"]["cost_nanos"] == round(total["cost_usd"] * 1_000_000_000)
    admin = (await http.get(f"/api/v1/admin/tenants/{team.tenant_id}/usage",
                            params={"group_by": "key,user", "tag": "team=ads"}, headers=ADMIN)).json()
    assert [(g["key"], g["user"], g["requests"]) for g in admin["groups"]] == [
        (team.ids["b"], "alice", 1), (team.ids["b"], "carol", 1), (team.ids["b"], None, 1)]


async def test_request_log_filters_by_key_and_status_and_pages(gateway: Gateway, http: httpx.AsyncClient,
                                                               team: Team) -> None:
    await _send_traffic(gateway, team)
    entries = await _request_log(http, team, 6)
    failed = await _request_log(http, team, 1, key=team.ids["b"], status="failed")
    assert len(failed) == 1
    assert failed[0]["model"] == "reject-400" and failed[0]["error_code"] and failed[0]["tags"] == {"team": "ads"}
    assert {e["id"] for e in await _request_log(http, team, 2, key=team.ids["a"])} == {
        e["id"] for e in entries if e["key_id"] == team.ids["a"]}
    own = {"Authorization": f"Bearer {team.key_a}"}
    seen, cursor = [], None
    while True:
        params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
        page = (await http.get("/api/v1/requests", params=params, headers=own)).json()
        seen += [entry["id"] for entry in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == [entry["id"] for entry in entries]
    assert all(entry["latency_ms"] >= 0 and entry["endpoint"] == "chat" for entry in entries)
    # The second request repeats the first's body apart from `user`/`metadata` (not in the cache key): a cache
    # hit, recorded with its own attribution, not the first request's.
    bob = [entry for entry in entries if entry["user"] == "bob"]
    assert [(e["cache_hit"], e["key_id"], e["tags"], e["cost_usd"]) for e in bob] == [
        (True, team.ids["a"], {"team": "search"}, 0.0)]


@pytest.mark.parametrize("how", ["format", "accept"])
async def test_usage_csv_export_parses_back_to_the_groups(gateway: Gateway, http: httpx.AsyncClient, team: Team,
                                                          how: str) -> None:
    await _send_traffic(gateway, team)
    await _request_log(http, team, 6)
    path = f"/api/v1/admin/tenants/{team.tenant_id}/usage"
    params = {"group_by": "key,tag:team"}
    as_json = (await http.get(path, params=params, headers=ADMIN)).json()
    if how == "format":
        response = await http.get(path, params={**params, "format": "csv"}, headers=ADMIN)
    else:
        response = await http.get(path, params=params, headers={**ADMIN, "Accept": "text/csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["key"], r["tag:team"], int(r["requests"]), int(r["cost_nanos"])) for r in rows] == [
        (g["key"] or "", g["tag:team"] or "", g["requests"], g["cost_nanos"]) for g in as_json["groups"]]
    assert sum(int(r["requests"]) for r in rows) == 6


async def test_tags_over_the_limit_are_refused_naming_the_header(gateway: Gateway, http: httpx.AsyncClient,
                                                                 team: Team) -> None:
    client = _openai(gateway, team.key_a)
    too_many = ",".join(f"t{i}=v" for i in range(17))
    with pytest.raises(openai.BadRequestError, match="x-gateway-tags") as caught:
        await client.chat.completions.create(model="fake-openai", messages=ASK,  # type: ignore[arg-type]
                                             extra_headers={"x-gateway-tags": too_many})
    assert caught.value.status_code == 400
    with pytest.raises(openai.BadRequestError, match="x-gateway-tags: the value of 'team'"):
        await client.chat.completions.create(model="fake-openai", messages=ASK,  # type: ignore[arg-type]
                                             extra_headers={"x-gateway-tags": "team=" + "x" * 513})
    claude = anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key=team.key_a, max_retries=0, timeout=30)
    with pytest.raises(anthropic.BadRequestError, match="x-gateway-user") as refused:
        await claude.messages.create(model="fake-anthropic", max_tokens=50, messages=ASK,  # type: ignore[arg-type]
                                     extra_headers={"x-gateway-user": "u" * 257})
    assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    await client.chat.completions.create(model="fake-openai", messages=ASK)  # type: ignore[arg-type]
    logged = await _request_log(http, team, 1)
    await asyncio.sleep(0.5)  # a refused request would have been written with the accepted one
    assert len(await _request_log(http, team, 1)) == len(logged) == 1


async def test_reports_refuse_an_unknown_group_by(http: httpx.AsyncClient, team: Team) -> None:
    response = await http.get("/api/v1/usage", params={"group_by": "colour"},
                              headers={"Authorization": f"Bearer {team.key_a}"})
    assert response.status_code == 400
    assert "group_by" in response.json()["error"]["message"]


async def _logged(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> dict:
    for _ in range(100):
        response = await http.get(path, headers=headers)
        if response.status_code == 200:
            return dict(response.json())
        assert response.status_code == 404, response.text
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.parametrize("opted_in", [True, False])
async def test_request_content_is_stored_only_for_a_tenant_that_opted_in(http: httpx.AsyncClient, team: Team,
                                                                         opted_in: bool) -> None:
    if opted_in:
        patched = await http.patch(f"/api/v1/admin/tenants/{team.tenant_id}", json={"log_content_days": 1},
                                   headers=ADMIN)
        assert patched.status_code == 200 and patched.json()["log_content_days"] == 1
    own = {"Authorization": f"Bearer {team.own_key}"}
    answered = await http.post("/v1/chat/completions", headers=own, json={
        "model": "fake-openai", "messages": [{"role": "user", "content": "the secret plan"}]})
    assert answered.status_code == 200, answered.text
    job_id = answered.headers["x-gateway-job-id"]
    entry = await _logged(http, f"/api/v1/requests/{job_id}", own)
    admin = await _logged(http, f"/api/v1/admin/tenants/{team.tenant_id}/requests/{job_id}", ADMIN)
    assert entry == admin and entry["id"] == job_id
    if not opted_in:
        assert entry["content"] is None
        return
    assert entry["content"]["request"]["messages"][0]["content"] == [{"type": "text", "text": "the secret plan"}]
    assert entry["content"]["answer"] == answered.json()["choices"][0]["message"]["content"]
    stranger = await http.post("/api/v1/admin/tenants", json={"name": f"s-{uuid.uuid4().hex[:8]}"}, headers=ADMIN)
    hidden = await http.get(f"/api/v1/requests/{job_id}",
                            headers={"Authorization": f"Bearer {stranger.json()['api_key']}"})
    assert hidden.status_code == 404
