"""All configuration, read once from the environment (and `.env`). Nothing else reads `os.environ`.
A bad value stops start-up with pydantic's message, which names the variable."""

import os
import sys
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.shards import ShardSpec, parse_shards, shard_identity

__all__ = ["PLACEHOLDER_SECRETS", "Settings", "get_settings"]

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "your-secret-key", ""}


class Settings(BaseSettings):
    """Field names are the seed's variable names, lower-cased (pydantic-settings matches them case-blind)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Redis: REDIS_URL wins; REDIS_HOST/REDIS_PORT (the seed's) build one. Neither set -> embedded stand-in.
    redis_url: str | None = None
    redis_host: str | None = None
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_db: int = Field(default=0, ge=0)
    redis_max_connections: int = Field(default=1000, ge=10)
    # Sharding by tenant (docs/SHARDING.md): comma-separated Redis URLs, each optionally `name=URL`. Unset: one
    # shard, the Redis above (or the embedded stand-in). Changing the list moves tenants between shards.
    redis_shards: str | None = None
    # The shards (0-based positions in REDIS_SHARDS) a worker process serves, e.g. `0,2`; unset: all of them.
    worker_shards: str | None = None

    # Database: DATABASE_URL wins; POSTGRES_* (the seed's) build one. Neither set -> embedded SQLite.
    database_url: str | None = None
    postgres_host: str | None = None
    postgres_port: int = Field(default=5432, ge=1, le=65535)
    postgres_user: str = "postgres"
    postgres_password: str = ""
    postgres_db: str = "llm_gateway"
    sqlite_path: Path = Path("llm_gateway.db")

    secret_key: str = "dev-secret-key"
    # Console sign-in sessions end this long after sign-in (docs/CONSOLE.md).
    console_session_ttl_s: int = Field(default=8 * 3600, ge=60)
    admin_api_key: str | None = None
    environment: str = Field(default="development", pattern="^(development|production|test)$")

    openai_api_key: str | None = None
    anthropic_api_key: str | None = None
    openai_base_url: str | None = None
    anthropic_base_url: str | None = None
    routes_file: Path | None = None
    fake_provider_url: str | None = None
    # Where tiktoken keeps its rank files (tiktoken reads the same variable); unset: its default under the
    # temp dir. The gateway fills it from a package at first use, so nothing is downloaded (shared/tiktoken_files.py).
    tiktoken_cache_dir: Path | None = None
    data_gym_cache_dir: Path | None = None  # tiktoken's older name for the same directory

    default_rate_limit: int = Field(default=100, ge=0)
    cache_ttl: int = Field(default=3600, ge=0)
    log_level: str = Field(default="INFO", pattern="^(?i)(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    # Unset: text lines for a person at a terminal, JSON for whatever collects the logs (see resolved_log_format).
    log_format: str | None = Field(default=None, pattern="^(json|text)$")
    prometheus_multiproc_dir: str | None = None
    # Metrics have their own listeners, never the public API port: they name every tenant (docs/API.md, Metrics).
    metrics_host: str = "0.0.0.0"  # nosec B104 - a private port: Prometheus must reach it from another host
    api_metrics_port: int = Field(default=9101, ge=0, le=65535)
    worker_metrics_port: int = Field(default=9100, ge=0, le=65535)

    auth_cache_ttl_s: int = Field(default=60, ge=0)
    prices_file: Path | None = None
    unknown_model_pricing: str = Field(default="default", pattern="^(default|refuse)$")
    default_input_price_per_m: float = Field(default=10.0, ge=0)
    default_output_price_per_m: float = Field(default=30.0, ge=0)
    # Vision payloads: Anthropic takes requests up to 32 MB (images up to 5 MB each, PDFs up to 32 MB); see
    # docs/CONFIGURATION.md. Larger bodies get 413.
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_messages: int = Field(default=2048, ge=1)
    body_read_timeout_s: float = Field(default=30.0, gt=0)
    max_header_bytes: int = Field(default=16_384, ge=4096)
    keep_alive_timeout_s: int = Field(default=5, ge=1)
    # A request head (line and headers) not received this long after its first byte gets 408 (api/http_protocol.py).
    header_read_timeout_s: float = Field(default=10.0, gt=0)
    # Open client connections one API process keeps; past it a new connection gets 503 (0: no cap).
    max_connections: int = Field(default=4096, ge=0)
    request_timeout_s: float = Field(default=600.0, gt=0)
    # An attached stream's client went away: cancel its job (bill what was produced) or let it finish (bill all).
    stream_disconnect: str = Field(default="cancel", pattern="^(cancel|finish)$")
    upstream_timeout_s: float = Field(default=120.0, gt=0)
    max_attempts_per_target: int = Field(default=2, ge=1, le=10)
    retry_base_delay_s: float = Field(default=0.25, ge=0)
    retry_max_delay_s: float = Field(default=8.0, ge=0)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_open_s: float = Field(default=30.0, gt=0)

    queue_name: str = "gw:queue"
    worker_max_jobs: int = Field(default=200, ge=1)
    # Fallback only: the doorbell wakes workers at once on enqueue and cancel (worker/doorbell.py).
    worker_poll_delay_s: float = Field(default=0.5, gt=0)
    worker_job_timeout_s: float = Field(default=900.0, gt=0)
    worker_max_tries: int = Field(default=3, ge=1)
    # A running job's claim lasts this long and is renewed by its live worker (worker/lease.py).
    worker_lease_s: float = Field(default=15.0, ge=0.5)
    worker_heartbeat_s: float = Field(default=5.0, gt=0)
    # Retention of jobs: records, results, event streams and the tenant's job listing (docs/API.md, Jobs).
    job_ttl_s: int = Field(default=86_400, ge=60)
    # Retention of stored Responses (`store`, `previous_response_id`; docs/API.md, POST /v1/responses): 30 days.
    response_retention_s: int = Field(default=30 * 86_400, ge=60)
    # How long an Idempotency-Key names its job (never longer than the job is kept, JOB_TTL_S).
    idempotency_ttl_s: int = Field(default=86_400, ge=60)
    event_stream_maxlen: int = Field(default=20_000, ge=100)
    usage_batch_size: int = Field(default=500, ge=1)
    worker_drain_s: int = Field(default=25, ge=0)
    usage_flush_interval_s: float = Field(default=1.0, gt=0)
    # The request log is the usage table (shared/db/request_log.py): records older than this are pruned
    # (0 keeps them forever). At least 32 days, so a monthly budget is always seeded from its whole period.
    usage_retention_days: int = Field(default=400, ge=0)
    usage_prune_interval_s: float = Field(default=3600.0, gt=0)
    # Fair scheduling (shared/fair_queue.py): a batch job waiting longer than this is served as interactive.
    batch_max_wait_s: float = Field(default=30.0, gt=0)
    # Backpressure: with more jobs waiting than this, new batch jobs get 503 queue_full (0: never refuse).
    queue_max_depth: int = Field(default=10_000, ge=0)
    # Interactive requests are shed only above this depth; unset: twice QUEUE_MAX_DEPTH.
    queue_max_depth_interactive: int | None = Field(default=None, ge=0)
    # Slots of each worker that batch jobs may not take (kept for interactive ones); unset: WORKER_MAX_JOBS / 10.
    worker_interactive_slots: int | None = Field(default=None, ge=0)

    # Webhooks (worker/webhooks.py): a job's callback URL is POSTed the final job, signed with WEBHOOK_SECRET.
    # Unset secret: jobs with a callback URL are refused (400).
    webhook_secret: str | None = None
    # Unset: private, loopback and link-local targets are refused in production and allowed otherwise.
    webhook_allow_private: bool | None = None
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1, le=30)
    webhook_retry_base_s: float = Field(default=1.0, gt=0)
    webhook_retry_max_s: float = Field(default=300.0, gt=0)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("REDIS_URL must start with redis://, rediss:// or unix://")
        return value

    @field_validator("redis_shards")
    @classmethod
    def _check_redis_shards(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            parse_shards(value)  # raises ValueError naming the bad entry
            return value
        return None

    @field_validator("usage_retention_days")
    @classmethod
    def _check_retention(cls, value: int) -> int:
        if 0 < value < 32:
            raise ValueError("USAGE_RETENTION_DAYS must be 0 (keep) or at least 32: budgets are seeded from a month")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("DATABASE_URL must be postgresql+asyncpg://... or sqlite+aiosqlite://...")
        return value

    @model_validator(mode="after")
    def _check_shard_choice(self) -> "Settings":
        if self.redis_shards and (self.redis_url or self.redis_host):
            raise ValueError("Set REDIS_SHARDS or REDIS_URL/REDIS_HOST, not both: with shards, list every Redis "
                             "in REDIS_SHARDS")
        self.served_shards()  # raises ValueError for a bad WORKER_SHARDS
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> "Settings":
        if self.environment == "production":
            if self.secret_key.lower() in PLACEHOLDER_SECRETS or self.secret_key == "dev-secret-key":
                raise ValueError("SECRET_KEY must be set to a real secret in production")
            if not self.admin_api_key:
                raise ValueError("ADMIN_API_KEY must be set in production")
            if self.webhook_secret is not None and self.webhook_secret.lower() in PLACEHOLDER_SECRETS:
                raise ValueError("WEBHOOK_SECRET must be a real secret (or unset) in production")
        return self

    @property
    def resolved_redis_url(self) -> str | None:
        """The Redis to use, or None for the embedded in-process stand-in."""
        if self.redis_url:
            return self.redis_url
        if self.redis_host:
            return f"redis://{self.redis_host}:{self.redis_port}/{self.redis_db}"
        return None

    @property
    def shard_specs(self) -> tuple[ShardSpec, ...]:
        """The Redis shards: REDIS_SHARDS, else one shard at the single Redis; empty in embedded mode."""
        if self.redis_shards:
            return parse_shards(self.redis_shards)
        url = self.resolved_redis_url
        return () if url is None else (ShardSpec(index=0, name=shard_identity(url), url=url),)

    def served_shards(self) -> tuple[int, ...]:
        """WORKER_SHARDS as positions in the shard list (all of them when unset)."""
        count = max(1, len(self.shard_specs))
        if not self.worker_shards or not self.worker_shards.strip():
            return tuple(range(count))
        try:
            wanted = sorted({int(part) for part in self.worker_shards.split(",")})
        except ValueError:
            raise ValueError(f"WORKER_SHARDS must be comma-separated shard numbers, got {self.worker_shards!r}") \
                from None
        outside = [index for index in wanted if not 0 <= index < count]
        if outside:
            raise ValueError(f"WORKER_SHARDS names shard(s) {outside}, but there are {count} (0..{count - 1})")
        return tuple(wanted)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        if self.postgres_host:
            auth = self.postgres_user + (f":{self.postgres_password}" if self.postgres_password else "")
            return f"postgresql+asyncpg://{auth}@{self.postgres_host}:{self.postgres_port}/{self.postgres_db}"
        return f"sqlite+aiosqlite:///{self.sqlite_path}"

    def secret_from_env(self, name: str) -> str | None:
        """A provider key named by a route's `api_key_env`; read on use so rotated keys need no restart."""
        return os.environ.get(name) or None

    @property
    def webhooks_allow_private(self) -> bool:
        """Whether webhooks may target private, loopback or link-local addresses (see WEBHOOK_ALLOW_PRIVATE)."""
        if self.webhook_allow_private is None:
            return self.environment != "production"
        return self.webhook_allow_private

    @property
    def resolved_interactive_slots(self) -> int:
        """Interactive-only slots per worker; batch jobs always keep at least one slot."""
        wanted = self.worker_max_jobs // 10 if self.worker_interactive_slots is None else self.worker_interactive_slots
        return min(wanted, self.worker_max_jobs - 1)

    @property
    def resolved_log_format(self) -> str:
        """LOG_FORMAT, else by where the logs go (stderr): `text` at a terminal, where someone reads them, and
        `json` when stderr is a pipe or a file, where a collector parses them (containers, systemd, tests)."""
        if self.log_format:
            return self.log_format
        return "text" if _stderr_is_tty() else "json"

    @property
    def embedded(self) -> bool:
        """True when no external Redis is configured: API and worker must share one process."""
        return self.resolved_redis_url is None and not self.redis_shards


def _stderr_is_tty() -> bool:
    stream = sys.stderr  # None under pythonw; a closed stream cannot be asked
    try:
        return stream is not None and stream.isatty()
    except ValueError:
        return False


@lru_cache
def get_settings() -> Settings:
    return Settings()
