"""Every bad input gets the right 4xx in the route's error shape: OpenAI's on the OpenAI-style routes,
Anthropic's on /v1/messages. Never a 500."""

import httpx
import pytest

OPENAI_ROUTES = ["/v1/chat/completions", "/api/v1/completions", "/api/v1/jobs"]
GOOD = {"model": "fake-openai", "messages": [{"role": "user", "content": "hi"}]}
GOOD_ANTHROPIC = {**GOOD, "model": "fake-anthropic", "max_tokens": 10}

BAD_BODIES = [
    ("missing model", {"messages": [{"role": "user", "content": "hi"}]}, 400, "model"),
    ("missing messages", {"model": "fake-openai"}, 400, "messages"),
    ("empty messages", {"model": "fake-openai", "messages": []}, 400, "messages"),
    ("messages wrong type", {"model": "fake-openai", "messages": "hi"}, 400, "messages"),
    ("model wrong type", {"model": 42, "messages": [{"role": "user", "content": "hi"}]}, 400, "model"),
    ("bad role", {"model": "fake-openai", "messages": [{"role": "robot", "content": "hi"}]}, 400, "role"),
    ("negative max_tokens", {**GOOD, "max_tokens": -5}, 400, "max_tokens"),
    ("temperature out of range", {**GOOD, "temperature": 7}, 400, "temperature"),
    ("temperature wrong type", {**GOOD, "temperature": "hot"}, 400, "temperature"),
    ("unknown model", {**GOOD, "model": "no-such-model"}, 404, "no-such-model"),
]


def _assert_openai_error(response: httpx.Response, status: int, mentions: str = "") -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert {"message", "type", "code"} <= set(error)
    assert mentions.lower() in error["message"].lower()


def _assert_anthropic_error(response: httpx.Response, status: int, mentions: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and {"type", "message"} <= set(body["error"])
    assert mentions.lower() in body["error"]["message"].lower()


@pytest.mark.parametrize("route", OPENAI_ROUTES)
@pytest.mark.parametrize(("case", "body", "status", "mentions"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_openai_routes_reject_bad_body(http: httpx.AsyncClient, tenant_key: str, route: str, case: str,
                                             body: dict, status: int, mentions: str) -> None:
    response = await http.post(route, json=body, headers={"X-API-Key": tenant_key})
    _assert_openai_error(response, status, mentions)


@pytest.mark.parametrize("route", OPENAI_ROUTES)
async def test_openai_routes_reject_malformed_json(http: httpx.AsyncClient, tenant_key: str, route: str) -> None:
    response = await http.post(route, content=b'{"model": "fake-openai", "messages": [', headers={
        "X-API-Key": tenant_key, "content-type": "application/json"})
    _assert_openai_error(response, 400, "malformed json")


@pytest.mark.parametrize("route", OPENAI_ROUTES)
async def test_openai_routes_reject_non_object_json(http: httpx.AsyncClient, tenant_key: str, route: str) -> None:
    response = await http.post(route, json=[1, 2, 3], headers={"X-API-Key": tenant_key})
    _assert_openai_error(response, 400, "json object")


@pytest.mark.parametrize("route", [*OPENAI_ROUTES, "/v1/messages"])
async def test_routes_reject_oversized_body(http: httpx.AsyncClient, tenant_key: str, route: str) -> None:
    # Just past the default MAX_BODY_BYTES (32 MiB, sized for vision payloads).
    huge = {**GOOD, "messages": [{"role": "user", "content": "x" * (32 * 1024 * 1024 + 1)}]}
    response = await http.post(route, json=huge, headers={"X-API-Key": tenant_key})
    assert response.status_code == 413


@pytest.mark.parametrize("route", OPENAI_ROUTES)
async def test_openai_routes_reject_missing_key(http: httpx.AsyncClient, route: str) -> None:
    _assert_openai_error(await http.post(route, json=GOOD), 401, "missing api key")


@pytest.mark.parametrize("route", OPENAI_ROUTES)
@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"])
async def test_openai_routes_reject_bad_key(http: httpx.AsyncClient, route: str, header: str) -> None:
    value = "gw-not-a-real-key" if header == "X-API-Key" else "Bearer gw-not-a-real-key"
    _assert_openai_error(await http.post(route, json=GOOD, headers={header: value}), 401, "invalid api key")


async def test_messages_rejects_missing_key_in_anthropic_shape(http: httpx.AsyncClient) -> None:
    _assert_anthropic_error(await http.post("/v1/messages", json=GOOD_ANTHROPIC), 401)


async def test_messages_rejects_bad_key_in_anthropic_shape(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/messages", json=GOOD_ANTHROPIC, headers={"x-api-key": "nope"})
    _assert_anthropic_error(response, 401)


@pytest.mark.parametrize(
    ("body", "status", "mentions"),
    [
        ({"model": "fake-anthropic", "max_tokens": 10}, 400, "messages"),
        ({**GOOD_ANTHROPIC, "messages": []}, 400, "messages"),
        ({**GOOD_ANTHROPIC, "max_tokens": -1}, 400, "max_tokens"),
        ({**GOOD_ANTHROPIC, "max_tokens": "ten"}, 400, "max_tokens"),
        ({**GOOD_ANTHROPIC, "model": "nope"}, 404, "nope"),
    ],
)
async def test_messages_rejects_bad_body_in_anthropic_shape(http: httpx.AsyncClient, tenant_key: str, body: dict,
                                                            status: int, mentions: str) -> None:
    response = await http.post("/v1/messages", json=body, headers={"x-api-key": tenant_key})
    _assert_anthropic_error(response, status, mentions)


async def test_messages_rejects_malformed_json_in_anthropic_shape(http: httpx.AsyncClient, tenant_key: str) -> None:
    response = await http.post("/v1/messages", content=b"{not json", headers={
        "x-api-key": tenant_key, "content-type": "application/json"})
    _assert_anthropic_error(response, 400, "malformed json")


async def test_unknown_path_is_404_in_error_shape(http: httpx.AsyncClient) -> None:
    _assert_openai_error(await http.get("/v1/nothing-here"), 404)


async def test_wrong_method_is_405_in_error_shape(http: httpx.AsyncClient) -> None:
    _assert_openai_error(await http.get("/v1/chat/completions"), 405)
