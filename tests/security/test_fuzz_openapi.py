"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis, driven by Hypothesis)
against a real `llm-gateway serve` process with a worker and the fake provider behind it.

Every operation gets generated requests, valid and invalid, with a tenant key (the admin key on the admin
API), and every answer must: not be a 5xx, carry a status the schema documents, carry a content type the
schema documents, and match the documented body schema (errors included). Completion bodies name a routed
model, so generated requests reach the provider and the streaming path instead of stopping at 404.

A second pass aims at what schema-driven generation never produces: each generated valid request gets one
hostile value put in one place (a value anywhere in its JSON body, or a new field; a query parameter; a path
parameter; a cache, priority or idempotency header): integers of 5,000 digits or just past int64, `1e400`,
`NaN`, `Infinity`, lone UTF-16 surrogates (a `\\ud800` escape), non-ASCII digits (Arabic-Indic ones, `²`),
control characters and NUL. Every answer must be below 500.

Bounded: `MAX_EXAMPLES` per operation keeps each pass well under a minute. Examples are derandomized, so a
run is repeatable; FUZZ_EXAMPLES=300 (by hand, about two minutes a pass) ran clean after the fixes. Failures
found are fixed in the code and pinned by plain regression tests in test_fuzz_regressions.py and
test_hostile_input.py."""

import json
import os
from typing import Any
from urllib.parse import quote, urlencode

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
SCHEMA = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
OPERATIONS = sorted((method.upper(), path) for path, item in SCHEMA["paths"].items() for method in item)
# Raw JSON, put in place of one value of a generated body (or as a new field).
HOSTILE_JSON = ("1" + "0" * 5000, "-" + "9" * 5000, "9223372036854775808", "-9223372036854775809", "1e400",
                "-1e400", "NaN", "Infinity", "-Infinity", '"x\\ud800y"', '"\\udfff"', '"\\u0661\\u0662\\u0663"',
                '"\\u00b2"', '"\\u0000"', "-1", "0", "2147483648", "1.7976931348623157e308", "[]", "{}", "null")
# Text, for a query parameter, a path parameter (percent-encoded) or a header (as UTF-8 bytes).
HOSTILE_TEXT = ("\u0661\u0662\u0663", "\u00b2", "9" * 5000, "-1", "NaN", "1e400", "-9223372036854775809", "0x10",
                "\u00ff\u00fe", "", "x\ud800y", "\x00", "\x01\x7f", "job_\n", "../..", "%", "=" * 300)
HOSTILE_HEADERS = ("x-cache-ttl", "x-priority", "idempotency-key", "cache-control")
# Control characters cannot be sent in a header at all (the client refuses them).
HEADER_TEXT = tuple(text for text in HOSTILE_TEXT if all(" " <= char != "\x7f" for char in text))
SENTINEL = "__hostile_value__"


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


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_openapi_operation_survives_hostile_values(method: str, path: str, api_schema: Any,
                                                  secure_gateway: Gateway, fuzz_tenant_key: str,
                                                  real_ids: dict[str, str]) -> None:
    operation = api_schema[path][method]
    auth = {"X-API-Key": ADMIN_KEY if path.startswith("/api/v1/admin") else fuzz_tenant_key}
    names = {place: [p["name"] for p in SCHEMA["paths"][path][method.lower()].get("parameters", [])
                     if p["in"] == place] for place in ("path", "query")}

    @given(case=operation.as_strategy(GenerationMode.POSITIVE), data=st.data())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: Any, data: st.DataObject) -> None:
        _aim(case, real_ids)
        places = ["header"] + [place for place in ("path", "query") if names[place]]
        places += ["body"] if isinstance(case.body, dict) else []
        place = data.draw(st.sampled_from(places), label="place")
        url, params = _url(path, case, names["path"]), dict(case.query or {})
        headers: dict[str, str | bytes] = {**{k: str(v) for k, v in (case.headers or {}).items()}, **auth}
        content = json.dumps(case.body).encode() if isinstance(case.body, dict) else None
        if place == "body":
            content = _hostile_body(case.body, data)
            headers["content-type"] = "application/json"
        elif place == "header":
            headers[data.draw(st.sampled_from(HOSTILE_HEADERS))] = _bytes(data.draw(st.sampled_from(HEADER_TEXT)))
        elif place == "query":
            params[data.draw(st.sampled_from(names["query"]))] = data.draw(st.sampled_from(HOSTILE_TEXT))
        else:
            name = data.draw(st.sampled_from(names["path"]))
            url = _url(path, case, names["path"], {name: data.draw(st.sampled_from(HOSTILE_TEXT))})
        query = urlencode([(k, _bytes(str(v))) for k, value in params.items()
                           for v in (value if isinstance(value, list) else [value])])
        response = httpx.request(method, f"{secure_gateway.base_url}{url}?{query}", headers=headers, content=content,
                                 timeout=30)
        assert response.status_code < 500, (place, url, query[:300], (content or b"")[:300], response.text[:500])

    fuzz()


def _hostile_body(body: dict[str, Any], data: st.DataObject) -> bytes:
    """The body with one value (or a new field) replaced by raw hostile JSON."""
    slots: list[tuple[Any, Any]] = [(body, "hostile_field")]
    stack: list[Any] = [body]
    while stack:
        node = stack.pop()
        for key, child in (node.items() if isinstance(node, dict) else enumerate(node)):
            slots.append((node, key))
            if isinstance(child, dict | list):
                stack.append(child)
    parent, key = data.draw(st.sampled_from(slots), label="slot")
    parent[key] = SENTINEL
    raw = data.draw(st.sampled_from(HOSTILE_JSON), label="value")
    return json.dumps(body).replace(json.dumps(SENTINEL), raw, 1).encode("utf-8")


def _url(path: str, case: Any, names: list[str], override: dict[str, str] | None = None) -> str:
    values = {name: str((case.path_parameters or {}).get(name, "x")) for name in names}
    values.update(override or {})
    return path.format(**{name: quote(_bytes(value), safe="") for name, value in values.items()})


def _bytes(value: str | bytes) -> bytes:
    """UTF-8, lone surrogates included (as a client that cut an emoji in half would send them)."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def _aim(case: Any, real_ids: dict[str, str]) -> None:
    """Aim generated requests past the first lookup: completion bodies name a routed model, and a path id
    of even length is swapped for a real one, so the found-branch of each operation is fuzzed too."""
    for name, value in (case.path_parameters or {}).items():
        if name in real_ids and len(str(value)) % 2 == 0:
            case.path_parameters[name] = real_ids[name]
    body = case.body
    if isinstance(body, dict) and "model" in body and case.method == "POST":
        body["model"] = ROUTED_MODEL.get(case.path, "fake-openai")
