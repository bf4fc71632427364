"""A tenant's named API keys and their scopes (issue 15): the models (names or fnmatch globs) and endpoints a
key may call, an optional expiry, and limits and a budget of its own that apply inside the tenant's (counted
in Redis under the key's id, which never collides with a tenant's). Used by the admin API and the CLI; the
plain key is shown once, when issued. Callers that change a key must invalidate its tenant's cached
snapshots (`shared.tenant_cache`), so the change reaches every API process at once."""

from collections.abc import Mapping
from datetime import datetime
from fnmatch import fnmatchcase
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.audit import record_admin_action
from shared.db.tables import ApiKey, Tenant, utc_now
from shared.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from shared.tenant_cache import TenantSnapshot
from shared.tenants import BudgetPeriod, get_tenant, hash_key, new_api_key, validation_problems

__all__ = [
    "KEY_ENDPOINTS",
    "KeyCreate",
    "KeyScopes",
    "authenticate_key",
    "check_model_access",
    "create_key",
    "endpoint_for_path",
    "get_key",
    "list_keys",
    "model_allowed",
    "parse_key",
    "render_key",
    "revoke_key",
    "update_key",
    "visible_models",
]

KEY_ENDPOINTS = ("chat", "messages", "responses", "embeddings", "completions", "count_tokens", "jobs", "models")
MAX_PATTERNS = 100
MAX_INT_LIMIT = 2**31 - 1  # the database's INTEGER columns
MAX_BUDGET_USD = 1e9  # keeps micro-dollars exact in Redis's Lua numbers

# Route path prefixes and the endpoint scope they need, most specific first. `/api/v1/usage` needs none.
_PATH_ENDPOINTS = (
    ("/v1/chat/completions", "chat"), ("/api/v1/completions", "chat"), ("/v1/messages/count_tokens", "count_tokens"),
    ("/v1/messages", "messages"), ("/v1/responses", "responses"), ("/v1/embeddings", "embeddings"),
    ("/v1/completions", "completions"), ("/api/v1/jobs", "jobs"), ("/v1/models", "models"),
)


class KeyScopes(BaseModel):
    """What a key may do. None means unrestricted (for limits: only the tenant's apply). On an update only the
    fields set explicitly change, so `{"expires_at": null}` removes an expiry."""

    model_config = ConfigDict(extra="forbid")

    expires_at: datetime | None = None
    allowed_models: list[str] | None = Field(default=None, max_length=MAX_PATTERNS)
    allowed_endpoints: list[str] | None = Field(default=None, max_length=len(KEY_ENDPOINTS))
    rate_limit: int | None = Field(default=None, ge=0, le=MAX_INT_LIMIT, strict=True)
    tpm_limit: int | None = Field(default=None, ge=0, le=MAX_INT_LIMIT, strict=True)
    max_concurrent: int | None = Field(default=None, ge=1, le=MAX_INT_LIMIT, strict=True)
    budget_usd: float | None = Field(default=None, ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False)
    budget_period: BudgetPeriod = "monthly"
    # Whether the key may manage its own tenant's keys in the console (issue 16; shared/key_grants.py).
    manage: bool = Field(default=False, strict=True)

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a timezone, e.g. 2027-01-01T00:00:00Z")
        return value

    @field_validator("allowed_models")
    @classmethod
    def _patterns(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not item.strip() or len(item) > 200 for item in value):
            raise ValueError("each model name or glob must be 1 to 200 characters")
        return value

    @field_validator("allowed_endpoints")
    @classmethod
    def _endpoints(cls, value: list[str] | None) -> list[str] | None:
        unknown = sorted(set(value or ()) - set(KEY_ENDPOINTS))
        if unknown:
            raise ValueError(f"unknown endpoint(s) {', '.join(unknown)}; known: {', '.join(KEY_ENDPOINTS)}")
        return value


class KeyCreate(KeyScopes):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


Scopes = TypeVar("Scopes", bound=KeyScopes)


def parse_key(data: Mapping[str, object], model: type[Scopes]) -> Scopes:
    """Validate untyped input (a JSON body, CLI options); raises InvalidRequest naming every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"Invalid API key: {validation_problems(exc)}") from exc


def model_allowed(patterns: list[str] | None, model: str) -> bool:
    """Whether `model` matches one of the names or globs (None: every model). Case-sensitive, as routes are."""
    return patterns is None or any(fnmatchcase(model, pattern) for pattern in patterns)


def endpoint_for_path(path: str) -> str | None:
    """The endpoint scope a route path needs, None for routes every key may call."""
    for prefix, endpoint in _PATH_ENDPOINTS:
        if path == prefix or path.startswith(prefix + "/"):
            return endpoint
    return None


async def create_key(session: AsyncSession, tenant_id: str, params: KeyCreate, *, actor: str
                     ) -> tuple[ApiKey, str]:
    """Issue a named key with its scopes and commit it with its audit entry (by `actor`); returns the key and the
    plain key (shown only now)."""
    await get_tenant(session, tenant_id)
    await _check_name_free(session, tenant_id, params.name)
    row, plain = new_api_key(tenant_id, params.name)
    for field, value in params.model_dump(exclude={"name"}).items():
        setattr(row, field, value)
    session.add(row)
    try:
        await session.flush()
        await _audit(session, actor, "key.created", row, None)
        await session.commit()
    except IntegrityError as exc:  # pragma: no cover - a 256-bit hash collision
        await session.rollback()
        raise Conflict("the key could not be stored; retry") from exc
    await session.refresh(row)
    return row, plain


async def list_keys(session: AsyncSession, tenant_id: str, *, include_revoked: bool = False) -> list[ApiKey]:
    """The tenant's keys, oldest first; revoked ones only when asked."""
    await get_tenant(session, tenant_id)
    statement = select(ApiKey).where(col(ApiKey.tenant_id) == tenant_id)
    if not include_revoked:
        statement = statement.where(col(ApiKey.revoked_at).is_(None))
    return list((await session.exec(statement.order_by(col(ApiKey.created_at), col(ApiKey.id)))).all())


