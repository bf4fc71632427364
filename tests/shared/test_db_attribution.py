"""Attribution on usage records (issue 15), on real PostgreSQL and on SQLite: migration 0007 on a database
holding tenants, keys and usage rows; both writers storing key, user and tags; grouped reports whose groups
add up exactly to the totals; filters; CSV parsed back; the request log's filters and cursor; the prune."""

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.engine import create_engine, create_session_factory
from shared.db.migrate import alembic_config, migrate
from shared.db.pg_usage import PgUsageSink
from shared.db.request_log import RequestLogFilters, prune_usage, read_request_entry, read_request_log
from shared.db.usage import NANOS_PER_USD, insert_usage, usage_report
from shared.db.usage_groups import UsageFilters, grouped_usage, parse_group_by, parse_tag_filters, usage_csv
from shared.errors import InvalidRequest, NotFound
from shared.pricing import COST_DECIMALS
from tests.shared.db_support import BACKENDS, POSTGRES_URL, database_url, migrated_engine, reset_database, usage_row

NOW = datetime.now(UTC)
ROWS = [
    usage_row("j1", key_id="key_a", end_user="alice", tags={"team": "search", "env": "prod"}, cost_usd=0.1,
              created_at=NOW),
    usage_row("j2", key_id="key_a", end_user="bob", tags={"team": "search"}, cost_usd=0.2, created_at=NOW),
    usage_row("j3", key_id="key_b", end_user="alice", tags={"team": "ads", "env": "prod"}, cost_usd=0.3,
              status="failed", error_code="upstream_error", created_at=NOW),
    usage_row("j4", cost_usd=0.000123, created_at=NOW - timedelta(days=1)),
    usage_row("x1", tenant_id="ten_b", key_id="key_x", tags={"team": "search"}, created_at=NOW),
]


@pytest.fixture(params=BACKENDS)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine(request.param, tmp_path) as engine:
        await insert_usage(engine, ROWS)
        yield engine


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with create_session_factory(engine)() as session:
        yield session


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_0007_keeps_tenants_keys_and_usage_rows(backend: str, tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    await reset_database(url)
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0005")
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO tenant (id, name, budget_period, disabled, created_at) "
                                          "VALUES ('ten_a', 'a', 'monthly', false, CURRENT_TIMESTAMP)"))
            await connection.execute(text("INSERT INTO api_key (id, tenant_id, key_hash, key_prefix, created_at) "
                                          "VALUES ('key_old', 'ten_a', 'h', 'gw_x', CURRENT_TIMESTAMP)"))
        await insert_usage_at_0005(engine)
        await migrate(url)
        await insert_usage(engine, [usage_row("new", key_id="key_old", end_user="u", tags={"env": "prod"})])
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT request_id, key_id, end_user FROM usage_record ORDER BY id"))
            assert [tuple(row) for row in rows] == [("old", None, None), ("new", "key_old", "u")]
            assert (await connection.execute(text("SELECT count(*) FROM api_key"))).scalar() == 1
        async with create_session_factory(engine)() as session:
            report = await grouped_usage(session, "ten_a", 1, ["tag:env"], UsageFilters())
        assert [(g["tag:env"], g["requests"]) for g in report.groups] == [("prod", 1), (None, 1)]
    finally:
        await engine.dispose()


async def insert_usage_at_0005(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(
            "INSERT INTO usage_record (request_id, tenant_id, public_model, provider, model, prompt_tokens, "
            "completion_tokens, cost_usd, latency_ms, status, fallback_used, cache_hit, saved_cost_usd, "
            "cached_prompt_tokens, dropped_params, endpoint, created_at) VALUES ('old', 'ten_a', 'gpt-4o', "
            "'openai', 'gpt-4o', 1, 1, 0.1, 5, 'succeeded', false, false, 0, 0, '', 'chat', CURRENT_TIMESTAMP)"))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_0007_downgrade_drops_the_columns(backend: str, tmp_path: Path) -> None:
    url = database_url(backend, tmp_path)
    await reset_database(url)
    await migrate(url)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0005")
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT endpoint FROM usage_record"))
            with pytest.raises(Exception, match="tags"):
                await connection.execute(text("SELECT tags FROM usage_record"))
    finally:
        await engine.dispose()


async def test_pg_sink_stores_attribution_as_insert_usage_does(tmp_path: Path) -> None:
    async with migrated_engine("postgres", tmp_path) as engine:
        sink = PgUsageSink(POSTGRES_URL)
        try:
            assert await sink.insert(ROWS[:2]) == 2
        finally:
            await sink.close()
        async with create_session_factory(engine)() as session:
            page = await read_request_log(session, "ten_a", RequestLogFilters(), limit=10, cursor=None)
    assert [(e.id, e.key_id, e.user, e.tags) for e in page.data] == [
        ("j2", "key_a", "bob", {"team": "search"}), ("j1", "key_a", "alice", {"team": "search", "env": "prod"})]


