"""The gateway's database tables: tenants, their API keys, one usage record per finished job, and governance
(admin keys with roles, the audit log of admin actions, budget-alert webhooks).
Only portable column types are used so the same schema runs on PostgreSQL and on embedded SQLite."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

__all__ = [
    "NAMING_CONVENTION",
    "TAGS_TYPE",
    "AdminKey",
    "ApiKey",
    "AuditEntry",
    "BudgetAlert",
    "BudgetAlertSent",
    "RequestContent",
    "Tenant",
    "UTCDateTime",
    "UsageRecord",
    "utc_now",
]

# Deterministic constraint names let Alembic (and SQLite batch mode) find constraints again later.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# Must be set before the tables below are declared: names are assigned when constraints attach.
SQLModel.metadata.naming_convention = NAMING_CONVENTION


# JSON on SQLite (the embedded mode; filtered with json_extract), JSONB on PostgreSQL so a GIN index serves
# `tags @> {...}` filters. Also the type of stored request content.
TAGS_TYPE = JSON().with_variant(JSONB(), "postgresql")


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite has no timezone support and returns naive values; normalising here keeps both backends alike.
    A naive value written is taken to be UTC already."""

    impl = DateTime(timezone=True)
    cache_ok = True

    @staticmethod
    def _as_utc(value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return self._as_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return self._as_utc(value)


class Tenant(SQLModel, table=True):
    """A customer of the gateway. `rate_limit` is requests per minute; None means the configured default."""

    __tablename__ = "tenant"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(unique=True, max_length=100)
    rate_limit: int | None = Field(default=None)
    tpm_limit: int | None = Field(default=None)
    max_concurrent: int | None = Field(default=None)
    budget_usd: float | None = Field(default=None)
    budget_period: str = Field(default="monthly", max_length=16)
    weight: int | None = Field(default=None)
    max_running: int | None = Field(default=None)
    # Model names or fnmatch globs this tenant may call; None: every routed model (issue 15).
    allowed_models: list[str] | None = Field(default=None, sa_type=JSON)
    disabled: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    log_content_days: int | None = Field(default=None)
    """Days each request's prompt and answer text are kept (`RequestContent`); None: never stored."""


class ApiKey(SQLModel, table=True):
    """A tenant's API key, stored only as the SHA-256 hex of the plain key; `key_prefix` is for display.
    A tenant has any number of named keys (issue 15), each with optional scopes: the models and endpoints it
    may call (None: all) and limits of its own that apply inside the tenant's."""

    __tablename__ = "api_key"

    id: str = Field(primary_key=True, max_length=32)
    tenant_id: str = Field(foreign_key="tenant.id", ondelete="CASCADE", index=True, max_length=32)
    key_hash: str = Field(unique=True, index=True, max_length=64)
    key_prefix: str = Field(max_length=12)
    name: str = Field(default="default", max_length=100)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Written at most once a minute per key (shared/key_usage.py), not on every request.
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    allowed_models: list[str] | None = Field(default=None, sa_type=JSON)
    allowed_endpoints: list[str] | None = Field(default=None, sa_type=JSON)
    rate_limit: int | None = Field(default=None)
    tpm_limit: int | None = Field(default=None)
    max_concurrent: int | None = Field(default=None)
    budget_usd: float | None = Field(default=None)
    budget_period: str = Field(default="monthly", max_length=16)
    # May manage its own tenant's keys in the console (issue 16): issue keys within its own scopes, revoke keys.
    manage: bool = Field(default=False)


class UsageRecord(SQLModel, table=True):
    """What one job consumed. `request_id` is the job id and is unique, which makes inserts idempotent.

    On PostgreSQL the table is partitioned by month on `created_at` (migration 0010, shared/db/pg_partitions.py),
    and a partitioned table's unique keys must hold the partition key: there the primary key is (id, created_at)
    and the idempotency key (request_id, created_at), which a job's row meets on every delivery since its
    `created_at` is fixed once (worker/usage_writer.py). The model, shared with SQLite, declares the plain keys.
    `request_content` is not partitioned: its rows expire per tenant (`expires_at`), not per month."""

    __tablename__ = "usage_record"

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(unique=True)
    tenant_id: str = Field(index=True)
    public_model: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: int
    status: str
    error_code: str | None = Field(default=None)
    fallback_used: bool = Field(default=False)
    cache_hit: bool = Field(default=False)
    saved_cost_usd: float = Field(default=0.0)
    cached_prompt_tokens: int = Field(default=0)
    dropped_params: str = Field(default="")
    """Request parameters the serving target left out because dropping was allowed, comma-separated."""
    endpoint: str = Field(default="chat", max_length=16)
    """The kind of provider call (`shared.endpoint.Endpoint`): chat, embeddings, completions, count_tokens."""
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, index=True)
    key_id: str | None = Field(default=None, max_length=64)
    """The API key that authenticated the request (issue 15); None for rows from before key ids."""
    end_user: str | None = Field(default=None, max_length=256)
    """The client's end user: `x-gateway-user`, else the request's `user` / `metadata.user_id`."""
    tags: dict[str, str] = Field(default_factory=dict, sa_column=Column(TAGS_TYPE, nullable=False, server_default="{}"))
    """Tag key -> value (`x-gateway-tags`, OpenAI `metadata`): JSONB with a GIN index on PostgreSQL."""

    __table_args__ = (
        Index("ix_usage_record_tenant_key", "tenant_id", "key_id"),
        Index("ix_usage_record_tenant_user", "tenant_id", "end_user"),
        Index("ix_usage_record_tags", "tags", postgresql_using="gin"),
    )


