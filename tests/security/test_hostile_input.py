"""Input a hostile tenant (or a buggy client) sends, in-process against real Redis (database 3) and a SQLite
file: every kind must be a 400 in the route's error shape that names the field, never a 500, and never a 503
that blames Redis or the database for the client's value.

- lone UTF-16 surrogates (half an emoji) in any text of any body: they failed after admission, when the job
  record was written, leaving the tenant's concurrency slot and budget reservation taken;
- integers past 4,300 digits (Python's json raises ValueError), past int64, and non-finite numbers;
- token counts and sampling numbers far outside any sane range;
- header values that str.isdigit() accepts and int() does not ('²'), or that are huge;
- forged list cursors, and job and tenant ids with control characters, NUL or non-ASCII in paths;
- admin limits and ids, webhook dead-letter ids."""

import base64
import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
import redis.asyncio

from shared.cache import CachedAnswer, cache_digest
from shared.keys import cache_entry_key
from shared.models import Completion, WireFormat
from tests.api.conftest import app_client

ADMIN = {"X-API-Key": "hostile-admin-key"}
HUGE = "1" + "0" * 5000
ARABIC_ONE, ARABIC_123 = "\u0661", "\u0661\u0662\u0663"  # str.isdigit() is True for both
CHAT = '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]%s}'
MESSAGES = '{"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]%s}'
COMPLETION_ROUTES = {"/v1/chat/completions": CHAT, "/api/v1/completions": CHAT, "/api/v1/jobs": CHAT,
                     "/v1/messages": MESSAGES}


@pytest.fixture
async def http(clean_redis: str, sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, admin_api_key=ADMIN["X-API-Key"],
                          webhook_secret="hostile-webhook-secret") as client:
        yield client


@pytest.fixture
async def tenant(http: httpx.AsyncClient) -> dict[str, str]:
    """A tenant that can have one request in flight: anything leaked by a refused request locks it out."""
    response = await http.post("/api/v1/admin/tenants", json={"name": "hostile", "max_concurrent": 1,
                                                               "budget_usd": 10.0}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["api_key"], "id": response.json()["id"]}


def _auth(tenant: dict[str, str]) -> dict[str, str]:
    return {"X-API-Key": tenant["X-API-Key"], "content-type": "application/json"}


