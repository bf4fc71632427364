"""`llm-gateway usage` grouped and filtered by key, user and tag (issue 15), as CSV and as the admin API's JSON,
run as real subprocesses on a SQLite file."""

import csv
import io
import json
from pathlib import Path

import pytest

from shared.db.engine import create_engine
from shared.db.usage import insert_usage
from tests.cli.test_cli import assert_one_line_error, create, run_cli
from tests.shared.db_support import usage_row


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


async def _tenant_with_usage(db: str) -> str:
    tenant_id = str(create(db)["id"])
    engine = create_engine(db)
    try:
        await insert_usage(engine, [
            usage_row("r1", tenant_id=tenant_id, key_id="key_a", end_user="alice", tags={"team": "search"},
                      cost_usd=0.25),
            usage_row("r2", tenant_id=tenant_id, key_id="key_a", end_user="bob", tags={"team": "ads"},
                      cost_usd=0.5),
            usage_row("r3", tenant_id=tenant_id, key_id="key_b", end_user="alice", cost_usd=0.125),
        ])
    finally:
        await engine.dispose()
    return tenant_id


async def test_usage_groups_by_key_as_json_adding_up_to_the_totals(db: str) -> None:
    tenant_id = await _tenant_with_usage(db)
    result = run_cli("usage", tenant_id, "--group-by", "key", "--json", database_url=db)
    data = json.loads(result.stdout)
    assert [(g["key"], g["requests"], g["cost_nanos"]) for g in data["groups"]] == [
        ("key_a", 2, 750_000_000), ("key_b", 1, 125_000_000)]
    assert data["totals"]["cost_nanos"] == 875_000_000


async def test_usage_filters_by_tag_and_prints_csv(db: str) -> None:
    tenant_id = await _tenant_with_usage(db)
    result = run_cli("usage", tenant_id, "--group-by", "user,tag:team", "--tag", "team=search", "--csv",
                     database_url=db)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["user"], r["tag:team"], r["requests"], r["cost_nanos"]) for r in rows] == [
        ("alice", "search", "1", "250000000")]


async def test_usage_prints_groups_as_a_table(db: str) -> None:
    tenant_id = await _tenant_with_usage(db)
    text = run_cli("usage", tenant_id, "--group-by", "user", "--key", "key_a", database_url=db).stdout
    groups = text.split("By user\n", 1)[1].splitlines()
    assert groups[0].split()[:2] == ["user", "requests"]
    assert [line.split()[:2] for line in groups[2:]] == [["alice", "1"], ["bob", "1"]]


def test_usage_refuses_an_unknown_dimension(db: str) -> None:
    tenant_id = str(create(db)["id"])
    assert_one_line_error(run_cli("usage", tenant_id, "--group-by", "colour", database_url=db), "group_by")
