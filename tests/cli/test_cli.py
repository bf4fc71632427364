"""`llm-gateway tenants ...` and `llm-gateway usage ...` run as real subprocesses: output, exit codes and
one-line errors on a SQLite file, and on a fresh PostgreSQL database with Redis, where a change must drop
the tenant's cached snapshot."""

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio

from shared.budget_alerts import create_budget_alert
from shared.db.engine import create_engine, create_session_factory
from shared.db.migrate import migrate
from shared.db.usage import insert_usage, usage_report
from shared.keys import auth_cache_key, budget_alerts_key
from shared.limits import PERIODS, seed_budget, spend_keys
from shared.tenant_cache import TenantCache, TenantSnapshot
from shared.tenants import authenticate, hash_key
from tests.shared.db_support import usage_row

REPO = Path(__file__).resolve().parents[2]
ADMIN_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
CLI_DATABASE = "llm_gateway_cli_test"
CLI_REDIS_URL = "redis://127.0.0.1:6379/4"
CLOSED_REDIS_URL = "redis://127.0.0.1:1/0"


def run_cli(*args: str, database_url: str, redis_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url}
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("llm-gateway: ")
    for word in words:
        assert word in result.stderr


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


def create(db: str, name: str = "acme", *options: str) -> dict[str, object]:
    result = run_cli("tenants", "create", name, *options, "--json", database_url=db)
    assert result.returncode == 0, result.stderr
    tenant: dict[str, object] = json.loads(result.stdout)
    return tenant


def test_tenants_create_prints_the_tenant_and_its_key_once(db: str) -> None:
    result = run_cli("tenants", "create", "acme", "--rate-limit", "30", "--tpm", "5000", "--max-concurrent", "3",
                     "--budget-usd", "12.5", "--budget-period", "weekly", database_url=db)
    assert result.returncode == 0 and result.stderr == ""
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    assert lines["name"].strip() == "acme" and lines["tpm_limit"].strip() == "5000"
    assert lines["budget_usd"].strip() == "12.5" and lines["budget_period"].strip() == "weekly"
    assert lines["api_key"].strip().startswith("gw-")
    assert "shown only this once" in result.stdout
    listed = run_cli("tenants", "list", database_url=db)
    assert "acme" in listed.stdout and "gw-" not in listed.stdout


def test_tenants_list_prints_a_table_or_the_admin_api_json(db: str) -> None:
    assert run_cli("tenants", "list", database_url=db).stdout.strip() == "no tenants"
    first = create(db, "acme", "--tpm", "5000")
    create(db, "beta")
    table = run_cli("tenants", "list", database_url=db).stdout.splitlines()
    assert table[0].split() == ["id", "name", "disabled", "rate_limit", "tpm_limit", "max_concurrent",
                                "budget_usd", "budget_period", "created_at"]
    assert table[2].split()[:5] == [first["id"], "acme", "no", "-", "5000"]
    assert len(table) == 4
    data = json.loads(run_cli("tenants", "list", "--json", database_url=db).stdout)
    assert data["object"] == "list" and [item["name"] for item in data["data"]] == ["acme", "beta"]
    assert data["data"][0] == {key: value for key, value in first.items() if key != "api_key"}


def test_tenants_get_prints_one_tenant(db: str) -> None:
    tenant = create(db, "acme", "--budget-usd", "3")
    text = run_cli("tenants", "get", str(tenant["id"]), database_url=db)
    assert text.returncode == 0 and f"id:               {tenant['id']}" in text.stdout
    assert json.loads(run_cli("tenants", "get", str(tenant["id"]), "--json", database_url=db).stdout)[
        "budget_usd"] == 3.0


@pytest.mark.parametrize("action", ["get", "disable", "enable", "rotate-key"])
def test_tenants_unknown_tenant_exits_2_with_one_line(db: str, action: str) -> None:
    assert_one_line_error(run_cli("tenants", action, "ten_missing", database_url=db), "ten_missing", "not found")


