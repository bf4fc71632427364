"""Tenants, their limits and their API keys; used by the admin API and the CLI. A plain key is shown once,
when issued, and stored only as its SHA-256 hex: keys are 256-bit random, so a fast unsalted hash is enough
and lets authentication be one indexed lookup. Callers that change a tenant must invalidate its cached
snapshot (`shared.tenant_cache`)."""

import hashlib
import secrets
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.tables import ApiKey, Tenant, utc_now
from shared.errors import Conflict, InvalidRequest, NotFound

__all__ = [
    "KEY_PREFIX",
    "MAX_NAME_LENGTH",
    "BudgetPeriod",
    "TenantLimits",
    "authenticate",
    "create_tenant",
    "generate_key",
    "get_tenant",
    "hash_key",
    "list_tenants",
    "new_api_key",
    "parse_limits",
    "rotate_key",
    "set_tenant_disabled",
    "update_tenant",
    "validation_problems",
]

KEY_PREFIX = "gw-"
MAX_NAME_LENGTH = 100
DISPLAY_PREFIX_LENGTH = 12
DEFAULT_KEY_NAME = "default"  # the key a tenant is created with; `rotate_key` replaces it (issue 15)
SCOPE_FIELDS = ("expires_at", "allowed_models", "allowed_endpoints", "rate_limit", "tpm_limit", "max_concurrent",
                "budget_usd", "budget_period")


BudgetPeriod = Literal["monthly", "weekly", "daily", "none"]
MAX_WEIGHT = 1000
MAX_CONTENT_DAYS = 365


class TenantLimits(BaseModel):
    """A tenant's limits. None means no limit of that kind (for `rate_limit`: the configured default).
    Only the fields a caller set explicitly are applied, so `{"budget_usd": null}` clears a budget."""

    model_config = ConfigDict(extra="forbid")

    rate_limit: int | None = Field(default=None, ge=0, strict=True, description="requests per minute")
    tpm_limit: int | None = Field(default=None, ge=0, strict=True, description="tokens per minute")
    max_concurrent: int | None = Field(default=None, ge=1, strict=True, description="requests in flight")
    budget_usd: float | None = Field(default=None, ge=0, strict=True, allow_inf_nan=False)
    budget_period: BudgetPeriod = "monthly"
    # Fair scheduling (shared/fair_queue.py): share of the workers among tenants with queued jobs, and a cap
    # on the tenant's running jobs (jobs over it wait in the queue, they are not refused).
    weight: int | None = Field(default=None, ge=1, le=MAX_WEIGHT, strict=True,
                               description="share of workers among busy tenants (default 1)")
    max_running: int | None = Field(default=None, ge=1, strict=True, description="jobs running at once")
    # Model names or fnmatch globs the tenant may call (issue 15); None: every routed model.
    allowed_models: list[str] | None = Field(default=None, max_length=100)

    @field_validator("allowed_models")
    @classmethod
    def _patterns(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not item.strip() or len(item) > 200 for item in value):
            raise ValueError("each model name or glob must be 1 to 200 characters")
        return value
    # Opt-in request log content (issue 15): keep each request's prompt and answer text this many days.
    log_content_days: int | None = Field(default=None, ge=1, le=MAX_CONTENT_DAYS, strict=True,
                                         description="days prompt and answer text are kept (unset: never stored)")


def parse_limits(data: Mapping[str, object], what: str = "tenant limits") -> TenantLimits:
    """Validate untyped input (a JSON body, CLI options); raises InvalidRequest naming every bad field."""
    try:
        return TenantLimits.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"Invalid {what}: {validation_problems(exc)}") from exc


def validation_problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())


