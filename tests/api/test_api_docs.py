"""docs/API.md against the app's live OpenAPI schema: one `### METHOD /path` section per operation, no stale
sections, and each section states the endpoint's real authentication and at least one error status.

The app is built with `create_app` and never started (no lifespan), so nothing is connected. An operation's
real authentication is found by calling it without a key: the app state is a stand-in holding only the
settings, which is all authentication reads before it refuses a request."""

import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from shared.config import Settings

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "API.md"
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
HEADING = re.compile(r"^### (GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (/\S*)\s*$")
SECTION_END = re.compile(r"^#{1,3} ")
ERROR_STATUS = re.compile(r"\b[45]\d\d\b")
PATH_PARAM = re.compile(r"\{[^}]+\}")

Operation = tuple[str, str]

# What each kind of authentication must say on the section's `**Auth:**` line.
AUTH_WORDS = {
    "admin": ("ADMIN_API_KEY", "X-API-Key", "Bearer"),
    "tenant": ("tenant key", "X-API-Key", "Bearer"),
    "none": ("none",),
}


@pytest.fixture(scope="module")
def settings() -> Iterator[Settings]:
    with pytest.MonkeyPatch.context() as patch:
        # No setting from the environment (or a .env file) may break or change the app being checked.
        for name in Settings.model_fields:
            patch.delenv(name.upper(), raising=False)
        yield Settings(_env_file=None, admin_api_key="docs-test-admin-key")  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture(scope="module")
def schema_operations(app: FastAPI) -> set[Operation]:
    paths: dict[str, dict[str, object]] = app.openapi()["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item if method.upper() in HTTP_METHODS}


@pytest.fixture(scope="module")
def doc_sections() -> dict[Operation, str]:
    return parse_sections(API_DOC.read_text())


@pytest.fixture(scope="module")
def operation_auth(app: FastAPI, settings: Settings, schema_operations: set[Operation]) -> dict[Operation, str]:
    """Each operation's real authentication, 'admin', 'tenant' or 'none', from its answer to a request
    without a key. An operation that needs no key gets past authentication and then fails on the stand-in
    state (a 500, or a failing health check), which is all this needs to know."""
    app.state.gateway = SimpleNamespace(settings=settings)
    client = TestClient(app, raise_server_exceptions=False)  # not entered: the lifespan must not run
    return {
        (method, path): classify_auth(client.request(method, PATH_PARAM.sub("x", path)))
        for method, path in schema_operations
    }


def classify_auth(response: httpx.Response) -> str:
    if response.status_code == 401 and "Missing admin key" in response.text:
        return "admin"
    if response.status_code == 401 and "Missing API key" in response.text:
        return "tenant"
    return "none"


def parse_sections(text: str) -> dict[Operation, str]:
    """Each `### METHOD /path` heading with its text, up to the next heading of level 1 to 3."""
    sections: dict[Operation, str] = {}
    current: Operation | None = None
    lines: list[str] = []
    for line in [*text.splitlines(), "### END"]:
        if SECTION_END.match(line):
            if current is not None:
                if current in sections:
                    raise AssertionError(f"docs/API.md has two sections for {current[0]} {current[1]}")
                sections[current] = "\n".join(lines)
            match = HEADING.match(line)
            current = (match.group(1), match.group(2)) if match else None
            lines = []
        elif current is not None:
            lines.append(line)
    return sections


def auth_problem(auth: str, section: str) -> str | None:
    """Why the section's `**Auth:**` line does not state `auth`, or None when it does."""
    auth_lines = [line for line in section.splitlines() if line.startswith("**Auth:**")]
    if len(auth_lines) != 1:
        return f"has {len(auth_lines)} '**Auth:**' lines, expected 1"
    line = auth_lines[0]
    missing = [word for word in AUTH_WORDS[auth] if word not in line]
    if auth != "admin" and "ADMIN_API_KEY" in line:
        missing.append(f"not ADMIN_API_KEY (the endpoint takes {auth})")
    if auth != "none" and "none" in line.lower():
        missing.append(f"not 'none' (the endpoint takes {auth})")
    return f"'{line}' should mention {missing}" if missing else None


def errors_problem(section: str) -> str | None:
    error_lines = [line for line in section.splitlines() if line.startswith("**Errors:**")]
    if any(ERROR_STATUS.search(line) for line in error_lines):
        return None
    return "has no '**Errors:**' line with a 4xx/5xx status"


def test_api_docs_cover_every_openapi_operation(
    schema_operations: set[Operation], doc_sections: dict[Operation, str]
) -> None:
    assert schema_operations, "the OpenAPI schema lists no operations"
    undocumented = sorted(schema_operations - doc_sections.keys())
    assert not undocumented, f"operations without a '### METHOD /path' section in docs/API.md: {undocumented}"


def test_api_docs_have_no_stale_operations(
    schema_operations: set[Operation], doc_sections: dict[Operation, str]
) -> None:
    stale = sorted(doc_sections.keys() - schema_operations)
    assert not stale, f"sections in docs/API.md for operations the app does not serve: {stale}"


def test_api_docs_state_each_operations_auth_and_errors(
    doc_sections: dict[Operation, str], operation_auth: dict[Operation, str]
) -> None:
    problems: list[str] = []
    for (method, path), auth in sorted(operation_auth.items()):
        section = doc_sections.get((method, path))
        if section is None:
            continue  # reported by test_api_docs_cover_every_openapi_operation
        for problem in (auth_problem(auth, section), errors_problem(section)):
            if problem:
                problems.append(f"{method} {path}: {problem}")
    assert not problems, "\n".join(problems)


def test_operation_auth_is_detected(operation_auth: dict[Operation, str]) -> None:
    """The check above is only as good as the probe; pin it on one operation of each kind."""
    assert operation_auth[("GET", "/api/v1/admin/tenants/{tenant_id}")] == "admin"
    assert operation_auth[("POST", "/v1/chat/completions")] == "tenant"
    assert operation_auth[("GET", "/api/v1/jobs/{job_id}/events")] == "tenant"
    assert operation_auth[("GET", "/health")] == "none"


def test_section_parsing_and_checks_catch_mistakes() -> None:
    text = "# API\n### GET /a\n**Auth:** none.\n**Errors:** 503.\n## Other\nnot /a\n### POST /b/{id}\nbody\n"
    sections = parse_sections(text)
    assert set(sections) == {("GET", "/a"), ("POST", "/b/{id}")}
    assert "not /a" not in sections[("GET", "/a")]
    assert auth_problem("none", sections[("GET", "/a")]) is None
    assert errors_problem(sections[("GET", "/a")]) is None
    assert auth_problem("tenant", sections[("GET", "/a")]) is not None
    assert errors_problem(sections[("POST", "/b/{id}")]) is not None
    tenant_line = "**Auth:** tenant key (`X-API-Key: K` or `Authorization: Bearer K`)."
    assert auth_problem("tenant", tenant_line) is None
    assert auth_problem("admin", tenant_line) is not None
    with pytest.raises(AssertionError, match="two sections"):
        parse_sections("### GET /a\n### GET /a\n")