def assert_400_naming(route: str, response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    error = body["error"]
    assert (body["type"] == "error") if route.startswith("/v1/messages") else ("param" in error)
    assert field in error["message"], error["message"]


async def assert_still_admitted(http: httpx.AsyncClient, tenant: dict[str, str]) -> None:
    """The tenant's one slot and its budget are free: a plain job is accepted."""
    response = await http.post("/api/v1/jobs", content=CHAT % "", headers=_auth(tenant))
    assert response.status_code == 202, response.text


# Where text can be, per wire format: (JSON to add to the body, the field the 400 must name).
OPENAI_TEXT = [
    (', "messages": [{"role": "user", "content": "x\\ud800y"}]', "messages[0].content"),
    (', "messages": [{"role": "user", "content": [{"type": "text", "text": "\\udc00"}]}]',
     "messages[0].content[0].text"),
    (', "messages": [{"role": "system", "content": "\\ud83d"}, {"role": "user", "content": "hi"}]',
     "messages[0].content"),
    (', "messages": [{"role": "user", "content": "hi", "name": "\\ud800"}]', "messages[0].name"),
    (', "tools": [{"type": "function", "function": {"name": "f\\ud800", "description": "d"}}]',
     "tools[0].function.name"),
    (', "tools": [{"type": "function", "function": {"name": "f", "parameters": {"\\udfff": 1}}}]',
     "tools[0].function.parameters.\\udfff"),
    (', "metadata": {"k": "\\ud800"}', "metadata.k"),
    (', "stop": "\\ud800"', "stop"),
    (', "stop": ["ok", "\\ud800"]', "stop[1]"),
    (', "user": "\\ud800"', "user"),
    (', "response_format": {"type": "json_schema", "json_schema": {"name": "\\ud800"}}',
     "response_format.json_schema.name"),
]
ANTHROPIC_TEXT = [
    (', "system": "\\ud800"', "system"),
    (', "system": [{"type": "text", "text": "\\ud800"}]', "system[0].text"),
    (', "messages": [{"role": "user", "content": [{"type": "text", "text": "a\\udbffb"}]}]',
     "messages[0].content[0].text"),
    (', "metadata": {"user_id": "\\ud800"}', "metadata.user_id"),
    (', "stop_sequences": ["\\ud800"]', "stop_sequences[0]"),
    (', "tools": [{"name": "t", "description": "\\ud800", "input_schema": {}}]', "tools[0].description"),
]
OPENAI_ROUTES = ("/v1/chat/completions", "/api/v1/completions", "/api/v1/jobs")
SURROGATE_CASES = [(route, extra, field) for route in OPENAI_ROUTES for extra, field in OPENAI_TEXT] + [
    ("/v1/messages", extra, field) for extra, field in ANTHROPIC_TEXT]


def _body(route: str, extra: str) -> str:
    """The route's minimal body with `extra` appended; a later duplicate key wins in JSON, as in Python."""
    return COMPLETION_ROUTES[route] % extra


@pytest.mark.parametrize(("route", "extra", "field"), SURROGATE_CASES,
                         ids=[f"{r} {f}" for r, _, f in SURROGATE_CASES])
@pytest.mark.parametrize("cache_ttl", ["0", None])
async def test_lone_surrogate_anywhere_is_400_before_admission(http: httpx.AsyncClient, tenant: dict[str, str],
                                                               route: str, extra: str, field: str,
                                                               cache_ttl: str | None) -> None:
    headers = {**_auth(tenant), **({"x-cache-ttl": cache_ttl} if cache_ttl else {})}
    for _ in range(3):  # three of these once locked the tenant out (max_concurrent=1)
        response = await http.post(route, content=_body(route, extra), headers=headers)
        assert_400_naming(route, response, f"'{field}'")
    assert "surrogate" in response.text
    await assert_still_admitted(http, tenant)


@pytest.mark.parametrize("route", COMPLETION_ROUTES)
async def test_raw_utf8_encoded_surrogate_bytes_are_400(http: httpx.AsyncClient, tenant: dict[str, str],
                                                        route: str) -> None:
    body = _body(route, ', "messages": [{"role": "user", "content": "X"}]').encode().replace(b"X", b"\xed\xa0\x80")
    assert_400_naming(route, await http.post(route, content=body, headers=_auth(tenant)), "'messages[0].content'")


async def test_lone_surrogate_in_a_job_callback_url_is_400(http: httpx.AsyncClient, tenant: dict[str, str]) -> None:
    body = _body("/api/v1/jobs", ', "callback_url": "https://example.com/\\ud800"')
    response = await http.post("/api/v1/jobs", content=body, headers=_auth(tenant))
    assert_400_naming("/api/v1/jobs", response, "'callback_url'")


# Numbers: (JSON to add, the field named). Each is tried on every completion route.
NUMBERS = [
    (f', "max_tokens": {HUGE}', "max_tokens"), (f', "anything": [-{HUGE}]', "anything[0]"),
    (', "max_tokens": 2147483648', "max_tokens"), (', "max_tokens": 9223372036854775808', "max_tokens"),
    (', "max_tokens": 1e400', "max_tokens"), (', "temperature": NaN', "temperature"),
    (', "top_p": Infinity', "top_p"), (', "temperature": -1e400', "temperature"),
    (', "seed": 18446744073709551616', "seed"), (', "metadata": {"n": 1e999}', "metadata.n"),
]
OPENAI_NUMBERS = [(', "max_completion_tokens": 99999999999', "max_completion_tokens"),
                  (', "n": 1000000000000000000', "n"), (', "top_logprobs": 1000000', "top_logprobs"),
                  (', "seed": 1.5e300', "seed"), (', "presence_penalty": 1e300', "presence_penalty"),
                  (', "frequency_penalty": -1e300', "frequency_penalty")]
ANTHROPIC_NUMBERS = [(', "top_k": 1099511627776', "top_k"),
                     (', "thinking": {"type": "enabled", "budget_tokens": 1099511627776}', "thinking.budget_tokens"),
                     (', "max_tokens": 0', "max_tokens")]
NUMBER_CASES = [(route, extra, field) for route in COMPLETION_ROUTES for extra, field in NUMBERS] + [
    (route, extra, field) for route in ("/v1/chat/completions", "/api/v1/jobs") for extra, field in OPENAI_NUMBERS
] + [("/v1/messages", extra, field) for extra, field in ANTHROPIC_NUMBERS]


@pytest.mark.parametrize(("route", "extra", "field"), NUMBER_CASES, ids=[f"{r} {f}" for r, _, f in NUMBER_CASES])
async def test_numbers_out_of_range_are_400_naming_the_field(http: httpx.AsyncClient, tenant: dict[str, str],
                                                             route: str, extra: str, field: str) -> None:
    response = await http.post(route, content=_body(route, extra), headers=_auth(tenant))
    assert_400_naming(route, response, f"'{field}'")


@pytest.mark.parametrize("value", ["²".encode("latin-1"), ARABIC_123.encode(), b"9" * 5000, b"-1", b"1e3", b"0x10",
                                   b"NaN", b"2592001", b"12 34"])
async def test_cache_ttl_header_that_is_not_a_small_ascii_number_is_400(http: httpx.AsyncClient,
                                                                        tenant: dict[str, str], value: bytes) -> None:
    response = await http.post("/v1/chat/completions", content=CHAT % "",
                               headers={**_auth(tenant), "x-cache-ttl": value})
    assert_400_naming("/v1/chat/completions", response, "x-cache-ttl")
    await assert_still_admitted(http, tenant)


@pytest.mark.parametrize(("header", "value", "field"), [
    ("x-priority", ARABIC_ONE.encode(), "X-Priority"), ("x-priority", b"9" * 5000, "X-Priority"),
    ("x-priority", "bätch".encode("latin-1"), "X-Priority"),
    ("idempotency-key", "é".encode("latin-1"), "Idempotency-Key"),
    ("idempotency-key", b"k" * 256, "Idempotency-Key"),
    ("idempotency-key", b"a\tb", "Idempotency-Key"),
])
async def test_odd_scheduling_and_idempotency_headers_are_400(http: httpx.AsyncClient, tenant: dict[str, str],
                                                              header: str, value: bytes, field: str) -> None:
    response = await http.post("/api/v1/jobs", content=CHAT % "",
                               headers={**_auth(tenant), header: value})
    assert_400_naming("/api/v1/jobs", response, field)
    await assert_still_admitted(http, tenant)


@pytest.mark.parametrize("value", [b"max-age=" + b"9" * 5000, f"no-store={ARABIC_ONE}".encode(), b",,, ;;", b"\xff\xfe",
                                   b"no-cache=" + b"x" * 4000])
async def test_odd_cache_control_values_never_fail(http: httpx.AsyncClient, tenant: dict[str, str],
                                                   clean_redis: str, value: bytes) -> None:
    """Cache-Control is advisory: what is not `no-cache` or `no-store` is ignored, so a stored answer serves."""
    body = json.loads(CHAT % "")
    answer = CachedAnswer(completion=Completion(id="c", model="gpt-4o", provider="openai", content="cached"),
                          chunks=["cached"], cost_usd=0.0)
    raw = redis.asyncio.Redis.from_url(clean_redis)
    await raw.set(cache_entry_key(cache_digest(tenant["id"], WireFormat.OPENAI, body)), answer.model_dump_json())
    await raw.aclose()
    response = await http.post("/v1/chat/completions", content=CHAT % "",
                               headers={**_auth(tenant), "cache-control": value})
    assert response.status_code == 200, response.text
    assert response.headers["x-cache"] == "HIT"


def _cursor(raw_json: str) -> str:
    return base64.urlsafe_b64encode(raw_json.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    _cursor('[NaN, "job_x"]'), _cursor('[Infinity, "job_x"]'), _cursor("[1" + "0" * 309 + ', "job_x"]'),
    _cursor('[1.5, "job_\\u0000"]'), _cursor('[1.5, "\\ud800"]'), _cursor('[1.5, "' + "j" * 200 + '"]'),
    _cursor("[1.5]"), _cursor("{}"), "١٢٣", "%%%%", "====",
])
async def test_forged_job_list_cursor_is_400(http: httpx.AsyncClient, tenant: dict[str, str], cursor: str) -> None:
    response = await http.get("/api/v1/jobs", params={"cursor": cursor}, headers=_auth(tenant))
    assert_400_naming("/api/v1/jobs", response, "cursor")


