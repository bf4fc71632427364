"""A tenant's own usage report."""

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import SessionDep, TenantDep
from shared.db.usage import usage_report

router = APIRouter(prefix="/api/v1", tags=["gateway"])


@router.get("/usage")
async def read_own_usage(
    tenant: TenantDep, session: SessionDep, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> dict[str, object]:
    """The calling tenant's totals and breakdowns by day, model, provider and endpoint."""
    report = await usage_report(session, tenant.id, days)
    return report.model_dump(mode="json")
