"""/health reports Redis, the database and live workers."""

import httpx


async def test_health_is_ok_with_redis_database_and_worker(http: httpx.AsyncClient) -> None:
    response = await http.get("/health")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["redis"]["ok"] and checks["database"]["ok"] and checks["workers"]["ok"]
    assert checks["workers"]["count"] >= 1