def test_tenants_create_duplicate_name_exits_2(db: str) -> None:
    create(db, "acme")
    assert_one_line_error(run_cli("tenants", "create", "acme", database_url=db), "already exists")


@pytest.mark.parametrize(
    ("options", "word"),
    [
        (["--tpm", "lots"], "--tpm"),
        (["--rate-limit", "-1"], "--rate-limit"),
        (["--max-concurrent", "0"], "--max-concurrent"),
        (["--budget-usd", "-5"], "--budget-usd"),
        (["--budget-usd", "nan"], "--budget-usd"),
        (["--budget-period", "yearly"], "--budget-period"),
    ],
)
def test_tenants_create_bad_value_exits_2(db: str, options: list[str], word: str) -> None:
    assert_one_line_error(run_cli("tenants", "create", "acme", *options, database_url=db), word)


def test_tenants_create_bad_input_creates_nothing(db: str) -> None:
    assert_one_line_error(run_cli("tenants", "create", "no spaces please", database_url=db), "NAME")
    assert_one_line_error(run_cli("tenants", "create", "acme", "--tpm", "-1", database_url=db), "--tpm")
    assert run_cli("tenants", "list", database_url=db).stdout.strip() == "no tenants"


def test_tenants_update_changes_given_limits_and_none_clears(db: str) -> None:
    tenant = create(db, "acme", "--tpm", "5000", "--budget-usd", "10")
    result = run_cli("tenants", "update", str(tenant["id"]), "--budget-usd", "none", "--max-concurrent", "2",
                     "--json", database_url=db)
    assert result.returncode == 0, result.stderr
    updated = json.loads(result.stdout)
    assert (updated["budget_usd"], updated["max_concurrent"], updated["tpm_limit"]) == (None, 2, 5000)


def test_tenants_update_without_options_exits_2(db: str) -> None:
    tenant = create(db)
    assert_one_line_error(run_cli("tenants", "update", str(tenant["id"]), database_url=db), "nothing to update")


def test_tenants_update_unknown_tenant_exits_2(db: str) -> None:
    create(db)
    assert_one_line_error(run_cli("tenants", "update", "ten_missing", "--tpm", "9", database_url=db), "not found")


def test_tenants_disable_and_enable_round_trip(db: str) -> None:
    tenant_id = str(create(db)["id"])
    disabled = json.loads(run_cli("tenants", "disable", tenant_id, "--json", database_url=db).stdout)
    assert disabled["disabled"] is True
    enabled = run_cli("tenants", "enable", tenant_id, database_url=db)
    assert enabled.returncode == 0 and "disabled:         no" in enabled.stdout


async def test_tenants_rotate_key_revokes_the_old_key(db: str) -> None:
    tenant = create(db)
    result = run_cli("tenants", "rotate-key", str(tenant["id"]), "--json", database_url=db)
    assert result.returncode == 0, result.stderr
    new_key = json.loads(result.stdout)["api_key"]
    engine = create_engine(db)
    try:
        async with create_session_factory(engine)() as session:
            assert await authenticate(session, str(tenant["api_key"])) is None
            found = await authenticate(session, new_key)
    finally:
        await engine.dispose()
    assert found is not None and found.id == tenant["id"]


