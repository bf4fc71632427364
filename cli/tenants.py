"""`llm-gateway tenants ...` and `llm-gateway usage ...`: tenant administration and usage reports run straight
on the database, answering what the admin API would (`--json` prints the admin API's own JSON). After a
change the tenant's cached snapshot is dropped from Redis so it applies at once in every API process (and
after a change of budget, its spend counters, which the next request then seeds from the usage records).
Each change is audited (actor `cli`) in its transaction. `cli.main` registers the parsers (cli/tenant_args.py)
and calls `run`; errors print one line and exit 2."""

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel.ext.asyncio.session import AsyncSession

from api.routes.admin import TenantCreate, render_tenant
from cli.tables import render_pairs, render_table
from cli.tenant_args import MAX_DAYS, NUMBERS, OPTIONS, PROG
from shared.audit import CLI_ACTOR, record_admin_action
from shared.budget import reset_budget_counters
from shared.budget_alerts import mirror_budget_alerts
from shared.config import Settings
from shared.db.engine import create_engine, create_session_factory
from shared.db.migrate import run_migrations
from shared.db.tables import Tenant
from shared.db.usage import UsageReport, UsageTotals, usage_report
from shared.db.usage_groups import (
    MEASURES,
    GroupedUsage,
    UsageFilters,
    grouped_usage,
    parse_group_by,
    parse_tag_filters,
    usage_csv,
)
from shared.errors import GatewayError, InvalidRequest
from shared.shard_clients import open_shard_clients
from shared.tenant_cache import ShardedTenantCache
from shared.tenants import (
    TenantLimits,
    create_tenant,
    get_tenant,
    list_tenants,
    rotate_key,
    set_tenant_disabled,
    update_tenant,
)

__all__ = ["Outcome", "run", "run_action"]

logger = logging.getLogger(__name__)

BUDGET_FIELDS = frozenset({"budget_usd", "budget_period"})

LIST_COLUMNS = ("id", "name", "disabled", "rate_limit", "tpm_limit", "max_concurrent", "budget_usd",
                "budget_period", "created_at")
USAGE_COLUMNS = ("requests", "failed", "prompt_tokens", "completion_tokens", "cost_usd", "cache_hits",
                 "saved_cost_usd")


@dataclass
class Outcome:
    """What a command prints: `text`, or `data` as JSON; `changed` names a tenant whose cache must go (and,
    with `budget_changed`, whose budget counters must be seeded again and budget alerts mirrored afresh: the
    tenant's, or with `budget_key_id` that key's)."""

    text: str
    data: object
    changed: str | None = None
    warning: str | None = None
    budget_changed: bool = False
    budget_key_id: str | None = None


Action = Callable[[argparse.Namespace, AsyncSession], Awaitable[Outcome]]
ModelT = TypeVar("ModelT", bound=BaseModel)


# --- running ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one `tenants` or `usage` command; 0 on success, 1 if done but the cache was not dropped, else 2."""
    return run_action(_usage if args.command == "usage" else ACTIONS[args.action], args, settings)


def run_action(action: Action, args: argparse.Namespace, settings: Settings) -> int:
    """Run one command's action on the database (`llm-gateway keys` shares this too)."""
    # Migration progress is INFO noise here; the command's own output is what the operator wants.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        if settings.resolved_database_url.startswith("sqlite"):
            run_migrations(settings.resolved_database_url)
        outcome = asyncio.run(_execute(action, args, settings))
    except GatewayError as error:
        return _fail(error.message)
    except (SQLAlchemyError, OSError) as error:
        return _fail(f"database unavailable at {_where(settings)}: {_first_line(error)}")
    except Exception as error:
        logger.debug("command failed", exc_info=True)
        return _fail(f"unexpected {type(error).__name__}: {_first_line(error)} (LOG_LEVEL=DEBUG shows more)")
    print(json.dumps(outcome.data, indent=2) if args.json else outcome.text)
    if outcome.warning:
        print(f"{PROG}: warning: {outcome.warning}", file=sys.stderr)
        return 1
    return 0


async def _execute(action: Action, args: argparse.Namespace, settings: Settings) -> Outcome:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_session_factory(engine)() as session:
            outcome = await action(args, session)
            if outcome.changed is not None:
                outcome.warning = await _drop_cached(settings, session, outcome)
    finally:
        await engine.dispose()
    return outcome


