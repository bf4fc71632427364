"""In-process API fixtures: the app built by `create_app` with its lifespan running, driven through httpx's
ASGI transport. Real Redis (database 3) and a SQLite file; point either at a closed port to test outages."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis.asyncio

from api.deps import AppState
from api.main import create_app
from api.shards import ShardHandles, open_shards
from shared.config import Settings
from shared.db.engine import create_engine, create_session_factory
from shared.db.migrate import migrate
from shared.pricing import load_price_table
from shared.redis import create_redis
from shared.routing_table import RoutingTable
from shared.shard_clients import ShardClients
from shared.tenant_cache import ShardedTenantCache
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
async def state(clean_redis: str, sqlite_url: str) -> AsyncIterator[AppState]:
    """The API's state on the cleaned Redis (one shard) and the SQLite file, without the app, for tests that
    drive the relay (api/relay.py, api/streaming.py, api/text_completion_stream.py) directly."""
    settings = Settings(_env_file=None, redis_url=clean_redis, database_url=sqlite_url,  # type: ignore[call-arg]
                        request_timeout_s=5, job_ttl_s=600, event_stream_maxlen=1000, queue_name="gw:relay-test")
    client = create_redis(settings)
    clients = ShardClients(clients=(client,), names=("test",))
    engine = create_engine(sqlite_url)
    yield AppState(
        settings=settings, shards=open_shards(settings, clients), engine=engine,
        sessions=create_session_factory(engine), routing_table=RoutingTable({}, use_defaults=True),
        tenant_cache=ShardedTenantCache(clients, ttl_s=60), prices=load_price_table(settings),
    )
    await client.aclose()
    await engine.dispose()


@pytest.fixture
def shard(state: AppState) -> ShardHandles:
    """The state's one shard: its job store, queue and client."""
    return state.shards.handles[0]


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


@asynccontextmanager
async def routed_app_client(routes: str, tmp_path: Path, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    """`app_client` on a routes file holding `routes` (written under `tmp_path`)."""
    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text(routes)
    async with app_client(routes_file=routes_file, **settings) as client:
        yield client


async def create_tenant_via_admin(http: httpx.AsyncClient, admin: dict[str, str], name: str,
                                  **limits: object) -> dict[str, str]:
    """The admin API's answer for a new tenant (its `id` and `api_key`, among others); asserts the 201."""
    response = await http.post("/api/v1/admin/tenants", json={"name": name, **limits}, headers=admin)
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body
