"""In-process API fixtures: the app built by `create_app` with its lifespan running, driven through httpx's
ASGI transport. Real Redis (database 3) and a SQLite file; point either at a closed port to test outages."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis.asyncio

from api.main import create_app
from shared.config import Settings
from shared.db.engine import create_engine, create_session_factory
from shared.db.migrate import migrate
from shared.tenants import create_tenant

REDIS_URL = "redis://127.0.0.1:6379/3"
CLOSED_REDIS_URL = "redis://127.0.0.1:1/0"
CLOSED_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/none"


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'api.db'}"
    await migrate(url)
    return url


@pytest.fixture
async def clean_redis() -> AsyncIterator[str]:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    await client.flushdb()
    await client.aclose()
    yield REDIS_URL


@pytest.fixture
async def raw(clean_redis: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client on the cleaned test database, to look at (or seed) what the app wrote."""
    client = redis.asyncio.Redis.from_url(clean_redis)
    yield client
    await client.aclose()


async def make_tenant_key(database_url: str) -> str:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            _, key = await create_tenant(session, "api-tests")
    finally:
        await engine.dispose()
    return key


AppClient = Callable[..., "asynccontextmanager[httpx.AsyncClient]"]


@asynccontextmanager
async def app_client(**settings: object) -> AsyncIterator[httpx.AsyncClient]:
    settings.setdefault("api_metrics_port", 0)  # no metrics listener unless a test asks for one on its port
    settings.setdefault("request_timeout_s", 3)
    app = create_app(Settings(_env_file=None, **settings))  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client
