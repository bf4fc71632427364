"""A backing service being down is a 503 in the route's error shape, never a 500 and never a hang."""

from tests.api.conftest import CLOSED_POSTGRES_URL, CLOSED_REDIS_URL, app_client, make_tenant_key

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


async def test_completion_503_when_redis_down(sqlite_url: str) -> None:
    key = await make_tenant_key(sqlite_url)
    async with app_client(redis_url=CLOSED_REDIS_URL, database_url=sqlite_url, openai_api_key="sk") as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers={"X-API-Key": key})
        messages = await http.post("/v1/messages", json={**CHAT, "max_tokens": 5}, headers={"X-API-Key": key})
    assert response.status_code == 503
    assert set(response.json()["error"]) >= {"message", "type", "code"}
    assert messages.status_code == 503 and messages.json()["type"] == "error"


async def test_completion_503_when_database_down(clean_redis: str) -> None:
    async with app_client(redis_url=clean_redis, database_url=CLOSED_POSTGRES_URL, openai_api_key="sk") as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers={"X-API-Key": "gw-anything"})
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "service_unavailable"


async def test_sync_completion_times_out_with_504_when_no_worker_runs(clean_redis: str, sqlite_url: str) -> None:
    key = await make_tenant_key(sqlite_url)
    async with app_client(redis_url=clean_redis, database_url=sqlite_url, openai_api_key="sk") as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers={"X-API-Key": key})
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"