async def test_usage_prints_the_admin_report_as_tables_and_json(db: str) -> None:
    tenant_id = str(create(db)["id"])
    engine = create_engine(db)
    try:
        await insert_usage(engine, [
            usage_row("r1", tenant_id=tenant_id, cost_usd=0.00725, cache_hit=True, saved_cost_usd=0.002),
            usage_row("r2", tenant_id=tenant_id, public_model="claude-haiku-4-5", provider="anthropic",
                      cost_usd=1e-7, status="failed"),
            usage_row("r3", tenant_id="ten_other", cost_usd=5.0),
        ])
        async with create_session_factory(engine)() as session:
            expected = (await usage_report(session, tenant_id, 7)).model_dump(mode="json")
    finally:
        await engine.dispose()
    data = json.loads(run_cli("usage", tenant_id, "--days", "7", "--json", database_url=db).stdout)
    assert data == expected
    text = run_cli("usage", tenant_id, "--days", "7", database_url=db).stdout
    totals = text.split("Totals\n", 1)[1].splitlines()
    assert totals[0].split() == ["requests", "failed", "prompt_tokens", "completion_tokens", "cost_usd",
                                 "cache_hits", "saved_cost_usd"]
    assert totals[2].split() == ["2", "1", "20", "10", "0.0072501", "1", "0.002"]
    by_model = text.split("By model\n", 1)[1].splitlines()
    assert by_model[2].split()[:2] == ["claude-haiku-4-5", "1"] and by_model[3].split()[:2] == ["gpt-4o", "1"]
    assert "By day" in text and "By provider\nprovider" in text
    by_endpoint = text.split("By endpoint\n", 1)[1].splitlines()
    assert by_endpoint[0].split()[:2] == ["endpoint", "requests"] and by_endpoint[2].split()[:2] == ["chat", "2"]


def test_usage_without_records_says_so(db: str) -> None:
    text = run_cli("usage", str(create(db)["id"]), database_url=db).stdout
    assert "over the last 30 days" in text and text.count("(no usage)") == 4


@pytest.mark.parametrize(("args", "word"), [(["ten_missing"], "not found"), (["TENANT", "--days", "0"], "--days")])
def test_usage_bad_input_exits_2(db: str, args: list[str], word: str) -> None:
    tenant_id = str(create(db)["id"])
    args = [tenant_id if arg == "TENANT" else arg for arg in args]
    assert_one_line_error(run_cli("usage", *args, database_url=db), word)


def test_tenants_unreachable_database_exits_2() -> None:
    result = run_cli("tenants", "list", database_url="postgresql+asyncpg://postgres@127.0.0.1:1/none")
    assert_one_line_error(result, "database unavailable")


def test_tenants_update_with_redis_down_saves_and_warns(db: str) -> None:
    tenant_id = str(create(db)["id"])
    result = run_cli("tenants", "update", tenant_id, "--tpm", "7", database_url=db, redis_url=CLOSED_REDIS_URL)
    assert result.returncode == 1 and "tpm_limit:        7" in result.stdout
    assert "warning" in result.stderr and "AUTH_CACHE_TTL_S" in result.stderr and "Traceback" not in result.stderr
    assert json.loads(run_cli("tenants", "get", tenant_id, "--json", database_url=db).stdout)["tpm_limit"] == 7


# --- on PostgreSQL, with Redis ----------------------------------------------------------------------


async def _drop_database(admin: asyncpg.Connection) -> None:
    await admin.execute(f'DROP DATABASE IF EXISTS "{CLI_DATABASE}" WITH (FORCE)')


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    admin = await asyncpg.connect(ADMIN_POSTGRES)
    try:
        await _drop_database(admin)
        await admin.execute(f'CREATE DATABASE "{CLI_DATABASE}"')
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{CLI_DATABASE}"
        await migrate(url)
        yield url
        await _drop_database(admin)
    finally:
        await admin.close()


