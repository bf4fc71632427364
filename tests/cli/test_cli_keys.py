"""`llm-gateway keys create|list|update|revoke` as real subprocesses on a SQLite file (issue 15): the key is
printed once, scopes are set and cleared, a revoked key no longer authenticates, and bad input is a one-line
error."""

import asyncio
import json
from pathlib import Path

import pytest

from shared.api_keys import authenticate_key
from shared.db.engine import create_engine, create_session_factory
from tests.cli.test_cli import assert_one_line_error, create, run_cli


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


def keys(db: str, *args: str) -> dict[str, object]:
    result = run_cli("keys", *args, "--json", database_url=db)
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


async def scopes_of(db: str, plain: str) -> tuple[str, list[str] | None] | None:
    engine = create_engine(db)
    try:
        async with create_session_factory(engine)() as session:
            found = await authenticate_key(session, plain)
    finally:
        await engine.dispose()
    return None if found is None else (found[1].name, found[1].allowed_models)


def test_keys_create_prints_the_key_once_with_its_scopes(db: str) -> None:
    tenant = create(db)
    result = run_cli("keys", "create", str(tenant["id"]), "ci", "--models", "gpt-4o*,claude-*", "--endpoints",
                     "jobs", "--budget-usd", "2.5", "--expires-at", "2030-01-01T00:00:00Z", database_url=db)
    assert result.returncode == 0, result.stderr
    assert "shown only this once" in result.stdout and "gw-" in result.stdout
    assert "gpt-4o*,claude-*" in result.stdout
    listed = keys(db, "list", str(tenant["id"]))
    data = listed["data"]
    assert isinstance(data, list) and [item["name"] for item in data] == ["default", "ci"]
    assert all("api_key" not in item for item in data)
    assert data[1]["allowed_endpoints"] == ["jobs"] and data[1]["budget_usd"] == 2.5
    assert data[1]["expires_at"].startswith("2030-01-01")


def test_keys_update_sets_and_clears_scopes(db: str) -> None:
    tenant = create(db)
    key = keys(db, "create", str(tenant["id"]), "ci", "--models", "a")
    updated = keys(db, "update", str(tenant["id"]), str(key["id"]), "--models", "none", "--rate-limit", "5")
    assert updated["allowed_models"] is None and updated["rate_limit"] == 5
    assert asyncio.run(scopes_of(db, str(key["api_key"]))) == ("ci", None)


def test_keys_revoke_stops_the_key(db: str) -> None:
    tenant = create(db)
    key = keys(db, "create", str(tenant["id"]), "ci")
    revoked = keys(db, "revoke", str(tenant["id"]), str(key["id"]))
    assert revoked["revoked_at"]
    assert asyncio.run(scopes_of(db, str(key["api_key"]))) is None
    assert asyncio.run(scopes_of(db, str(tenant["api_key"]))) == ("default", None)
    again = run_cli("keys", "revoke", str(tenant["id"]), str(key["id"]), database_url=db)
    assert_one_line_error(again, "revoked")


def test_keys_manage_scope_is_set_shown_and_cleared(db: str) -> None:
    tenant = create(db)
    plain = keys(db, "create", str(tenant["id"]), "ci")
    managing = keys(db, "create", str(tenant["id"]), "ops", "--manage", "yes")
    assert plain["manage"] is False and managing["manage"] is True
    listed = run_cli("keys", "list", str(tenant["id"]), database_url=db)
    assert listed.returncode == 0 and "manage" in listed.stdout.splitlines()[0]
    cleared = keys(db, "update", str(tenant["id"]), str(managing["id"]), "--manage", "no")
    assert cleared["manage"] is False


@pytest.mark.parametrize(("args", "words"), [
    (("--manage", "maybe"), ("--manage", "yes or no")),
    (("--endpoints", "images"), ("unknown endpoint", "images")),
    (("--rate-limit", "many"), ("--rate-limit", "integer")),
    (("--expires-at", "tomorrow"), ("expires_at",)),
])
def test_keys_create_refuses_bad_scopes_in_one_line(db: str, args: tuple[str, ...], words: tuple[str, ...]) -> None:
    tenant = create(db)
    assert_one_line_error(run_cli("keys", "create", str(tenant["id"]), "ci", *args, database_url=db), *words)


def test_keys_update_without_options_names_them(db: str) -> None:
    tenant = create(db)
    key = keys(db, "create", str(tenant["id"]), "ci")
    assert_one_line_error(run_cli("keys", "update", str(tenant["id"]), str(key["id"]), database_url=db),
                          "nothing to update", "--models")


def test_tenants_allowed_models_option(db: str) -> None:
    tenant = create(db, "acme", "--allowed-models", "gpt-*")
    assert tenant["allowed_models"] == ["gpt-*"]
    result = run_cli("tenants", "update", str(tenant["id"]), "--allowed-models", "none", "--json", database_url=db)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["allowed_models"] is None