async def _drop_cached(settings: Settings, session: AsyncSession, outcome: Outcome) -> str | None:
    """Drop the changed tenant's cached snapshot (after a budget change also the owner's spend counters, and
    mirror its budget alerts, as the admin API does); a warning if Redis cannot be reached (the change is saved)."""
    tenant_id = outcome.changed
    if settings.embedded or tenant_id is None:
        return None  # embedded mode: the only cache lives inside the serving process
    clients = open_shard_clients(settings)
    try:
        # Snapshots are cached on their key hash's shard, so every shard drops the tenant's (docs/SHARDING.md).
        await ShardedTenantCache(clients, ttl_s=settings.auth_cache_ttl_s).invalidate_tenant(tenant_id)
        if outcome.budget_changed:
            now = datetime.now(UTC)
            redis = clients.for_key(tenant_id)  # the tenant's own shard holds its (and its keys') counters
            await reset_budget_counters(redis, outcome.budget_key_id or tenant_id, now)
            await mirror_budget_alerts(redis, session, tenant_id, now, key_id=outcome.budget_key_id,
                                       budget_changed=True)
    except (RedisError, OSError) as error:
        return (f"saved, but the cached tenant could not be dropped from Redis ({_first_line(error)}); "
                f"API processes apply the change within AUTH_CACHE_TTL_S={settings.auth_cache_ttl_s}s")
    finally:
        await clients.aclose()
    return None


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _where(settings: Settings) -> str:
    return settings.resolved_database_url.split("@")[-1]


# --- values -----------------------------------------------------------------------------------------


def _option_value(field: str, text: str) -> object:
    if field == "allowed_models":
        return None if text.strip().lower() == "none" else [item.strip() for item in text.split(",") if item.strip()]
    kind = NUMBERS.get(field)
    if kind is None:
        return text
    if text.strip().lower() == "none":
        return None
    try:
        return kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise InvalidRequest(f"{OPTIONS[field]} must be {expected} or 'none', not {text!r}") from None


def _validated(model: type[ModelT], values: Mapping[str, object]) -> ModelT:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{OPTIONS.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else 'value'}: {e['msg']}"
                             for e in exc.errors())
        raise InvalidRequest(problems) from exc


def _given_limits(args: argparse.Namespace) -> dict[str, object]:
    return {field: _option_value(field, getattr(args, field)) for field in TenantLimits.model_fields
            if hasattr(args, field)}


# --- actions ----------------------------------------------------------------------------------------


async def _create(args: argparse.Namespace, session: AsyncSession) -> Outcome:
    params = _validated(TenantCreate, {"name": args.name, **_given_limits(args)})
    limits = TenantLimits.model_validate(params.model_dump(exclude={"name"}, exclude_unset=True))
    tenant, api_key = await create_tenant(session, params.name, limits=limits, commit=False)
    await _audit(session, "tenant.created", tenant.id, None, render_tenant(tenant))
    text = f"{_tenant_text(tenant, api_key)}\n\nThe API key is shown only this once: store it now."
    return Outcome(text, {**render_tenant(tenant), "api_key": api_key})


async def _list(args: argparse.Namespace, session: AsyncSession) -> Outcome:
    tenants = await list_tenants(session)
    rendered = [render_tenant(tenant) for tenant in tenants]
    rows = [[*(item[column] for column in LIST_COLUMNS[:-1]), _minute(tenant)]
            for item, tenant in zip(rendered, tenants, strict=True)]
    text = render_table(LIST_COLUMNS, rows) if rows else "no tenants"
    return Outcome(text, {"object": "list", "data": rendered})


async def _get(args: argparse.Namespace, session: AsyncSession) -> Outcome:
    tenant = await get_tenant(session, args.tenant_id)
    return Outcome(_tenant_text(tenant), render_tenant(tenant))


async def _update(args: argparse.Namespace, session: AsyncSession) -> Outcome:
    changes = _validated(TenantLimits, _given_limits(args))
    if not changes.model_fields_set:
        options = ", ".join(OPTIONS[field] for field in TenantLimits.model_fields)
        raise InvalidRequest(f"nothing to update: give at least one of {options}")
    before = render_tenant(await get_tenant(session, args.tenant_id))
    tenant = await update_tenant(session, args.tenant_id, changes, commit=False)
    await _audit(session, "tenant.updated", tenant.id, before, render_tenant(tenant))
    return Outcome(_tenant_text(tenant), render_tenant(tenant), changed=tenant.id,
                   budget_changed=bool(changes.model_fields_set & BUDGET_FIELDS))


async def _disable(args: argparse.Namespace, session: AsyncSession) -> Outcome:
    return await _set_disabled(session, args.tenant_id, True)


async def _enable(args: argparse.Namespace, session: AsyncSession) -> Outcome:
    return await _set_disabled(session, args.tenant_id, False)


