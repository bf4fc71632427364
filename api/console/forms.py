"""HTML form fields to the admin API's own models: tenant names and limits are checked by the same
`TenantCreate` / `BoundedLimits` as `POST` / `PATCH /api/v1/admin/tenants`, with the same messages. In a form,
an empty number field means "no limit", as `null` does in the API."""

from collections.abc import Mapping

from pydantic import ValidationError

from api.routes.admin import BoundedLimits, TenantCreate
from shared.errors import InvalidRequest
from shared.tenants import parse_limits, validation_problems

INT_FIELDS = ("rate_limit", "tpm_limit", "max_concurrent", "weight", "max_running")
LIMIT_FIELDS = (*INT_FIELDS, "budget_usd", "budget_period")


def limits_from_form(form: Mapping[str, object]) -> BoundedLimits:
    data = _limit_values(form)
    parse_limits(data)  # the shared checks and their messages first
    try:
        return BoundedLimits.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"Invalid tenant limits: {validation_problems(exc)}") from exc


def tenant_from_form(form: Mapping[str, object]) -> TenantCreate:
    data = {name: value for name, value in _limit_values(form).items() if value is not None}
    try:
        return TenantCreate.model_validate({"name": _text(form, "name").strip(), **data})
    except ValidationError as exc:
        raise InvalidRequest(f"Invalid tenant: {validation_problems(exc)}") from exc


def _limit_values(form: Mapping[str, object]) -> dict[str, object]:
    data: dict[str, object] = {}
    for name in INT_FIELDS:
        data[name] = _number(form, name, int)
    data["budget_usd"] = _number(form, "budget_usd", float)
    period = _text(form, "budget_period").strip()
    if period:
        data["budget_period"] = period
    return data


def _number(form: Mapping[str, object], name: str, kind: type[int] | type[float]) -> int | float | None:
    raw = _text(form, name).strip().replace(",", "")
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError as exc:
        raise InvalidRequest(f"Invalid tenant limits: {name}: {raw[:40]!r} is not a number") from exc


def _text(form: Mapping[str, object], name: str) -> str:
    value = form.get(name, "")
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a text field")
    return value
