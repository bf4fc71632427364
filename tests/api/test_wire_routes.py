"""api.wire_routes: an error is answered in the wire format its route declares; a request that matched no
route takes the format of the wire route its path extends, else OpenAI's."""

import pytest
from fastapi.testclient import TestClient

from api.main import create_app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app())  # no lifespan: these answers need neither Redis nor the database


@pytest.mark.parametrize(("method", "path", "anthropic_shape"), [
    ("GET", "/v1/messages", True),  # method-only match: the route is known
    ("POST", "/v1/messages/batches", True),  # an Anthropic endpoint the gateway lacks
    ("GET", "/v1/chat/completions", False),
    ("POST", "/v1/nope", False),
    ("GET", "/api/v1/jobs/job_1/nope", False),
])
def test_error_shape_follows_the_route_format(client: TestClient, method: str, path: str,
                                              anthropic_shape: bool) -> None:
    body = client.request(method, path).json()
    assert (body.get("type") == "error") is anthropic_shape
    assert ("message" in body["error"]) and ("code" in body["error"])
