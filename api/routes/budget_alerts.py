"""A tenant's own budget alerts (`/api/v1/budget-alerts`): the same alerts as the admin API's, on the calling
tenant only (its own budget, or with `key_id` one of its keys' budgets), so a team can hear about its spend
without an admin. Changes are audited with the actor
`tenant:<id>`; the work is api/routes/admin_budget_alerts.py's."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import SessionDep, StateDep, TenantDep
from api.routes.admin_budget_alerts import CREATE_BODY, AlertId, add_alert, remove_alert, render_alerts

router = APIRouter(prefix="/api/v1/budget-alerts", tags=["gateway"])


@router.post("", status_code=201, openapi_extra=CREATE_BODY)
async def create_own_budget_alert(tenant: TenantDep, request: Request, session: SessionDep,
                                  state: StateDep) -> JSONResponse:
    """Register a webhook for the calling tenant's (or one of its keys') budget thresholds (default 50, 80
    and 100 %)."""
    return await add_alert(tenant.id, request, session, state, _actor(tenant.id))


@router.get("")
async def read_own_budget_alerts(tenant: TenantDep, session: SessionDep) -> dict[str, object]:
    return await render_alerts(session, tenant.id)


@router.delete("/{alert_id}")
async def delete_own_budget_alert(tenant: TenantDep, alert_id: AlertId, session: SessionDep,
                                  state: StateDep) -> dict[str, object]:
    return await remove_alert(tenant.id, alert_id, session, state, _actor(tenant.id))


def _actor(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"