async def _set_disabled(session: AsyncSession, tenant_id: str, disabled: bool) -> Outcome:
    before = render_tenant(await get_tenant(session, tenant_id))
    tenant = await set_tenant_disabled(session, tenant_id, disabled, commit=False)
    await _audit(session, "tenant.disabled" if disabled else "tenant.enabled", tenant.id, before,
                 render_tenant(tenant))
    return Outcome(_tenant_text(tenant), render_tenant(tenant), changed=tenant.id)


async def _audit(session: AsyncSession, action: str, tenant_id: str, before: dict[str, object] | None,
                 after: dict[str, object] | None) -> None:
    """Record the change as the `cli` actor and commit both together (shared/audit.py)."""
    await record_admin_action(session, actor=CLI_ACTOR, action=action, target_type="tenant", target_id=tenant_id,
                              before=before, after=after)
    await session.commit()


async def _rotate_key(args: argparse.Namespace, session: AsyncSession) -> Outcome:
    api_key = await rotate_key(session, args.tenant_id, commit=False)
    await _audit(session, "tenant.key_rotated", args.tenant_id, None, {"key_prefix": api_key[:12]})
    tenant = await get_tenant(session, args.tenant_id)
    text = (f"{_tenant_text(tenant, api_key)}\n\nThe earlier 'default' key is revoked (other named keys are "
            "unchanged). The new key is shown only this once.")
    return Outcome(text, {**render_tenant(tenant), "api_key": api_key}, changed=tenant.id)


async def _usage(args: argparse.Namespace, session: AsyncSession) -> Outcome:
    if not 1 <= args.days <= MAX_DAYS:
        raise InvalidRequest(f"--days must be between 1 and {MAX_DAYS}, not {args.days}")
    tenant = await get_tenant(session, args.tenant_id)
    group_by = parse_group_by(args.group_by)
    filters = UsageFilters(day=args.day, model=args.model, provider=args.provider, endpoint=args.endpoint,
                           status=args.status, key=args.key, user=args.user, tags=parse_tag_filters(args.tag))
    if not group_by and not args.csv and filters == UsageFilters():
        report = await usage_report(session, tenant.id, args.days)
        return Outcome(_report_text(tenant, report), report.model_dump(mode="json"))
    grouped = await grouped_usage(session, tenant.id, args.days, group_by or (["day"] if args.csv else []), filters)
    text = usage_csv(grouped).rstrip("\n") if args.csv else _grouped_text(tenant, grouped)
    return Outcome(text, grouped.model_dump(mode="json"))


ACTIONS: dict[str, Action] = {
    "create": _create, "list": _list, "get": _get, "update": _update, "disable": _disable, "enable": _enable,
    "rotate-key": _rotate_key,
}


# --- text -------------------------------------------------------------------------------------------


def _minute(tenant: Tenant) -> str:
    return tenant.created_at.strftime("%Y-%m-%d %H:%M")


def _tenant_text(tenant: Tenant, api_key: str | None = None) -> str:
    pairs = list(render_tenant(tenant).items())
    pairs = [(key, value) for key, value in pairs if key != "object"]
    if api_key is not None:
        pairs.append(("api_key", api_key))
    return render_pairs(pairs)


def _report_text(tenant: Tenant, report: UsageReport) -> str:
    sections: list[tuple[str, str, list[Any]]] = [
        ("By day", "day", [(row.day, row) for row in report.by_day]),
        ("By model", "model", [(row.model, row) for row in report.by_model]),
        ("By provider", "provider", [(row.provider, row) for row in report.by_provider]),
        ("By endpoint", "endpoint", [(row.endpoint, row) for row in report.by_endpoint]),
    ]
    parts = [f"Usage of tenant {tenant.id} ({tenant.name}) over the last {report.days} days (UTC)",
             "Totals\n" + render_table(USAGE_COLUMNS, [_usage_row(report.totals)])]
    for title, key, rows in sections:
        body = render_table((key, *USAGE_COLUMNS), [[name, *_usage_row(row)] for name, row in rows])
        parts.append(f"{title}\n{body if rows else '(no usage)'}")
    return "\n\n".join(parts)


def _grouped_text(tenant: Tenant, report: GroupedUsage) -> str:
    columns = [name for name in MEASURES if name != "cost_nanos"]
    rows = [[group[name] for name in (*report.group_by, *columns)] for group in report.groups]
    totals = report.totals.model_dump()
    parts = [f"Usage of tenant {tenant.id} ({tenant.name}) over the last {report.days} days (UTC)",
             "Totals\n" + render_table(columns, [[totals[name] for name in columns]])]
    if report.group_by:
        body = render_table((*report.group_by, *columns), rows) if rows else "(no usage)"
        parts.append(f"By {', '.join(report.group_by)}\n{body}")
    return "\n\n".join(parts)


def _usage_row(totals: UsageTotals) -> list[object]:
    return [getattr(totals, column) for column in USAGE_COLUMNS]
