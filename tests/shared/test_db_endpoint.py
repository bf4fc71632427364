"""The `endpoint` of usage records (issue 14): migration 0005 on a database holding older rows, the column
filled by both writers, and the usage report's `by_endpoint` breakdown; on real Postgres and on SQLite."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.engine import create_engine
from shared.db.migrate import alembic_config, migrate
from shared.db.tables import UsageRecord
from shared.db.usage import EndpointUsage, insert_usage, usage_report
from tests.shared.db_support import BACKENDS, database_url, reset_database, usage_row


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_0005_reads_older_rows_as_chat(backend: str, tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    await reset_database(url)
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0004")
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(
                "INSERT INTO usage_record (request_id, tenant_id, public_model, provider, model, prompt_tokens, "
                "completion_tokens, cost_usd, latency_ms, status, fallback_used, cache_hit, saved_cost_usd, "
                "cached_prompt_tokens, created_at) VALUES ('old', 'ten_a', 'gpt-4o', 'openai', 'gpt-4o', 1, 1, "
                "0.1, 5, 'succeeded', false, false, 0, 0, CURRENT_TIMESTAMP)"))
        await migrate(url)
        await insert_usage(engine, [usage_row("new", endpoint="embeddings")])
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT request_id, endpoint FROM usage_record ORDER BY id"))
            assert [tuple(row) for row in rows] == [("old", "chat"), ("new", "embeddings")]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_0005_downgrade_drops_the_column(backend: str, tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    await reset_database(url)
    await migrate(url)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0004")
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: [column["name"] for column in inspect(sync).get_columns("usage_record")])
        assert "endpoint" not in columns and "dropped_params" in columns
    finally:
        await engine.dispose()


async def test_insert_usage_defaults_endpoint_to_chat(engine: AsyncEngine, session: AsyncSession) -> None:
    await insert_usage(engine, [usage_row("job_1"), usage_row("job_2", endpoint="completions")])
    stored = (await session.exec(select(UsageRecord.request_id, UsageRecord.endpoint)
                                 .order_by(UsageRecord.request_id))).all()
    assert [tuple(row) for row in stored] == [("job_1", "chat"), ("job_2", "completions")]


async def test_insert_usage_refuses_an_unknown_endpoint(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="endpoint must be one of chat, completions, count_tokens, embeddings"):
        await insert_usage(engine, [usage_row("job_1", endpoint="images")])


async def test_usage_report_breaks_down_by_endpoint(engine: AsyncEngine, session: AsyncSession) -> None:
    now = datetime.now(UTC)
    await insert_usage(engine, [
        usage_row("c1", created_at=now, cost_usd=0.5),
        usage_row("e1", created_at=now, endpoint="embeddings", prompt_tokens=100, completion_tokens=0,
                  cost_usd=0.01),
        usage_row("e2", created_at=now, endpoint="embeddings", prompt_tokens=50, completion_tokens=0,
                  cost_usd=0.0, cache_hit=True, saved_cost_usd=0.005),
        usage_row("t1", created_at=now, endpoint="completions", status="failed", cost_usd=0.0),
        usage_row("x1", created_at=now, endpoint="embeddings", tenant_id="ten_b"),
    ])
    report = await usage_report(session, "ten_a", days=1)
    assert report.by_endpoint == [
        EndpointUsage(endpoint="chat", requests=1, prompt_tokens=10, completion_tokens=5, cost_usd=0.5),
        EndpointUsage(endpoint="completions", requests=1, prompt_tokens=10, completion_tokens=5, failed=1),
        EndpointUsage(endpoint="embeddings", requests=2, prompt_tokens=150, cost_usd=0.01, cache_hits=1,
                      saved_cost_usd=0.005),
    ]
    assert report.totals.requests == 4


async def test_usage_report_without_rows_has_no_endpoints(session: AsyncSession) -> None:
    assert (await usage_report(session, "ten_none", days=30)).by_endpoint == []
