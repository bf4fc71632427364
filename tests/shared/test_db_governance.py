"""Issue 15's migrations (0006 keys and scopes, 0007 attribution and request log, 0008 admin keys, audit log,
budget alerts, 0009 budget-alert thresholds sent; then 0010, issue 17's usage partitions on PostgreSQL) on a
database holding data, on real Postgres and on SQLite:
tenants, their keys and usage rows written at 0005, the schema before issue 15, survive the upgrade to head,
still authenticate and report, and have the new columns at their defaults (the old key is the unscoped
`default` key, the old usage row has no key, user or tags); the new tables work (cascades included);
downgrade to 0005 drops them and leaves the older data."""

import asyncio
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlmodel import select

from shared.admin_keys import authenticate_admin, create_admin_key
from shared.audit import AuditFilter, list_audit, record_admin_action
from shared.budget_alert_check import SentThreshold
from shared.budget_alerts import create_budget_alert, list_budget_alerts
from shared.db.budget_alert_log import SqlSentLog
from shared.db.engine import create_engine, create_session_factory
from shared.db.migrate import alembic_config, migrate
from shared.db.tables import ApiKey, Tenant, UsageRecord
from shared.db.usage import usage_report
from shared.tenants import authenticate, hash_key
from tests.shared.db_support import BACKENDS, database_url, reset_database

OLD_KEY = "gw-old-key-from-before-0008"
NEW_TABLES = {"admin_key", "audit_log", "budget_alert", "budget_alert_sent", "request_content"}


async def _seed_0005(url: str) -> None:
    await reset_database(url)
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0005")
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(
                "INSERT INTO tenant (id, name, rate_limit, tpm_limit, max_concurrent, budget_usd, budget_period, "
                "weight, max_running, disabled, created_at) VALUES ('ten_old', 'old', 10, NULL, NULL, 5.0, "
                "'monthly', NULL, NULL, false, CURRENT_TIMESTAMP)"))
            await connection.execute(text(
                "INSERT INTO api_key (id, tenant_id, key_hash, key_prefix, created_at) VALUES "
                f"('key_old', 'ten_old', '{hash_key(OLD_KEY)}', 'gw-old-key-f', CURRENT_TIMESTAMP)"))
            await connection.execute(text(
                "INSERT INTO usage_record (request_id, tenant_id, public_model, provider, model, prompt_tokens, "
                "completion_tokens, cost_usd, latency_ms, status, fallback_used, cache_hit, saved_cost_usd, "
                "cached_prompt_tokens, dropped_params, endpoint, created_at) VALUES ('job_old', 'ten_old', "
                "'gpt-4o', 'openai', 'gpt-4o', 3, 4, 0.25, 5, 'succeeded', false, false, 0, 0, '', 'chat', "
                "CURRENT_TIMESTAMP)"))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_from_0005_keeps_existing_data_and_adds_working_tables(backend: str,
                                                                               tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    await _seed_0005(url)
    await migrate(url)
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            tenant = await authenticate(session, OLD_KEY)
            assert tenant is not None and tenant.id == "ten_old" and tenant.budget_usd == 5.0
            report = await usage_report(session, "ten_old", 30)
            assert report.totals.requests == 1 and report.totals.cost_usd == 0.25
            row, plain = await create_admin_key(session, "ops", "viewer")
            await record_admin_action(session, actor="bootstrap", action="admin_key.created",
                                      target_type="admin_key", target_id=row.id, before=None,
                                      after={"name": "ops", "key_hash": row.key_hash})
            alert = await create_budget_alert(session, "ten_old", "https://hooks.example/b", [50],
                                              allow_private=False)
            await session.commit()
            await SqlSentLog(engine).record_thresholds([SentThreshold(alert.id, "2026-12", 50, 5_000_000)])
            assert len(await SqlSentLog(engine).sent_thresholds([alert.id], "2026-12", 5_000_000)) == 1
            found = await authenticate_admin(session, plain)
            assert found is not None and found.role == "viewer"
            [entry] = (await list_audit(session, AuditFilter(), limit=10, before_id=None)).entries
            assert entry.after == '{"name":"ops"}'  # the hash was dropped on the way in
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM tenant WHERE id = 'ten_old'"))
            sent = (await connection.execute(text("SELECT count(*) FROM budget_alert_sent"))).scalar_one()
        assert sent == 0  # cascaded with its alert, itself with its tenant
        async with create_session_factory(engine)() as session:
            assert await list_budget_alerts(session, "ten_old") == []  # cascaded with its tenant
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_from_0005_gives_old_rows_the_new_columns_defaults(backend: str, tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    await _seed_0005(url)
    await migrate(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one() == "0011"
        async with create_session_factory(engine)() as session:
            key = await session.get(ApiKey, "key_old")
            assert key is not None and key.tenant_id == "ten_old" and key.key_hash == hash_key(OLD_KEY)
            assert (key.name, key.budget_period) == ("default", "monthly")  # the unscoped default key
            assert [key.expires_at, key.last_used_at, key.revoked_at, key.allowed_models, key.allowed_endpoints,
                    key.rate_limit, key.tpm_limit, key.max_concurrent, key.budget_usd] == [None] * 9
            tenant = await session.get(Tenant, "ten_old")
            assert tenant is not None and (tenant.rate_limit, tenant.budget_usd) == (10, 5.0)
            assert tenant.allowed_models is None and tenant.log_content_days is None  # every model, no content
            [usage] = (await session.exec(select(UsageRecord))).all()
            assert (usage.request_id, usage.cost_usd, usage.prompt_tokens, usage.completion_tokens) == (
                "job_old", 0.25, 3, 4)
            assert (usage.key_id, usage.end_user, usage.tags) == (None, None, {})  # billed to no key, user, tag
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_downgrade_to_0005_drops_only_the_new_tables(backend: str, tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    await _seed_0005(url)
    await migrate(url)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0005")
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            tables = set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
            count = (await connection.execute(text("SELECT count(*) FROM usage_record"))).scalar_one()
        assert not tables & NEW_TABLES and {"tenant", "api_key", "usage_record"} <= tables and count == 1
    finally:
        await engine.dispose()
