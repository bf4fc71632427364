"""Admin API for budget alerts (shared/budget_alerts.py): a tenant's webhooks called once per threshold (percent
of its budget, or with `key_id` of that API key's own budget) per budget period. Reads take any admin key;
creating and deleting take the `admin` role, are audited in the same transaction, and are mirrored to Redis
after the commit for the workers' check."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.body import read_json_object
from api.deps import AdminActorDep, SessionDep, StateDep, ViewerDep
from api.routes.schemas import RESOURCE_ID_PATTERN, TenantId
from shared.audit import record_admin_action
from shared.budget_alerts import (
    MAX_THRESHOLDS,
    create_budget_alert,
    delete_budget_alert,
    list_budget_alerts,
    mirror_budget_alerts,
    parse_thresholds,
    render_budget_alert,
)
from shared.errors import InvalidRequest
from shared.tenants import get_tenant, validation_problems

AlertId = Annotated[str, Path(pattern=RESOURCE_ID_PATTERN, description="a budget alert id (`bal_...`)")]

router = APIRouter(prefix="/api/v1/admin/tenants/{tenant_id}/budget-alerts", tags=["admin"],
                   dependencies=[ViewerDep])


class BudgetAlertCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="http(s) URL the signed alert is POSTed to")
    thresholds: list[int] = Field(default=[50, 80, 100], min_length=1, max_length=MAX_THRESHOLDS,
                                  description="percentages of the budget, 1 to 1000")
    key_id: str | None = Field(default=None, pattern=RESOURCE_ID_PATTERN,
                               description="an active API key of the tenant with a budget of its own: the alert "
                                           "watches that key's budget and spend instead of the tenant's")


CREATE_BODY = {"requestBody": {"required": True,
                               "content": {"application/json": {"schema": BudgetAlertCreate.model_json_schema()}}}}


@router.post("", status_code=201, openapi_extra=CREATE_BODY)
async def create_budget_alert_route(tenant_id: TenantId, request: Request, session: SessionDep, state: StateDep,
                                    actor: AdminActorDep) -> JSONResponse:
    """Register a webhook for the tenant's (or one key's) budget thresholds (default 50, 80 and 100 %)."""
    return await add_alert(tenant_id, request, session, state, actor.id)


@router.get("")
async def read_budget_alerts(tenant_id: TenantId, session: SessionDep) -> dict[str, object]:
    await get_tenant(session, tenant_id)
    return await render_alerts(session, tenant_id)


@router.delete("/{alert_id}")
async def delete_budget_alert_route(tenant_id: TenantId, alert_id: AlertId, session: SessionDep, state: StateDep,
                                    actor: AdminActorDep) -> dict[str, object]:
    return await remove_alert(tenant_id, alert_id, session, state, actor.id)


async def add_alert(tenant_id: str, request: Request, session: SessionDep, state: StateDep,
                    actor_id: str) -> JSONResponse:
    """Validate, store and audit a new alert in one transaction, then mirror the tenant's alerts to Redis
    (also the tenant's own route, api/routes/budget_alerts.py)."""
    try:
        body = BudgetAlertCreate.model_validate(await read_json_object(request, state.settings.max_body_bytes))
    except ValidationError as exc:
        raise InvalidRequest(f"Invalid budget alert: {validation_problems(exc)}") from exc
    thresholds = parse_thresholds(body.thresholds)
    alert = await create_budget_alert(session, tenant_id, body.url, thresholds, key_id=body.key_id,
                                      allow_private=state.settings.webhooks_allow_private)
    rendered = render_budget_alert(alert)
    await record_admin_action(session, actor=actor_id, action="budget_alert.created", target_type="budget_alert",
                              target_id=alert.id, before=None, after=rendered)
    await session.commit()
    await mirror_budget_alerts(state.shards.for_tenant(tenant_id).redis, session, tenant_id, datetime.now(UTC),
                               key_id=body.key_id)
    return JSONResponse(rendered, status_code=201)


async def render_alerts(session: SessionDep, tenant_id: str) -> dict[str, object]:
    alerts = await list_budget_alerts(session, tenant_id)
    return {"object": "list", "data": [render_budget_alert(alert) for alert in alerts]}


async def remove_alert(tenant_id: str, alert_id: str, session: SessionDep, state: StateDep,
                       actor_id: str) -> dict[str, object]:
    alert = await delete_budget_alert(session, tenant_id, alert_id)
    key_id = alert.key_id
    await record_admin_action(session, actor=actor_id, action="budget_alert.deleted", target_type="budget_alert",
                              target_id=alert_id, before=render_budget_alert(alert), after=None)
    await session.commit()
    await mirror_budget_alerts(state.shards.for_tenant(tenant_id).redis, session, tenant_id, datetime.now(UTC),
                               key_id=key_id)
    return {"id": alert_id, "object": "budget_alert", "deleted": True}
