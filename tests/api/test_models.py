"""`GET /v1/models` and `GET /v1/models/{id}` in-process: OpenAI's objects for OpenAI clients, Anthropic's
(and its cursor pages and error shape) for a request with `anthropic-version`; names with `/` and `:`; an
unrouted name is 404 `model_not_found`."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import create_tenant_via_admin, routed_app_client

ADMIN = {"X-API-Key": "models-admin-key"}
NAMES = ["alpha", "org/model:v1", "gamma", "delta", "epsilon"]
ROUTES = "models:\n" + "".join(f'  "{name}":\n    - {{provider: openai, model: gpt-4o}}\n' for name in NAMES)
ANTHROPIC = {"anthropic-version": "2023-06-01"}


@pytest.fixture
async def http(clean_redis: str, sqlite_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with routed_app_client(ROUTES, tmp_path, redis_url=clean_redis, database_url=sqlite_url,
                                 admin_api_key=ADMIN["X-API-Key"]) as client:
        yield client


@pytest.fixture
async def auth(http: httpx.AsyncClient) -> dict[str, str]:
    tenant = await create_tenant_via_admin(http, ADMIN, "lister")
    return {"X-API-Key": tenant["api_key"]}


@pytest.mark.parametrize("path", ["/v1/models/alpha", "/v1/models/org%2Fmodel:v1", "/v1/models/org/model:v1"])
async def test_retrieve_model_openai_shape(http: httpx.AsyncClient, auth: dict[str, str], path: str) -> None:
    response = await http.get(path, headers=auth)
    assert response.status_code == 200, response.text
    name = path.removeprefix("/v1/models/").replace("%2F", "/")
    assert response.json() == {"id": name, "object": "model", "created": 0, "owned_by": "llm-gateway"}


async def test_retrieve_model_unknown_is_404_model_not_found(http: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await http.get("/v1/models/gpt-4o", headers=auth)  # not in the routes file
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["type"] == "invalid_request_error", error
    assert "gpt-4o" in error["message"]


async def test_retrieve_model_anthropic_shape(http: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await http.get("/v1/models/org%2Fmodel:v1", headers={**auth, **ANTHROPIC})
    assert response.status_code == 200, response.text
    assert response.json() == {"type": "model", "id": "org/model:v1", "display_name": "org/model:v1",
                               "created_at": "1970-01-01T00:00:00Z", "lifecycle": "active"}


async def test_retrieve_model_unknown_anthropic_404(http: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await http.get("/v1/models/nope", headers={**auth, **ANTHROPIC})
    assert response.status_code == 404
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "not_found_error"


async def test_models_need_a_key_in_the_clients_shape(http: httpx.AsyncClient) -> None:
    openai = await http.get("/v1/models/alpha")
    anthropic = await http.get("/v1/models/alpha", headers=ANTHROPIC)
    assert openai.status_code == anthropic.status_code == 401
    assert openai.json()["error"]["type"] == "authentication_error" and "type" not in openai.json()
    assert anthropic.json()["error"]["type"] == "authentication_error" and anthropic.json()["type"] == "error"


async def test_list_models_openai_shape_unchanged(http: httpx.AsyncClient, auth: dict[str, str]) -> None:
    body = (await http.get("/v1/models", headers=auth)).json()
    assert body["object"] == "list" and [model["id"] for model in body["data"]] == NAMES


@pytest.mark.parametrize(("query", "ids", "has_more"), [
    ("", NAMES, False),
    ("?limit=2", NAMES[:2], True),
    ("?limit=2&after_id=org/model:v1", NAMES[2:4], True),
    ("?limit=2&after_id=delta", NAMES[4:], False),
    ("?limit=2&before_id=delta", NAMES[1:3], True),
    ("?limit=3&before_id=gamma", NAMES[:2], False),
])
async def test_list_models_anthropic_pages(http: httpx.AsyncClient, auth: dict[str, str], query: str,
                                           ids: list[str], has_more: bool) -> None:
    body = (await http.get(f"/v1/models{query}", headers={**auth, **ANTHROPIC})).json()
    assert [model["id"] for model in body["data"]] == ids
    assert body["has_more"] is has_more and body["first_id"] == ids[0] and body["last_id"] == ids[-1]


@pytest.mark.parametrize("query", ["?limit=0", "?limit=1001", "?limit=x", "?limit=" + "9" * 5000, "?after_id=nope"])
async def test_list_models_anthropic_bad_page_is_400(http: httpx.AsyncClient, auth: dict[str, str],
                                                     query: str) -> None:
    response = await http.get(f"/v1/models{query}", headers={**auth, **ANTHROPIC})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
