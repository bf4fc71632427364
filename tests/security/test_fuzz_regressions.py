"""Plain regression tests for what the OpenAPI fuzzing (test_fuzz_openapi.py) found, each named for the
behaviour it pins, in-process against real Redis (database 3) and a SQLite file:

- PATCH/POST of tenant limits beyond the database's INTEGER range reached PostgreSQL and came back as 503
  "backing service unavailable"; limits are now bounded and refused with 400.
- Streamed answers were documented as `text/event-stream` events of type string; schemathesis reads an
  event as an object (`event`, `data`, `id`, `retry`), which is what the schema now says.
- Creating a tenant whose name is taken answers 409, which the schema did not document.
- Hand-written follow-ups of the same kind: JSON nested past Python's recursion limit was a 500.
- The hostile-value pass (issue 12): an integer of 5,000 digits anywhere in a body was a 500 on every JSON
  endpoint (Python's json raises ValueError past 4,300 digits); a NUL in a tenant id reached PostgreSQL, which
  refuses it in text, and came back as 503 "backing service unavailable". The rest of that class is in
  test_hostile_input.py."""

from collections.abc import AsyncIterator

import httpx
import pytest

from api.main import create_app
from shared.config import Settings
from tests.api.conftest import app_client
from tests.e2e.conftest import Gateway
from tests.security.conftest import ADMIN_KEY as GATEWAY_ADMIN_KEY

ADMIN = {"X-API-Key": "fuzz-admin-key"}


@pytest.fixture
async def http(clean_redis: str, sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, admin_api_key=ADMIN["X-API-Key"]) as client:
        yield client


async def _tenant(http: httpx.AsyncClient, name: str = "fuzzed") -> dict[str, str]:
    response = await http.post("/api/v1/admin/tenants", json={"name": name}, headers=ADMIN)
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


@pytest.mark.parametrize("limits", [
    {"tpm_limit": 79609827235485251314461148446720}, {"max_concurrent": 2**31}, {"rate_limit": 2**40},
    {"budget_usd": 5.914482231886867e307},
])
async def test_tenant_update_refuses_limits_beyond_storable_range(http: httpx.AsyncClient,
                                                                  limits: dict[str, object]) -> None:
    tenant = await _tenant(http)
    response = await http.patch(f"/api/v1/admin/tenants/{tenant['id']}", json=limits, headers=ADMIN)
    assert response.status_code == 400, response.text
    assert next(iter(limits)) in response.json()["error"]["message"]


async def test_tenant_create_refuses_limits_beyond_storable_range(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/v1/admin/tenants", params={"name": "big", "rate_limit": 2**63}, headers=ADMIN)
    assert response.status_code == 400, response.text


async def test_tenant_update_accepts_limits_at_the_bounds(http: httpx.AsyncClient) -> None:
    tenant = await _tenant(http)
    limits = {"tpm_limit": 2**31 - 1, "budget_usd": 1e9}
    response = await http.patch(f"/api/v1/admin/tenants/{tenant['id']}", json=limits, headers=ADMIN)
    assert response.status_code == 200, response.text


async def test_tenant_create_with_taken_name_is_documented_409(http: httpx.AsyncClient) -> None:
    await _tenant(http, "taken")
    response = await http.post("/api/v1/admin/tenants", json={"name": "taken"}, headers=ADMIN)
    assert response.status_code == 409
    responses = (await http.get("/openapi.json")).json()["paths"]["/api/v1/admin/tenants"]["post"]["responses"]
    assert "409" in responses


async def test_openapi_streamed_events_are_documented_as_event_objects() -> None:
    paths = create_app(Settings(_env_file=None)).openapi()["paths"]  # type: ignore[call-arg]
    for path in ("/v1/chat/completions", "/v1/messages", "/api/v1/completions", "/api/v1/jobs/{job_id}/events"):
        ok = next(r for status, r in paths[path][next(iter(paths[path]))]["responses"].items() if status < "300")
        event = ok["content"]["text/event-stream"]["schema"]
        assert event["type"] == "object" and "data" in event["properties"], path


async def test_openapi_errors_are_documented_in_the_route_error_shape() -> None:
    paths = create_app(Settings(_env_file=None)).openapi()["paths"]  # type: ignore[call-arg]
    messages_401 = paths["/v1/messages"]["post"]["responses"]["401"]["content"]["application/json"]["schema"]
    chat_413 = paths["/v1/chat/completions"]["post"]["responses"]["413"]["content"]["application/json"]["schema"]
    assert messages_401["$ref"].endswith("/AnthropicError") and chat_413["$ref"].endswith("/Error")
    assert all("422" not in item[method]["responses"] for item in paths.values() for method in item)


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages", "/api/v1/admin/tenants"])
async def test_deeply_nested_json_body_is_400_not_500(http: httpx.AsyncClient, route: str) -> None:
    tenant = await _tenant(http, "nested")
    headers = ADMIN if "admin" in route else {"X-API-Key": tenant["api_key"]}
    body = b'{"model": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await http.post(route, content=body, headers={**headers, "content-type": "application/json"})
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages", "/api/v1/completions", "/api/v1/jobs",
                                   "/api/v1/admin/tenants", "/api/v1/admin/tenants/{id}"])
async def test_integer_of_5000_digits_in_a_body_is_400_not_500(http: httpx.AsyncClient, route: str) -> None:
    tenant = await _tenant(http, "digits")
    headers = {**(ADMIN if "admin" in route else {"X-API-Key": tenant["api_key"]}), "content-type": "application/json"}
    body = ('{"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "weight": '
            + "1" * 5000 + "}")
    method = "PATCH" if "{id}" in route else "POST"
    response = await http.request(method, route.format(id=tenant["id"]), content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert "'weight'" in response.text


def test_tenant_id_with_nul_is_400_not_503(secure_gateway: Gateway) -> None:
    """On PostgreSQL (the in-process tests run SQLite, which takes NUL)."""
    response = httpx.get(f"{secure_gateway.base_url}/api/v1/admin/tenants/ten_%00", timeout=10,
                         headers={"X-API-Key": GATEWAY_ADMIN_KEY})
    assert response.status_code == 400, response.text
    assert "tenant_id" in response.json()["error"]["message"]