async def test_tenants_changes_on_postgres_drop_the_cached_snapshot(postgres_url: str) -> None:
    client = redis.asyncio.Redis.from_url(CLI_REDIS_URL)
    await client.flushdb()
    created = await asyncio.to_thread(run_cli, "tenants", "create", "acme", "--json", database_url=postgres_url,
                                      redis_url=CLI_REDIS_URL)
    tenant = json.loads(created.stdout)
    cached_key = auth_cache_key(hash_key(tenant["api_key"]))
    cache = TenantCache(client, ttl_s=60)
    try:
        for command in (["update", tenant["id"], "--tpm", "100"], ["disable", tenant["id"]]):
            await cache.put(hash_key(tenant["api_key"]), TenantSnapshot(id=tenant["id"], name="acme"))
            assert await client.exists(cached_key) == 1
            result = await asyncio.to_thread(run_cli, "tenants", *command, database_url=postgres_url,
                                             redis_url=CLI_REDIS_URL)
            assert result.returncode == 0, result.stderr
            assert await client.exists(cached_key) == 0
        listed = await asyncio.to_thread(run_cli, "tenants", "get", tenant["id"], "--json",
                                         database_url=postgres_url)
        assert (json.loads(listed.stdout)["tpm_limit"], json.loads(listed.stdout)["disabled"]) == (100, True)
    finally:
        await client.flushdb()
        await client.aclose()


async def test_tenants_update_of_budget_drops_its_spend_counters(postgres_url: str) -> None:
    # The next request then seeds the new budget's period from the usage records (issue 12, item 8).
    client = redis.asyncio.Redis.from_url(CLI_REDIS_URL)
    await client.flushdb()
    created = await asyncio.to_thread(run_cli, "tenants", "create", "acme", "--json", database_url=postgres_url,
                                      redis_url=CLI_REDIS_URL)
    tenant_id = json.loads(created.stdout)["id"]
    now = datetime.now(UTC)
    try:
        for options, dropped in ((["--tpm", "100"], False), (["--budget-usd", "1"], True),
                                 (["--budget-period", "daily"], True)):
            for period in PERIODS:
                await seed_budget(client, tenant_id, period, now, spent_usd=0.5)
            result = await asyncio.to_thread(run_cli, "tenants", "update", tenant_id, *options,
                                             database_url=postgres_url, redis_url=CLI_REDIS_URL)
            assert result.returncode == 0, result.stderr
            assert await client.exists(*spend_keys(tenant_id, now)) == (0 if dropped else 4)
    finally:
        await client.flushdb()
        await client.aclose()


async def test_keys_update_of_budget_drops_the_keys_counters_and_mirrors_its_alerts(postgres_url: str) -> None:
    # As PATCH /api/v1/admin/tenants/{id}/keys/{key_id} does: the key's spend is seeded again from its usage
    # records, and its budget alerts watch the new budget (the tenant's counters stay).
    client = redis.asyncio.Redis.from_url(CLI_REDIS_URL)
    await client.flushdb()
    created = await asyncio.to_thread(run_cli, "tenants", "create", "acme", "--json", database_url=postgres_url,
                                      redis_url=CLI_REDIS_URL)
    tenant_id = json.loads(created.stdout)["id"]
    key = json.loads((await asyncio.to_thread(
        run_cli, "keys", "create", tenant_id, "ci", "--budget-usd", "1", "--json", database_url=postgres_url,
        redis_url=CLI_REDIS_URL)).stdout)
    engine = create_engine(postgres_url)
    try:
        async with create_session_factory(engine)() as session:
            await create_budget_alert(session, tenant_id, "http://127.0.0.1:9/hook", [50], allow_private=True,
                                      key_id=key["id"])
            await session.commit()
        now = datetime.now(UTC)
        for owner in (tenant_id, key["id"]):
            for period in PERIODS:
                await seed_budget(client, owner, period, now, spent_usd=0.5)
        result = await asyncio.to_thread(run_cli, "keys", "update", tenant_id, key["id"], "--budget-usd", "2",
                                         database_url=postgres_url, redis_url=CLI_REDIS_URL)
        assert result.returncode == 0, result.stderr
        assert await client.exists(*spend_keys(key["id"], now)) == 0
        assert await client.exists(*spend_keys(tenant_id, now)) == 4
        mirror = await client.hgetall(budget_alerts_key(key["id"]))  # type: ignore[misc]
        assert mirror[b"budget_micros"] == b"2000000"
    finally:
        await engine.dispose()
        await client.flushdb()
        await client.aclose()
