"""The audit log of admin actions: who (the admin key's id, or `bootstrap` for ADMIN_API_KEY) did what to which
target, with the target before and after, and when. Admin routes and the CLI call `record_admin_action` on the
session that makes the change, before committing it, so the entry and the change commit or roll back together.
Secrets never reach it: fields that hold a key or its hash are dropped from before/after."""

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.tables import AuditEntry

__all__ = [
    "CLI_ACTOR",
    "CONSOLE_ACTOR",
    "SECRET_FIELDS",
    "AuditFilter",
    "AuditPage",
    "list_audit",
    "record_admin_action",
    "render_entry",
]

# Whatever a caller passes, these never go into the log: plain keys are shown once, hashes are credentials too.
SECRET_FIELDS = frozenset({"api_key", "key", "key_hash", "secret", "password", "token"})
MAX_PAGE = 500
CLI_ACTOR = "cli"  # the actor of changes made with `llm-gateway` straight on the database
CONSOLE_ACTOR = "console"  # an admin session of the console (signed in with ADMIN_API_KEY)


@dataclass(frozen=True)
class AuditFilter:
    """What `GET /api/v1/admin/audit` filters by; None means any."""

    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    next_cursor: int | None


async def record_admin_action(session: AsyncSession, *, actor: str, action: str, target_type: str,
                              target_id: str, before: dict[str, object] | None,
                              after: dict[str, object] | None) -> None:
    """Add the entry to the session's transaction (flushed, not committed): the caller's commit writes it with
    the change it describes, and a rollback drops both."""
    session.add(AuditEntry(actor=actor, action=action, target_type=target_type, target_id=target_id,
                           before=_as_json(before), after=_as_json(after)))
    await session.flush()


async def list_audit(session: AsyncSession, where: AuditFilter, *, limit: int, before_id: int | None) -> AuditPage:
    """Entries matching `where`, newest first; `before_id` (the previous page's `next_cursor`) pages on."""
    statement = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(min(limit, MAX_PAGE) + 1)
    for condition in _conditions(where, before_id):
        statement = statement.where(condition)
    rows = list((await session.exec(statement)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(entries=rows, next_cursor=rows[-1].id if more and rows else None)


def render_entry(entry: AuditEntry) -> dict[str, object]:
    return {
        "id": entry.id, "object": "audit_entry", "at": entry.at.isoformat(), "actor": entry.actor,
        "action": entry.action, "target_type": entry.target_type, "target_id": entry.target_id,
        "before": json.loads(entry.before) if entry.before is not None else None,
        "after": json.loads(entry.after) if entry.after is not None else None,
    }


def _conditions(where: AuditFilter, before_id: int | None) -> list[ColumnElement[bool]]:
    """The WHERE clauses for the filters given (a None filter matches anything)."""
    equal = {AuditEntry.action: where.action, AuditEntry.target_type: where.target_type,
             AuditEntry.target_id: where.target_id, AuditEntry.actor: where.actor}
    conditions = [col(column) == value for column, value in equal.items() if value is not None]
    if where.since is not None:
        conditions.append(col(AuditEntry.at) >= where.since)
    if where.until is not None:
        conditions.append(col(AuditEntry.at) < where.until)
    if before_id is not None:
        conditions.append(col(AuditEntry.id) < before_id)
    return conditions


def _as_json(state: dict[str, object] | None) -> str | None:
    if state is None:
        return None
    kept = {name: value for name, value in state.items() if name not in SECRET_FIELDS}
    return json.dumps(kept, sort_keys=True, default=str, separators=(",", ":"))
