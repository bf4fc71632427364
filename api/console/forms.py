"""HTML form fields to the admin API's own models: tenant names and limits are checked by the same
`TenantCreate` / `BoundedLimits` as `POST` / `PATCH /api/v1/admin/tenants`, a key's name and scopes by the same
`KeyCreate` as `POST /api/v1/admin/tenants/{id}/keys`, with the same messages. In a form, an empty field means
"no limit" (or "no restriction"), as `null` does in the API."""

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from pydantic import ValidationError

from api.routes.admin import BoundedLimits, TenantCreate
from shared.api_keys import KeyCreate, parse_key
from shared.errors import InvalidRequest
from shared.tenants import parse_limits, validation_problems

INT_FIELDS = ("rate_limit", "tpm_limit", "max_concurrent", "weight", "max_running", "log_content_days")
LIMIT_FIELDS = (*INT_FIELDS, "budget_usd", "budget_period", "allowed_models")
PERIODS = ("monthly", "weekly", "daily", "none")  # shared.tenants.BudgetPeriod, in the order a form offers them
KEY_INT_FIELDS = ("rate_limit", "tpm_limit", "max_concurrent")
PATTERN_SEPARATORS = re.compile(r"[,\s]+")


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


def key_from_form(form: Mapping[str, object], endpoints: list[str]) -> KeyCreate:
    """A new key's name and scopes: models as names or globs separated by commas or lines, the ticked
    endpoints (none ticked: every endpoint), limits, a budget, an expiry in UTC, and the `manage` scope."""
    data: dict[str, object] = {"name": _text(form, "name").strip()}
    for name in KEY_INT_FIELDS:
        data[name] = _number(form, name, int, "Invalid API key")
    data["budget_usd"] = _number(form, "budget_usd", float, "Invalid API key")
    period = _text(form, "budget_period").strip()
    if period:
        data["budget_period"] = period
    data["allowed_models"] = _patterns(form)
    data["allowed_endpoints"] = endpoints or None
    data["expires_at"] = parse_utc_time(_text(form, "expires_at"), "expires_at")
    data["manage"] = _text(form, "manage") == "true"  # a checkbox: sent only when ticked
    return parse_key(data, KeyCreate)


def parse_utc_time(raw: str, name: str) -> datetime | None:
    """A time from a form: ISO 8601, as a `datetime-local` field sends it (taken as UTC, which the page says),
    or with its own zone; empty means none."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidRequest(f"{name}: {raw[:40]!r} is not a time such as 2030-01-31T18:00") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _limit_values(form: Mapping[str, object]) -> dict[str, object]:
    data: dict[str, object] = {}
    for name in INT_FIELDS:
        data[name] = _number(form, name, int)
    data["budget_usd"] = _number(form, "budget_usd", float)
    period = _text(form, "budget_period").strip()
    if period:
        data["budget_period"] = period
    data["allowed_models"] = _patterns(form)
    return data


def _patterns(form: Mapping[str, object]) -> list[str] | None:
    """Model names or globs, separated by commas or lines; none given: no restriction."""
    return [item for item in PATTERN_SEPARATORS.split(_text(form, "allowed_models")) if item] or None


def _number(form: Mapping[str, object], name: str, kind: type[int] | type[float],
            what: str = "Invalid tenant limits") -> int | float | None:
    raw = _text(form, name).strip().replace(",", "")
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError as exc:
        raise InvalidRequest(f"{what}: {name}: {raw[:40]!r} is not a number") from exc


def _text(form: Mapping[str, object], name: str) -> str:
    value = form.get(name, "")
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a text field")
    return value