@pytest.mark.parametrize("query", [{"limit": "١٢"}, {"limit": "9" * 5000}, {"limit": "1e400"},
                                   {"status": "\u0000"}])
async def test_odd_job_list_parameters_are_400(http: httpx.AsyncClient, tenant: dict[str, str],
                                               query: dict[str, str]) -> None:
    response = await http.get("/api/v1/jobs", params=query, headers=_auth(tenant))
    assert_400_naming("/api/v1/jobs", response, next(iter(query)))


BAD_IDS = ["job_%01x", "job_%00x", "job_%7F", "job_%C3%A9", "job_%ED%A0%80", "job_%20x", "j" * 65, "job_%0Ax"]


@pytest.mark.parametrize("job_id", BAD_IDS)
@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("GET", "/events"), ("POST", "/cancel")])
async def test_malformed_job_id_in_path_is_400(http: httpx.AsyncClient, tenant: dict[str, str], job_id: str,
                                               method: str, suffix: str) -> None:
    response = await http.request(method, f"/api/v1/jobs/{job_id}{suffix}", headers=_auth(tenant))
    assert_400_naming("/api/v1/jobs", response, "job_id")


@pytest.mark.parametrize("tenant_id", ["ten_%00", "ten_%01", "ten_%C3%A9", "t" * 65])
@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("PATCH", ""), ("POST", "/disable"),
                                                ("POST", "/enable"), ("POST", "/rotate-key"), ("GET", "/usage")])
