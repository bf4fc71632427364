"""Fixtures for the fake provider's tests: a real uvicorn server per test module, the official SDK clients and a
raw HTTP client pointed at it; and for the database tests: a migrated engine on each backend (real Postgres and
a SQLite file) and a session on it (a module with other needs defines its own `engine`)."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.engine import create_session_factory
from shared.fake_provider import create_app
from tests.shared.db_support import BACKENDS, migrated_engine
from tests.shared.fake_provider_support import Clients, sdk_clients, serving


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serving(create_app()) as url:
        yield url


@pytest.fixture
async def clients(base_url: str) -> AsyncIterator[Clients]:
    async with sdk_clients(base_url) as pair:
        yield pair


@pytest.fixture
async def raw(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


@pytest.fixture(params=BACKENDS)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine(request.param, tmp_path) as engine:
        yield engine


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with create_session_factory(engine)() as session:
        yield session
