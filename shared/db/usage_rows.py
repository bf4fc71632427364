"""What a usage row is, independent of how it is written: its columns, and the checks and defaults every
writer applies before inserting it. Kept free of SQLAlchemy and SQLModel on purpose: the worker's PostgreSQL
sink (shared/db/pg_usage.py) writes rows over plain asyncpg and must not load them (~30 MiB per process),
while `insert_usage` (shared/db/usage.py) uses the same rules, so both backends store identical values."""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from shared.endpoint import Endpoint

__all__ = ["CONTENT_COLUMNS", "OPTIONAL_COLUMNS", "REQUIRED_COLUMNS", "USAGE_COLUMNS", "content_rows",
           "normalise_usage_row"]

REQUIRED_COLUMNS = (
    "request_id", "tenant_id", "public_model", "provider", "model", "prompt_tokens", "completion_tokens",
    "cost_usd", "latency_ms", "status",
)
# Filled in with a default when a row lacks them (see `normalise_usage_row`).
OPTIONAL_COLUMNS = ("error_code", "fallback_used", "cache_hit", "saved_cost_usd", "cached_prompt_tokens",
                    "dropped_params", "endpoint", "created_at", "key_id", "end_user", "tags")
# Every key of a normalised row, in this order.
USAGE_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
ENDPOINTS = frozenset(endpoint.value for endpoint in Endpoint)
# The request_content table (opt-in prompt and answer text), in this order.
CONTENT_COLUMNS = ("request_id", "tenant_id", "created_at", "expires_at", "request", "answer")


def _created_at(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    raise ValueError(f"created_at must be a datetime, an epoch number or an ISO string, not {value!r}")


def _dropped_params(value: object) -> str:
    """Comma-separated parameter names ('' for none); a list of names is joined (rows written by hand)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple) and all(isinstance(name, str) for name in value):
        return ",".join(value)
    if not isinstance(value, str):
        raise ValueError(f"dropped_params must be a comma-separated string, not {value!r}")
    return value


def _endpoint(value: object) -> str:
    """One of `Endpoint`'s values; a row without one was written before job kinds, by a chat job."""
    if value is None:
        return Endpoint.CHAT.value
    if not isinstance(value, str) or value not in ENDPOINTS:
        raise ValueError(f"endpoint must be one of {', '.join(sorted(ENDPOINTS))}, not {value!r}")
    return value


def _optional_str(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise ValueError(f"{name} must be a string, not {value!r}")


def _tags(value: object) -> dict[str, str]:
    """Tag key -> value (shared/attribution.py); rows from before attribution have none."""
    if value is None:
        return {}
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return dict(value)
    raise ValueError(f"tags must map strings to strings, not {value!r}")


def normalise_usage_row(row: Mapping[str, object], now: datetime) -> dict[str, object]:
    """Every row gets the same keys (USAGE_COLUMNS), as a multi-row insert needs; unknown keys are dropped.
    A malformed row raises ValueError or TypeError, which the usage writer treats as a poison row."""
    missing = [name for name in REQUIRED_COLUMNS if row.get(name) is None]
    if missing:
        raise ValueError(f"usage row {row.get('request_id')!r} lacks {', '.join(missing)}")
    values = {name: row[name] for name in REQUIRED_COLUMNS}
    values["error_code"] = row.get("error_code")
    values["fallback_used"] = bool(row.get("fallback_used", False))
    values["cache_hit"] = bool(row.get("cache_hit", False))
    values["saved_cost_usd"] = float(row.get("saved_cost_usd") or 0.0)  # type: ignore[arg-type]
    values["cached_prompt_tokens"] = int(row.get("cached_prompt_tokens") or 0)  # type: ignore[call-overload]
    values["dropped_params"] = _dropped_params(row.get("dropped_params"))
    values["endpoint"] = _endpoint(row.get("endpoint"))
    values["key_id"] = _optional_str(row.get("key_id"), "key_id")
    values["end_user"] = _optional_str(row.get("end_user"), "end_user")
    values["tags"] = _tags(row.get("tags"))
    created = row.get("created_at")
    values["created_at"] = now if created is None else _created_at(created)
    return values


def content_rows(rows: Sequence[Mapping[str, object]], now: datetime) -> list[dict[str, object]]:
    """The request_content rows of the usage rows that carry `content` (a tenant that opted in, see
    `shared.jobs.usage_row`): {"request": {...}, "answer": "...", "expires_at": epoch seconds}."""
    found: list[dict[str, object]] = []
    for row in rows:
        content = row.get("content")
        if content is None:
            continue
        if not isinstance(content, Mapping) or not isinstance(content.get("request"), dict) \
                or not isinstance(content.get("answer"), str):
            raise ValueError(f"usage row {row.get('request_id')!r} has malformed content")
        created = row.get("created_at")
        found.append({"request_id": row["request_id"], "tenant_id": row["tenant_id"],
                      "created_at": now if created is None else _created_at(created),
                      "expires_at": _created_at(content.get("expires_at")), "request": content["request"],
                      "answer": content["answer"]})
    return found