@pytest.mark.parametrize("group_by", [["key"], ["user"], ["tag:team"], ["day", "key"], ["tag:env", "user"],
                                      ["model", "provider", "status", "endpoint"]])
async def test_grouped_usage_adds_up_exactly_to_the_totals(session: AsyncSession, group_by: list[str]) -> None:
    report = await grouped_usage(session, "ten_a", 30, group_by, UsageFilters())
    assert report.totals.requests == 4 and report.totals.cost_nanos == 600_123_000
    for measure in ("requests", "prompt_tokens", "completion_tokens", "cost_nanos", "failed"):
        assert sum(group[measure] for group in report.groups) == getattr(report.totals, measure)
    ungrouped = await usage_report(session, "ten_a", 30)
    assert report.totals.requests == ungrouped.totals.requests
    assert report.totals.prompt_tokens == ungrouped.totals.prompt_tokens


# gpt-4o with 3 prompt and 8 answer tokens costs 87.5 micro-dollars, a 10-token embedding 0.2: summed in
# micro-dollars rounded per record, four of the first made 352 where the tenant paid 350, and the embedding 0.
FRACTIONAL = [
    *(usage_row(f"f{i}", tenant_id="ten_f", key_id=f"key_{i % 2}", cost_usd=0.0000875, created_at=NOW)
      for i in range(4)),
    usage_row("f_emb", tenant_id="ten_f", key_id="key_0", cost_usd=0.0000002, created_at=NOW),
    usage_row("f_hit", tenant_id="ten_f", key_id="key_1", cost_usd=0.0, cache_hit=True, saved_cost_usd=0.0000875,
              created_at=NOW),
]


async def test_grouped_usage_of_fractions_of_a_micro_dollar_adds_up_to_the_plain_total(
        engine: AsyncEngine, session: AsyncSession) -> None:
    assert 10 ** COST_DECIMALS == NANOS_PER_USD  # costs are stored to the unit reports add up in
    await insert_usage(engine, FRACTIONAL)
    plain = await usage_report(session, "ten_f", 30)
    assert (plain.totals.cost_usd, plain.totals.saved_cost_usd) == (0.0003502, 0.0000875)
    for group_by in (["key"], ["day", "user"], []):
        report = await grouped_usage(session, "ten_f", 30, group_by, UsageFilters())
        assert (report.totals.cost_nanos, report.totals.saved_cost_nanos) == (350_200, 87_500)
        assert report.totals.cost_usd == plain.totals.cost_usd
        assert sum(group["cost_nanos"] for group in report.groups) == report.totals.cost_nanos
    by_key = await grouped_usage(session, "ten_f", 30, ["key"], UsageFilters())
    assert [(g["key"], g["cost_nanos"], g["cost_usd"]) for g in by_key.groups] == [
        ("key_0", 175_200, 0.0001752), ("key_1", 175_000, 0.000175)]


async def test_grouped_usage_by_key_names_each_key(session: AsyncSession) -> None:
    report = await grouped_usage(session, "ten_a", 30, ["key"], UsageFilters())
    assert [(g["key"], g["requests"], g["cost_nanos"]) for g in report.groups] == [
        ("key_a", 2, 300_000_000), ("key_b", 1, 300_000_000), (None, 1, 123_000)]


async def test_grouped_usage_filters_by_tag_user_and_status(session: AsyncSession) -> None:
    by_tag = await grouped_usage(session, "ten_a", 30, ["user"], UsageFilters(tags={"team": "search"}))
    assert [(g["user"], g["requests"]) for g in by_tag.groups] == [("alice", 1), ("bob", 1)]
    both = await grouped_usage(session, "ten_a", 30, [], UsageFilters(tags={"team": "ads", "env": "prod"}))
    assert both.totals.requests == 1 and both.groups == [{**both.totals.model_dump()}]
    failed = await grouped_usage(session, "ten_a", 30, ["key"], UsageFilters(user="alice", status="failed"))
    assert [(g["key"], g["failed"]) for g in failed.groups] == [("key_b", 1)]


async def test_usage_csv_parses_back_to_the_groups(session: AsyncSession) -> None:
    report = await grouped_usage(session, "ten_a", 30, ["key", "tag:team"], UsageFilters())
    rows = list(csv.DictReader(io.StringIO(usage_csv(report))))
    assert [(r["key"], r["tag:team"], int(r["requests"]), int(r["cost_nanos"])) for r in rows] == [
        (g["key"] or "", g["tag:team"] or "", g["requests"], g["cost_nanos"]) for g in report.groups]
    assert sum(int(r["cost_nanos"]) for r in rows) == report.totals.cost_nanos


@pytest.mark.parametrize("raw", ["colour", "day,day", "tag:", "tag:a=b"])
def test_parse_group_by_refuses_unknown_dimensions(raw: str) -> None:
    with pytest.raises(InvalidRequest, match="group_by"):
        parse_group_by(raw)


