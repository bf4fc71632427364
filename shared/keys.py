"""Every Redis key the gateway writes, built here under one prefix, with the TTLs that go with them.
arq's own keys (`arq:*`) are arq's business; only `arq:abort` is named here because the API writes it."""

__all__ = [
    "ARQ_ABORT_KEY",
    "AUTH_GENERATION_KEY",
    "AUTH_INVALIDATION_CHANNEL",
    "PREFIX",
    "USAGE_DEAD_STREAM",
    "USAGE_GROUP",
    "USAGE_PRUNE_KEY",
    "USAGE_STREAM",
    "USAGE_WRITERS_KEY",
    "WEBHOOK_DEAD_STREAM",
    "WEBHOOK_GROUP",
    "WEBHOOK_RETRY_KEY",
    "WEBHOOK_STREAM",
    "WORKERS_KEY",
    "auth_cache_key",
    "breaker_key",
    "budget_alerts_fired_key",
    "budget_alerts_key",
    "budget_holds_key",
    "budget_holds_sum_key",
    "cache_entry_key",
    "cache_inflight_key",
    "concurrency_key",
    "doorbell_channel",
    "idempotency_key",
    "job_events_key",
    "job_key",
    "key_used_key",
    "rpm_key",
    "spend_key",
    "tenant_auth_index_key",
    "tenant_jobs_key",
    "tpm_key",
    "tpm_sum_key",
    "webhook_event_key",
]

PREFIX = "gw"
ARQ_ABORT_KEY = "arq:abort"
USAGE_STREAM = f"{PREFIX}:usage"
USAGE_GROUP = "usage-writers"
USAGE_DEAD_STREAM = f"{PREFIX}:usage:dead"
# Sorted set: each usage writer (a worker id) scored by when it last completed a flush (ms).
USAGE_WRITERS_KEY = f"{PREFIX}:usage:writers"
USAGE_PRUNE_KEY = f"{PREFIX}:usage:prune"  # held by the one worker pruning old usage records this interval
WORKERS_KEY = f"{PREFIX}:workers"
# Count of auth-cache invalidations: a snapshot loaded before one is not cached (shared/tenant_cache.py).
AUTH_GENERATION_KEY = f"{PREFIX}:auth-generation"
# Pub/sub channel: a tenant's id, published by every auth-cache invalidation (shared/auth_local.py).
AUTH_INVALIDATION_CHANNEL = f"{PREFIX}:auth:invalidated"
# Webhook deliveries: a job's end adds one to the stream (in its terminal commit); senders move it into the
# retry schedule (sorted set scored by when the next attempt is due) and dead-letter what cannot be delivered.
WEBHOOK_STREAM = f"{PREFIX}:webhooks"
WEBHOOK_GROUP = "webhook-senders"
WEBHOOK_RETRY_KEY = f"{PREFIX}:webhooks:schedule"
WEBHOOK_DEAD_STREAM = f"{PREFIX}:webhooks:dead"


def job_key(job_id: str) -> str:
    """Hash with the job's tenant, status, request and outcome."""
    return f"{PREFIX}:job:{job_id}"


def job_events_key(job_id: str) -> str:
    """Redis Stream of the job's events (start, token, done, error, cancelled)."""
    return f"{PREFIX}:ev:{job_id}"


def tenant_jobs_key(tenant_id: str) -> str:
    """Sorted set of a tenant's job ids by submission time."""
    return f"{PREFIX}:tenant-jobs:{tenant_id}"


def idempotency_key(tenant_id: str, flavour: str, key_digest: str) -> str:
    """A tenant's Idempotency-Key on one route flavour (hashed: keys are client text): pending marker or job id."""
    return f"{PREFIX}:idem:{tenant_id}:{flavour}:{key_digest}"


def breaker_key(target_id: str) -> str:
    """Hash with a target's circuit-breaker state, shared by every worker."""
    return f"{PREFIX}:breaker:{target_id}"


def auth_cache_key(key_hash: str) -> str:
    """Cached tenant snapshot for an API key's hash (never the plain key)."""
    return f"{PREFIX}:auth:{key_hash}"


def tenant_auth_index_key(tenant_id: str) -> str:
    """Set of key hashes cached for a tenant, so a change can drop them all."""
    return f"{PREFIX}:auth-index:{tenant_id}"


def rpm_key(tenant_id: str) -> str:
    """Sliding-window log of the tenant's admitted requests (sorted set scored by time)."""
    return f"{PREFIX}:rl:req:{tenant_id}"


def tpm_key(tenant_id: str) -> str:
    """Sliding-window log of the tenant's token charges, members `job_id:tokens`."""
    return f"{PREFIX}:rl:tok:{tenant_id}"


def tpm_sum_key(tenant_id: str) -> str:
    """Running sum of the tokens in the tenant's token log."""
    return f"{PREFIX}:rl:tok-sum:{tenant_id}"


def concurrency_key(tenant_id: str) -> str:
    """Sorted set of the tenant's in-flight job ids, scored by when their slot expires."""
    return f"{PREFIX}:rl:conc:{tenant_id}"


def spend_key(tenant_id: str, period_id: str) -> str:
    """Hash with the micro-dollars a tenant spent in one period (`spent`), kept for every period kind whether or
    not its budget uses it, and the fields of a seed from the database in progress (shared/budget.py)."""
    return f"{PREFIX}:spend:{tenant_id}:{period_id}"


def budget_holds_key(tenant_id: str) -> str:
    """Sorted set of the tenant's budget reservations in flight, members `job_id:micros`, scored by expiry."""
    return f"{PREFIX}:budget-holds:{tenant_id}"


def budget_holds_sum_key(tenant_id: str) -> str:
    """Running sum of the micro-dollars in the tenant's reservations in flight."""
    return f"{PREFIX}:budget-holds-sum:{tenant_id}"


def cache_entry_key(digest: str) -> str:
    """A cached answer; the digest already covers the tenant, the API flavour and the request."""
    return f"{PREFIX}:cache:{digest}"


def cache_inflight_key(digest: str) -> str:
    """The job id computing this answer right now, so identical requests wait on it."""
    return f"{PREFIX}:cache-inflight:{digest}"


def doorbell_channel(queue_name: str) -> str:
    """Pub/sub channel the API rings after an enqueue or a cancel, so idle workers poll at once."""
    return f"{PREFIX}:doorbell:{queue_name}"


def budget_alerts_key(tenant_id: str) -> str:
    """Hash: the tenant's budget (`budget_micros`, `period`) and its alert webhooks (`alert:<id>`), mirrored from
    the database by the admin API for the worker's threshold check (shared/budget_alerts.py)."""
    return f"{PREFIX}:budget-alerts:{tenant_id}"


def budget_alerts_fired_key(tenant_id: str, period_id: str) -> str:
    """Set of `<alert id>:<percent>` already sent in this budget period: each is sent once per period."""
    return f"{PREFIX}:budget-alerts-fired:{tenant_id}:{period_id}"


def webhook_event_key(event_id: str) -> str:
    """The JSON body of a webhook that is not a job's (a budget alert), read by the sender at each attempt."""
    return f"{PREFIX}:webhook-event:{event_id}"
def key_used_key(key_id: str) -> str:
    """Marker that an API key's `last_used_at` was written within the last minute (shared/key_usage.py)."""
    return f"{PREFIX}:key-used:{key_id}"