class RequestContent(SQLModel, table=True):
    """The prompt and answer text of one request, kept only for a tenant that opted in (`log_content_days`)
    and deleted at `expires_at`. Apart from the usage table, so the request log stays small and its
    retention is the tenant's own."""

    __tablename__ = "request_content"

    request_id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(index=True, max_length=32)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    request: dict[str, Any] = Field(default_factory=dict, sa_column=Column(TAGS_TYPE, nullable=False))
    """The request as the job ran it (the gateway's internal model, as JSON)."""
    answer: str = Field(default="")
    """The answer's text; empty for a failed request or an answer without text (embeddings)."""


class AdminKey(SQLModel, table=True):
    """A credential for the admin API with a role (`admin` may write, `viewer` only reads); stored, like
    tenant keys, only as the SHA-256 hex of the plain key. Deleting one stamps `revoked_at`, so the audit
    log's actor ids keep meaning something."""

    __tablename__ = "admin_key"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100, index=True)
    role: str = Field(max_length=16)
    key_hash: str = Field(unique=True, index=True, max_length=64)
    key_prefix: str = Field(max_length=12)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuditEntry(SQLModel, table=True):
    """One admin action: who (`actor`: an admin key's id, or `bootstrap` for ADMIN_API_KEY), what (`action`
    on `target_type`/`target_id`), the target before and after as JSON text (never a secret), and when."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, index=True)
    actor: str = Field(max_length=100, index=True)
    action: str = Field(max_length=64, index=True)
    target_type: str = Field(max_length=32)
    target_id: str = Field(max_length=100, index=True)
    before: str | None = Field(default=None)
    after: str | None = Field(default=None)


class BudgetAlert(SQLModel, table=True):
    """A webhook called once per threshold (percent of the budget) per budget period: of the tenant's budget
    when `key_id` is None, else of that API key's own budget."""

    __tablename__ = "budget_alert"

    id: str = Field(primary_key=True, max_length=32)
    tenant_id: str = Field(foreign_key="tenant.id", ondelete="CASCADE", index=True, max_length=32)
    key_id: str | None = Field(default=None, max_length=32)
    url: str = Field(max_length=2048)
    thresholds: str = Field(max_length=200)
    """Percentages of the budget, ascending and comma-separated, e.g. `50,80,100`."""
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class BudgetAlertSent(SQLModel, table=True):
    """A threshold of an alert already sent in a budget period, for a budget amount: the durable copy of the
    Redis set that makes each one go once, from which a worker restores that set when Redis lost it
    (shared/budget_alert_check.py). Written by the worker that queued the webhook."""

    __tablename__ = "budget_alert_sent"

    alert_id: str = Field(foreign_key="budget_alert.id", ondelete="CASCADE", primary_key=True, max_length=32)
    period_id: str = Field(primary_key=True, max_length=16)
    threshold_pct: int = Field(primary_key=True)
    budget_micros: int = Field(primary_key=True, sa_type=BigInteger)
    sent_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
