"""Admin API for the audit log (shared/audit.py): every admin action, newest first, filtered by action, target,
actor and time, and paged. Readable by any admin key, viewers included."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import SessionDep, ViewerDep
from shared.audit import AuditFilter, list_audit, render_entry

router = APIRouter(prefix="/api/v1/admin/audit", tags=["admin"], dependencies=[ViewerDep])

Text = Annotated[str | None, Query(max_length=100)]


@router.get("")
async def read_audit_log(
    session: SessionDep,
    action: Text = None,
    target_type: Text = None,
    target_id: Text = None,
    actor: Text = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; entries at or after")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; entries before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="the previous page's `next_cursor`")] = None,
) -> dict[str, object]:
    """Audit entries matching every filter given, newest first; page with `next_cursor` as `before`."""
    where = AuditFilter(action=action, target_type=target_type, target_id=target_id, actor=actor,
                        since=since, until=until)
    page = await list_audit(session, where, limit=limit, before_id=before)
    return {"object": "list", "data": [render_entry(entry) for entry in page.entries],
            "has_more": page.next_cursor is not None, "next_cursor": page.next_cursor}
