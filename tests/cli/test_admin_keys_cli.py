"""`llm-gateway admin-keys ...` as a real subprocess on a SQLite file: a key created is printed once, works
for the admin API's lookup with its role, is listed without its secret, is deleted (and then refused), each
change audited with the actor `cli`; bad input is a one-line error."""

import asyncio
import json
from pathlib import Path

import pytest

from shared.admin_keys import authenticate_admin
from shared.audit import AuditFilter, list_audit
from shared.db.engine import create_engine, create_session_factory
from tests.cli.test_cli import assert_one_line_error, run_cli


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


async def _lookup(db: str, plain: str) -> tuple[str | None, list[tuple[str, str]]]:
    engine = create_engine(db)
    try:
        async with create_session_factory(engine)() as session:
            row = await authenticate_admin(session, plain)
            page = await list_audit(session, AuditFilter(actor="cli"), limit=10, before_id=None)
    finally:
        await engine.dispose()
    return (row.role if row else None), [(e.action, e.target_id) for e in reversed(page.entries)]


def test_admin_keys_create_list_delete(db: str) -> None:
    created = run_cli("admin-keys", "create", "alice", "--role", "admin", "--json", database_url=db)
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["role"] == "admin" and key["api_key"].startswith("gwa-")
    text = run_cli("admin-keys", "create", "bob", database_url=db)
    assert text.returncode == 0 and "shown only this once" in text.stdout and "viewer" in text.stdout
    listed = run_cli("admin-keys", "list", "--json", database_url=db)
    names = [item["name"] for item in json.loads(listed.stdout)["data"]]
    assert names == ["alice", "bob"] and key["api_key"] not in listed.stdout
    assert asyncio.run(_lookup(db, key["api_key"]))[0] == "admin"
    deleted = run_cli("admin-keys", "delete", key["id"], database_url=db)
    assert deleted.returncode == 0, deleted.stderr
    role, audit = asyncio.run(_lookup(db, key["api_key"]))
    assert role is None
    assert [action for action, _ in audit] == ["admin_key.created", "admin_key.created", "admin_key.deleted"]
    assert audit[2][1] == key["id"]
    assert_one_line_error(run_cli("admin-keys", "delete", key["id"], database_url=db), "not found")
    assert_one_line_error(run_cli("admin-keys", "create", "bootstrap", database_url=db), "bootstrap")


async def _tenant_audit(db: str) -> list[tuple[str, str, object, object]]:
    engine = create_engine(db)
    try:
        async with create_session_factory(engine)() as session:
            page = await list_audit(session, AuditFilter(actor="cli", target_type="tenant"), limit=20, before_id=None)
    finally:
        await engine.dispose()
    return [(e.action, e.target_id, e.before, e.after) for e in reversed(page.entries)]


def test_tenant_commands_are_audited_as_cli(db: str) -> None:
    created = run_cli("tenants", "create", "acme", "--json", database_url=db)
    assert created.returncode == 0, created.stderr
    tenant = json.loads(created.stdout)
    for args in (("update", tenant["id"], "--tpm", "500"), ("disable", tenant["id"]), ("enable", tenant["id"]),
                 ("rotate-key", tenant["id"], "--json")):
        result = run_cli("tenants", *args, database_url=db)
        assert result.returncode == 0, result.stderr
    new_key = json.loads(result.stdout)["api_key"]
    assert run_cli("tenants", "disable", "ten_missing", database_url=db).returncode == 2
    audit = asyncio.run(_tenant_audit(db))
    assert [(action, target) for action, target, _, _ in audit] == [
        (action, tenant["id"]) for action in
        ("tenant.created", "tenant.updated", "tenant.disabled", "tenant.enabled", "tenant.key_rotated")]
    _, _, before, after = audit[1]
    assert json.loads(str(before))["tpm_limit"] is None and json.loads(str(after))["tpm_limit"] == 500
    assert json.loads(str(audit[4][3])) == {"key_prefix": new_key[:12]}
    assert all(tenant["api_key"] not in str(row) and new_key not in str(row) for row in audit)


async def _key_audit(db: str) -> list[tuple[str, str, object, object]]:
    engine = create_engine(db)
    try:
        async with create_session_factory(engine)() as session:
            page = await list_audit(session, AuditFilter(actor="cli", target_type="api_key"), limit=20,
                                    before_id=None)
    finally:
        await engine.dispose()
    return [(e.action, e.target_id, e.before, e.after) for e in reversed(page.entries)]


def test_key_commands_are_audited_as_cli(db: str) -> None:
    tenant = json.loads(run_cli("tenants", "create", "acme", "--json", database_url=db).stdout)
    created = run_cli("keys", "create", tenant["id"], "ci", "--rate-limit", "5", "--json", database_url=db)
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    for args in (("update", tenant["id"], key["id"], "--rate-limit", "none"), ("revoke", tenant["id"], key["id"])):
        result = run_cli("keys", *args, database_url=db)
        assert result.returncode == 0, result.stderr
    audit = asyncio.run(_key_audit(db))
    assert [(action, target) for action, target, _, _ in audit] == [
        ("key.created", key["id"]), ("key.updated", key["id"]), ("key.revoked", key["id"])]
    _, _, before, after = audit[1]
    assert json.loads(str(before))["rate_limit"] == 5 and json.loads(str(after))["rate_limit"] is None
    assert all(key["api_key"] not in str(row) for row in audit)
