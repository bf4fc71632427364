"""Fixtures for the fake provider's tests: a real uvicorn server per test module, the official SDK clients and a
raw HTTP client pointed at it."""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from shared.fake_provider import create_app
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