def generate_key() -> str:
    """A new plain API key: the `gw-` prefix and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(plain: str) -> str:
    """The stored form of a plain key (SHA-256, hex)."""
    return hashlib.sha256(plain.encode()).hexdigest()


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(8)


def new_api_key(tenant_id: str, name: str = DEFAULT_KEY_NAME) -> tuple[ApiKey, str]:
    """A new key row (not yet added to a session) and its plain key."""
    plain = generate_key()
    row = ApiKey(
        id=_new_id("key_"),
        tenant_id=tenant_id,
        key_hash=hash_key(plain),
        key_prefix=plain[:DISPLAY_PREFIX_LENGTH],
        name=name,
    )
    return row, plain


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"tenant name must be 1 to {MAX_NAME_LENGTH} characters")
    return name


async def create_tenant(
    session: AsyncSession, name: str, rate_limit: int | None = None, *, limits: TenantLimits | None = None,
    commit: bool = True,
) -> tuple[Tenant, str]:
    """Create a tenant with one API key and commit (or only flush, for a caller that audits the change in the
    same transaction); returns the tenant and the plain key (shown only now). `rate_limit`, when given, wins
    over `limits.rate_limit`."""
    name = _checked_name(name)
    if rate_limit is not None and rate_limit < 0:
        raise InvalidRequest("rate_limit must be >= 0")
    if (await session.exec(select(Tenant.id).where(Tenant.name == name))).first() is not None:
        raise Conflict(f"a tenant named {name!r} already exists")
    values = (limits or TenantLimits()).model_dump()
    if rate_limit is not None:
        values["rate_limit"] = rate_limit
    tenant = Tenant(id=_new_id("ten_"), name=name, **values)
    key, plain = new_api_key(tenant.id)
    try:
        # Insert the tenant first: the key's foreign key needs it, and the ORM does not know the link.
        session.add(tenant)
        await session.flush()
        session.add(key)
        await (session.commit() if commit else session.flush())
    except IntegrityError as exc:
        # Two concurrent creates with one name both pass the check above; the unique constraint decides.
        await session.rollback()
        raise Conflict(f"a tenant named {name!r} already exists") from exc
    if commit:
        await session.refresh(tenant)
    return tenant, plain


async def list_tenants(session: AsyncSession) -> list[Tenant]:
    """Every tenant, oldest first."""
    result = await session.exec(select(Tenant).order_by(col(Tenant.created_at), col(Tenant.name)))
    return list(result.all())


async def get_tenant(session: AsyncSession, tenant_id: str) -> Tenant:
    """The tenant with this id; raises NotFound."""
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"tenant {tenant_id!r} not found")
    return tenant


async def set_tenant_disabled(session: AsyncSession, tenant_id: str, disabled: bool, *,
                              commit: bool = True) -> Tenant:
    """Disable or re-enable a tenant and commit (or only flush); raises NotFound."""
    tenant = await get_tenant(session, tenant_id)
    tenant.disabled = disabled
    session.add(tenant)
    return await _saved(session, tenant, commit)


async def update_tenant(session: AsyncSession, tenant_id: str, changes: TenantLimits, *,
                        commit: bool = True) -> Tenant:
    """Apply the limits set explicitly in `changes` and commit (or only flush); raises NotFound."""
    tenant = await get_tenant(session, tenant_id)
    for field in changes.model_fields_set:
        setattr(tenant, field, getattr(changes, field))
    session.add(tenant)
    return await _saved(session, tenant, commit)


async def rotate_key(session: AsyncSession, tenant_id: str, *, commit: bool = True) -> str:
    """Replace the tenant's `default` key: revoke it and issue a new one with the same scopes, and commit (or
    only flush); returns the new plain key. The tenant's other named keys are left alone (issue 15)."""
    await get_tenant(session, tenant_id)
    old = (await session.exec(
        select(ApiKey).where(col(ApiKey.tenant_id) == tenant_id, col(ApiKey.name) == DEFAULT_KEY_NAME,
                             col(ApiKey.revoked_at).is_(None)).order_by(col(ApiKey.created_at).desc())
    )).first()
    await session.exec(
        update(ApiKey)
        .where(col(ApiKey.tenant_id) == tenant_id, col(ApiKey.name) == DEFAULT_KEY_NAME,
               col(ApiKey.revoked_at).is_(None))
        .values(revoked_at=utc_now())
    )
    key, plain = new_api_key(tenant_id)
    if old is not None:
        for field in SCOPE_FIELDS:
            setattr(key, field, getattr(old, field))
    session.add(key)
    await (session.commit() if commit else session.flush())
    return plain


async def authenticate(session: AsyncSession, plain_key: str) -> Tenant | None:
    """The tenant owning this active key, disabled or not (the caller decides); None if unknown, revoked or
    expired (the console's sign-in; the API's own check, which says why a key fails, is shared.api_keys)."""
    if not plain_key.startswith(KEY_PREFIX):
        return None
    statement = (
        select(Tenant)
        .join(ApiKey, col(ApiKey.tenant_id) == col(Tenant.id))
        .where(col(ApiKey.key_hash) == hash_key(plain_key), col(ApiKey.revoked_at).is_(None),
               or_(col(ApiKey.expires_at).is_(None), col(ApiKey.expires_at) > utc_now()))
    )
    return (await session.exec(statement)).first()


async def _saved(session: AsyncSession, tenant: Tenant, commit: bool) -> Tenant:
    """Commit and reload the tenant, or only flush it (the caller commits, after auditing the change)."""
    if not commit:
        await session.flush()
        return tenant
    await session.commit()
    await session.refresh(tenant)
    return tenant
