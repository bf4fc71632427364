"""The console's audit log page, for operators (admin and viewer sessions): every admin action, newest first,
filtered by action, actor and target, paged, with the target's fields before and after and what changed. Read
with the admin API's own query (shared/audit.py `list_audit`, `render_entry`)."""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response

from api.console.auth import SessionUser, require_all_tenants
from api.console.pages import ConsoleRoute, pretty_json, render
from api.deps import SessionDep
from shared.audit import AuditFilter, list_audit, render_entry
from shared.db.tables import AuditEntry

router = APIRouter(prefix="/console/audit", include_in_schema=False, route_class=ConsoleRoute)

PAGE_SIZE = 50
Text = Annotated[str, Query(max_length=100)]


@router.get("")
async def read_audit(
    request: Request, user: SessionUser, db: SessionDep, action: Text = "", actor: Text = "",
    target_type: Text = "", target_id: Text = "",
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> Response:
    require_all_tenants(user)
    shown = {"action": action, "actor": actor, "target_type": target_type, "target_id": target_id}
    where = AuditFilter(action=action.strip() or None, actor=actor.strip() or None,
                        target_type=target_type.strip() or None, target_id=target_id.strip() or None)
    page = await list_audit(db, where, limit=PAGE_SIZE, before_id=before)
    entries = [_shown(entry) for entry in page.entries]
    older = None
    if page.next_cursor is not None:
        older = "/console/audit?" + urlencode({**{k: v for k, v in shown.items() if v}, "before": page.next_cursor})
    return render(request, "audit.html", user, active="audit", entries=entries, shown=shown, older=older)


def _shown(entry: AuditEntry) -> dict[str, object]:
    """The admin API's view of the entry, with its time as a datetime (for `<time>`) and what changed."""
    data = render_entry(entry)
    return {**data, "at": entry.at, "changes": _changes(data)}


def _changes(entry: dict[str, object]) -> list[tuple[str, str, str]]:
    """The fields whose value differs between before and after, as JSON text (all of them for a creation or a
    deletion), so a row says what the action did without reading two documents."""
    before, after = entry["before"], entry["after"]
    old = before if isinstance(before, dict) else {}
    new = after if isinstance(after, dict) else {}
    return [(name, _text(old, name), _text(new, name)) for name in sorted(old.keys() | new.keys())
            if old.get(name) != new.get(name) or name not in old or name not in new]


def _text(values: dict[str, object], name: str) -> str:
    return pretty_json(values[name]) if name in values else "—"