async def get_key(session: AsyncSession, tenant_id: str, key_id: str) -> ApiKey:
    """The tenant's key with this id, revoked or not; raises NotFound."""
    key = await session.get(ApiKey, key_id)
    if key is None or key.tenant_id != tenant_id:
        raise NotFound(f"key {key_id!r} of tenant {tenant_id!r} not found")
    return key


async def update_key(session: AsyncSession, tenant_id: str, key_id: str, changes: KeyScopes, *,
                     actor: str) -> ApiKey:
    """Apply the scopes set explicitly in `changes` to an active key and commit it with its audit entry (by
    `actor`); NotFound for a revoked one."""
    key = await _active_key(session, tenant_id, key_id)
    before = render_key(key)
    for field in changes.model_fields_set:
        setattr(key, field, getattr(changes, field))
    session.add(key)
    await session.flush()
    await _audit(session, actor, "key.updated", key, before)
    await session.commit()
    await session.refresh(key)
    return key


async def revoke_key(session: AsyncSession, tenant_id: str, key_id: str, *, actor: str) -> ApiKey:
    """Revoke an active key and commit it with its audit entry (by `actor`); NotFound when it is unknown or
    already revoked."""
    key = await _active_key(session, tenant_id, key_id)
    before = render_key(key)
    key.revoked_at = utc_now()
    session.add(key)
    await session.flush()
    await _audit(session, actor, "key.revoked", key, before)
    await session.commit()
    await session.refresh(key)
    return key


async def authenticate_key(session: AsyncSession, plain_key: str) -> tuple[Tenant, ApiKey] | None:
    """The tenant and the unrevoked key row of this plain key (expired or not: the caller says why it fails)."""
    statement = (
        select(Tenant, ApiKey)
        .join(ApiKey, col(ApiKey.tenant_id) == col(Tenant.id))
        .where(col(ApiKey.key_hash) == hash_key(plain_key), col(ApiKey.revoked_at).is_(None))
    )
    row = (await session.exec(statement)).first()
    return (row[0], row[1]) if row is not None else None


def render_key(key: ApiKey) -> dict[str, object]:
    """A key as the admin API, the CLI and the audit log show it: never its hash, only the plain key's prefix."""
    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": key.id, "object": "api_key", "tenant_id": key.tenant_id, "name": key.name, "prefix": key.key_prefix,
        "created_at": when(key.created_at), "expires_at": when(key.expires_at),
        "last_used_at": when(key.last_used_at), "revoked_at": when(key.revoked_at),
        "allowed_models": key.allowed_models, "allowed_endpoints": key.allowed_endpoints,
        "rate_limit": key.rate_limit, "tpm_limit": key.tpm_limit, "max_concurrent": key.max_concurrent,
        "budget_usd": key.budget_usd, "budget_period": key.budget_period, "manage": key.manage,
    }


async def _audit(session: AsyncSession, actor: str, action: str, key: ApiKey,
                 before: dict[str, object] | None) -> None:
    """The change's audit entry, in its transaction. `last_used_at` is left out: it moves with traffic, not
    with the change, and would show a difference nobody made."""
    def state(data: dict[str, object] | None) -> dict[str, object] | None:
        return None if data is None else {name: value for name, value in data.items() if name != "last_used_at"}

    await record_admin_action(session, actor=actor, action=action, target_type="api_key", target_id=key.id,
                              before=state(before), after=state(render_key(key)))


async def _active_key(session: AsyncSession, tenant_id: str, key_id: str) -> ApiKey:
    key = await get_key(session, tenant_id, key_id)
    if key.revoked_at is not None:
        raise NotFound(f"key {key_id!r} of tenant {tenant_id!r} is revoked")
    return key


async def _check_name_free(session: AsyncSession, tenant_id: str, name: str) -> None:
    statement = select(ApiKey.id).where(col(ApiKey.tenant_id) == tenant_id, col(ApiKey.name) == name,
                                        col(ApiKey.revoked_at).is_(None))
    if (await session.exec(statement)).first() is not None:
        raise Conflict(f"tenant {tenant_id!r} already has an active key named {name!r}")


def check_model_access(tenant: TenantSnapshot, model: str) -> None:
    """Refuse (403 `model_not_allowed`) a model outside the tenant's or the key's allow-list."""
    for patterns, whose in ((tenant.allowed_models, "tenant"), (tenant.key.allowed_models, "API key")):
        if not model_allowed(patterns, model):
            raise PermissionDenied(f"The model '{model}' is not allowed for this {whose}",
                                   code="model_not_allowed")


def visible_models(tenant: TenantSnapshot, names: list[str]) -> list[str]:
    """The names the tenant's key may call, in their order (`GET /v1/models`)."""
    return [name for name in names
            if model_allowed(tenant.allowed_models, name) and model_allowed(tenant.key.allowed_models, name)]