def test_parse_tag_filters_refuses_a_filter_without_a_value() -> None:
    assert parse_tag_filters(["team=search"]) == {"team": "search"}
    with pytest.raises(InvalidRequest, match="tag filter"):
        parse_tag_filters(["team"])


async def test_request_log_filters_by_key_and_status(session: AsyncSession) -> None:
    page = await read_request_log(session, "ten_a", RequestLogFilters(key="key_a"), limit=10, cursor=None)
    assert [entry.id for entry in page.data] == ["j2", "j1"] and not page.has_more
    failed = await read_request_log(session, "ten_a", RequestLogFilters(status="failed"), limit=10, cursor=None)
    assert [(e.id, e.error_code, e.key_id) for e in failed.data] == [("j3", "upstream_error", "key_b")]


async def test_request_log_without_a_tenant_lists_every_tenants_requests(session: AsyncSession) -> None:
    """The console's operators read the whole gateway's log; filters still apply."""
    page = await read_request_log(session, None, RequestLogFilters(tags={"team": "search"}), limit=10, cursor=None)
    assert [(entry.id, entry.tenant_id) for entry in page.data] == [("x1", "ten_b"), ("j2", "ten_a"), ("j1", "ten_a")]


async def test_request_log_pages_by_cursor_without_gaps_or_repeats(session: AsyncSession) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(4):
        page = await read_request_log(session, "ten_a", RequestLogFilters(), limit=3, cursor=cursor)
        seen += [entry.id for entry in page.data]
        cursor = page.next_cursor
        if not page.has_more:
            break
    assert seen == ["j4", "j3", "j2", "j1"] and cursor is None


async def test_request_log_refuses_a_forged_cursor(session: AsyncSession) -> None:
    with pytest.raises(InvalidRequest, match="cursor"):
        await read_request_log(session, "ten_a", RequestLogFilters(), limit=3, cursor="bm90LWEtY3Vyc29y")


async def test_prune_usage_removes_only_older_rows(engine: AsyncEngine, session: AsyncSession) -> None:
    assert await prune_usage(engine, NOW - timedelta(hours=1), NOW) == 1
    page = await read_request_log(session, "ten_a", RequestLogFilters(), limit=10, cursor=None)
    assert [entry.id for entry in page.data] == ["j3", "j2", "j1"]
    assert await prune_usage(engine, NOW - timedelta(hours=1), NOW) == 0
    assert await prune_usage(engine, None, NOW) == 0


async def test_pg_sink_prune_removes_only_older_rows(tmp_path: Path) -> None:
    async with migrated_engine("postgres", tmp_path) as engine:
        await insert_usage(engine, ROWS)
        sink = PgUsageSink(POSTGRES_URL)
        try:
            assert await sink.prune(NOW - timedelta(hours=1), NOW) == 1
            assert await sink.prune(NOW - timedelta(hours=1), NOW) == 0
        finally:
            await sink.close()
        async with create_session_factory(engine)() as session:
            report = await grouped_usage(session, "ten_a", 30, [], UsageFilters())
    assert report.totals.requests == 3


def _with_content(request_id: str, expires_at: datetime) -> dict[str, object]:
    return {**usage_row(request_id, created_at=NOW), "content": {
        "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "secret plan"}]},
        "answer": "an answer", "expires_at": expires_at.timestamp()}}


async def _write_with(engine: AsyncEngine, writer: str, rows: list[dict[str, object]]) -> None:
    if writer == "insert_usage":
        assert await insert_usage(engine, rows) == len(rows)
        return
    sink = PgUsageSink(POSTGRES_URL)
    try:
        assert await sink.insert(rows) == len(rows)
    finally:
        await sink.close()


@pytest.mark.parametrize(("backend", "writer"), [("postgres", "insert_usage"), ("sqlite", "insert_usage"),
                                                 ("postgres", "pg_sink")])
async def test_opted_in_content_is_stored_read_back_and_expires(backend: str, writer: str, tmp_path: Path) -> None:
    async with migrated_engine(backend, tmp_path) as engine:
        await _write_with(engine, writer, [_with_content("c1", NOW + timedelta(days=1)),
                                           _with_content("c2", NOW - timedelta(seconds=1)),
                                           {**usage_row("plain", created_at=NOW)}])
        async with create_session_factory(engine)() as session:
            kept = await read_request_entry(session, "ten_a", "c1", NOW)
            assert kept.content is not None and kept.content.answer == "an answer"
            assert kept.content.request["messages"][0]["content"] == "secret plan"
            assert (await read_request_entry(session, "ten_a", "c2", NOW)).content is None  # expired
            assert (await read_request_entry(session, "ten_a", "plain", NOW)).content is None
            with pytest.raises(NotFound):
                await read_request_entry(session, "ten_b", "c1", NOW)
        assert await prune_usage(engine, None, NOW) == 1  # c2's content; every usage row is kept
        async with engine.connect() as connection:
            stored = await connection.execute(text("SELECT request_id FROM request_content"))
            assert [row[0] for row in stored] == ["c1"]
