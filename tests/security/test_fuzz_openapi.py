"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis, driven by Hypothesis)
against a real `llm-gateway serve` process with a worker and the fake provider behind it.

Every operation gets generated requests, valid and invalid, with a tenant key (the admin key on the admin
API), and every answer must: not be a 5xx, carry a status the schema documents, carry a content type the
schema documents, and match the documented body schema (errors included). Completion bodies name a routed
model, so generated requests reach the provider and the streaming path instead of stopping at 404.

Bounded: `MAX_EXAMPLES` per operation keeps the file well under a minute. Examples are derandomized, so a
run is repeatable; FUZZ_EXAMPLES=300 (by hand, about two minutes) ran clean after the fixes. Failures it
found are fixed in the code and pinned by plain regression tests in test_fuzz_regressions.py."""

import os
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from shared.config import Settings
from tests.e2e.conftest import Gateway
from tests.security.conftest import ADMIN_KEY, create_tenant

# Per operation and per run; FUZZ_EXAMPLES=300 makes a deeper run by hand (about two minutes).
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
ROUTED_MODEL = {"/v1/messages": "fake-anthropic"}
# Collected from the app's schema without starting it; the test fuzzes the schema the live process serves.
OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in create_app(Settings(_env_file=None)).openapi()["paths"].items()  # type: ignore[call-arg]
    for method in item
)


@pytest.fixture(scope="module")
def fuzz_tenant_key(secure_gateway: Gateway) -> str:
    # A limit high enough that fuzzing is not just a series of 429s.
    _, key = create_tenant(secure_gateway.base_url, rate_limit=1_000_000)
    return key


@pytest.fixture(scope="module")
def real_ids(secure_gateway: Gateway, fuzz_tenant_key: str) -> dict[str, str]:
    """A job of the fuzzing tenant and a sacrificial tenant, so path parameters sometimes name real things
    (the admin operations may disable it or rotate its key; never the fuzzing tenant's)."""
    tenant_id, _ = create_tenant(secure_gateway.base_url)
    job = httpx.post(f"{secure_gateway.base_url}/api/v1/jobs", headers={"X-API-Key": fuzz_tenant_key}, timeout=10,
                     json={"model": "fake-openai", "messages": [{"role": "user", "content": "fuzz"}]})
    assert job.status_code == 202, job.text
    return {"job_id": job.json()["id"], "tenant_id": tenant_id}


@pytest.fixture(scope="module")
def api_schema(secure_gateway: Gateway) -> Any:
    served = httpx.get(f"{secure_gateway.base_url}/openapi.json", timeout=10).json()
    return schemathesis.openapi.from_dict(served)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_openapi_operation_answers_within_its_schema(method: str, path: str, api_schema: Any,
                                                     secure_gateway: Gateway, fuzz_tenant_key: str,
                                                     real_ids: dict[str, str]) -> None:
    operation = api_schema[path][method]
    headers = {"X-API-Key": ADMIN_KEY if path.startswith("/api/v1/admin") else fuzz_tenant_key}
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=cases)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        _aim(case, real_ids)
        case.call_and_validate(base_url=secure_gateway.base_url, headers=headers, checks=CHECKS, timeout=30)

    fuzz()


def _aim(case: Any, real_ids: dict[str, str]) -> None:
    """Aim generated requests past the first lookup: completion bodies name a routed model, and a path id
    of even length is swapped for a real one, so the found-branch of each operation is fuzzed too."""
    for name, value in (case.path_parameters or {}).items():
        if name in real_ids and len(str(value)) % 2 == 0:
            case.path_parameters[name] = real_ids[name]
    body = case.body
    if isinstance(body, dict) and "model" in body and case.method == "POST":
        body["model"] = ROUTED_MODEL.get(case.path, "fake-openai")