async def test_malformed_tenant_id_in_admin_path_is_400(http: httpx.AsyncClient, tenant_id: str, method: str,
                                                        suffix: str) -> None:
    """NUL in a tenant id reached PostgreSQL, which refuses it in text: a 503 blaming the database."""
    response = await http.request(method, f"/api/v1/admin/tenants/{tenant_id}{suffix}", headers=ADMIN,
                                  json={"rate_limit": 1} if method == "PATCH" else None)
    assert_400_naming("/api/v1/admin", response, "tenant_id")


@pytest.mark.parametrize(("body", "field"), [
    ('{"name": "n", "rate_limit": ' + HUGE + "}", "rate_limit"), ('{"name": "n", "weight": 1e400}', "weight"),
    ('{"name": "n", "budget_usd": NaN}', "budget_usd"), ('{"name": "\\ud800"}', "name"),
    ('{"name": "n", "max_running": 9223372036854775807}', "max_running"),
    ('{"name": "n", "weight": 100000}', "weight"), ('{"name": "n", "budget_period": "\\udfff"}', "budget_period"),
])
async def test_admin_create_refuses_hostile_values(http: httpx.AsyncClient, body: str, field: str) -> None:
    response = await http.post("/api/v1/admin/tenants", content=body,
                               headers={**ADMIN, "content-type": "application/json"})
    assert_400_naming("/api/v1/admin/tenants", response, field)


@pytest.mark.parametrize(("query", "field"), [({"rate_limit": "9" * 5000}, "rate_limit"),
                                              ({"weight": ARABIC_ONE}, "weight"),
                                              ({"budget_usd": "1e400"}, "budget_usd"),
                                              ({"budget_usd": "nan"}, "budget_usd"),
                                              ({"max_concurrent": "-9" * 30}, "max_concurrent")])
async def test_admin_create_refuses_hostile_query_values(http: httpx.AsyncClient, query: dict[str, str],
                                                         field: str) -> None:
    response = await http.post("/api/v1/admin/tenants", params={"name": "q", **query}, headers=ADMIN)
    assert_400_naming("/api/v1/admin/tenants", response, field)


@pytest.mark.parametrize(("body", "field"), [
    ('{"tpm_limit": ' + HUGE + "}", "tpm_limit"), ('{"max_concurrent": Infinity}', "max_concurrent"),
    ('{"weight": 1001}', "weight"), ('{"max_running": 2147483648}', "max_running"),
    ('{"budget_usd": -1e400}', "budget_usd"), ('{"\\ud800": 1}', "\\ud800"),
])
async def test_admin_update_refuses_hostile_values(http: httpx.AsyncClient, tenant: dict[str, str], body: str,
                                                   field: str) -> None:
    response = await http.patch(f"/api/v1/admin/tenants/{tenant['id']}", content=body,
                                headers={**ADMIN, "content-type": "application/json"})
    assert_400_naming("/api/v1/admin", response, field)


@pytest.mark.parametrize("before", [f"{ARABIC_ONE}-0", "99999999999999999999-0", "1-0\n", "1-" + "9" * 5000, "-1-0"])
async def test_dead_letter_cursor_that_redis_would_refuse_is_400(http: httpx.AsyncClient, before: str) -> None:
    """Redis refuses such a stream id (a 503 blaming it); Arabic-Indic digits matched `\\d`, `$` a newline."""
    response = await http.get("/api/v1/admin/webhooks/dead", params={"before": before}, headers=ADMIN)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("ident", [f"{ARABIC_ONE}-0", "18446744073709551616-0", "1-0\n"])
async def test_dead_letter_redelivery_of_an_id_redis_would_refuse_is_400(http: httpx.AsyncClient,
                                                                         ident: str) -> None:
    response = await http.post("/api/v1/admin/webhooks/dead/redeliver", json={"ids": [ident]}, headers=ADMIN)
    assert response.status_code == 400, response.text


async def test_path_with_percent_encoded_surrogate_bytes_is_answered(http: httpx.AsyncClient) -> None:
    """Unknown paths echo the path in their 404: undecodable bytes there must not break the error itself."""
    response = await http.get("/v1/" + quote(b"\xed\xa0\x80"))
    assert response.status_code == 404
