"""FastAPI dependencies: the per-app state built by the lifespan, DB sessions, and authentication of tenants
(`X-API-Key` or `Authorization: Bearer`) and of admin credentials with their role (`admin` writes, `viewer`
reads). Routes declare these; tests override them."""

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from api.request_context import request_context
from api.shards import ShardHandles, Shards
from shared.admin_keys import BOOTSTRAP_ACTOR, authenticate_admin
from shared.api_keys import authenticate_key, endpoint_for_path
from shared.config import Settings
from shared.errors import AuthenticationFailed, PermissionDenied
from shared.key_usage import note_key_used
from shared.metrics import MetricLabels
from shared.pricing import PriceTable
from shared.routing_table import RoutingTable
from shared.tenant_cache import ShardedTenantCache, TenantSnapshot
from shared.tenants import KEY_PREFIX, hash_key
from shared.token_count import TokenCounter

logger = logging.getLogger(__name__)


@dataclass
class AppState:
    settings: Settings
    # The Redis shards (docs/SHARDING.md); a request uses its tenant's (`TenantShardDep`).
    shards: Shards
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    routing_table: RoutingTable
    tenant_cache: ShardedTenantCache
    prices: PriceTable
    # Label values for model names (configured ones; anything else `other`): see shared.metrics.
    metric_labels: MetricLabels = field(default_factory=MetricLabels)
    # tiktoken encodings, loaded at the first count on an OpenAI route (POST /v1/messages/count_tokens).
    token_counter: TokenCounter = field(default_factory=TokenCounter)


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.gateway
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def presented_key(request: Request) -> str | None:
    """The credential from `X-API-Key` or `Authorization: Bearer` (the two SDKs send one or the other)."""
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def current_tenant(request: Request, state: StateDep) -> TenantSnapshot:
    """The key's tenant and scopes, from the Redis cache or else the database (then cached); refuses an
    expired key (401), a disabled tenant and a route outside the key's endpoints (403)."""
    key = presented_key(request)
    if key is None:
        raise AuthenticationFailed("Missing API key: send it as 'X-API-Key: KEY' or 'Authorization: Bearer KEY'")
    if not key.startswith(KEY_PREFIX):
        raise AuthenticationFailed("Invalid API key")
    tenant = await _cached_tenant(state, key)
    now = datetime.now(UTC)
    if tenant.key.expires_at is not None and tenant.key.expires_at <= now:
        raise AuthenticationFailed(f"This API key expired at {tenant.key.expires_at.isoformat()}",
                                   code="expired_api_key")
    if tenant.disabled:
        raise PermissionDenied("This tenant is disabled")
    _check_endpoint(tenant, request.url.path)
    if tenant.key_id is not None:
        await note_key_used(state.shards.for_tenant(tenant.id).redis, state.sessions, tenant.key_id, now)
    request_context(request).tenant_id = tenant.id
    return tenant


async def _cached_tenant(state: AppState, key: str) -> TenantSnapshot:
    """The key's snapshot from the auth cache on its key hash's shard, else from the database (then cached).
    With that shard down the database answers alone (nothing cached), so a shard outage never refuses the
    tenants of the other shards (docs/SHARDING.md)."""
    key_hash = hash_key(key)
    cache = state.tenant_cache.for_key(key_hash)
    try:
        tenant = await cache.get(key_hash)
        if tenant is not None:
            return tenant
        generation: str | None = await cache.generation()
    except (RedisError, OSError) as exc:
        # Debug, not warning: it repeats on every request while the shard is down (/health and the
        # llm_gateway_redis_shard_up gauge report the outage).
        logger.debug("auth cache shard unavailable (%s): authenticating from the database", type(exc).__name__)
        generation = None
    tenant = await _load_tenant(state, key)
    if generation is not None:
        with contextlib.suppress(RedisError, OSError):  # the shard went away since: the next request caches it
            await cache.put(key_hash, tenant, generation)
    return tenant


def _check_endpoint(tenant: TenantSnapshot, path: str) -> None:
    allowed = tenant.key.allowed_endpoints
    endpoint = endpoint_for_path(path)
    if allowed is not None and endpoint is not None and endpoint not in allowed:
        raise PermissionDenied(f"This API key may not call the '{endpoint}' endpoint (it may call: "
                               f"{', '.join(allowed) or 'none'})", code="endpoint_not_allowed")


TenantDep = Annotated[TenantSnapshot, Depends(current_tenant)]


async def tenant_shard(state: StateDep, tenant: TenantDep) -> ShardHandles:
    """The authenticated tenant's Redis shard (FastAPI runs `current_tenant` once per request for both)."""
    return state.shards.for_tenant(tenant.id)


TenantShardDep = Annotated[ShardHandles, Depends(tenant_shard)]


async def _load_tenant(state: AppState, key: str) -> TenantSnapshot:
    async with state.sessions() as session:
        found = await authenticate_key(session, key)
    if found is None:
        raise AuthenticationFailed("Invalid API key")
    return TenantSnapshot.of(*found)


@dataclass(frozen=True)
class AdminActor:
    """Who is calling the admin API: an admin key's id, name and role, or the bootstrap admin (ADMIN_API_KEY),
    whose id and name are `bootstrap`. The id is the audit log's `actor`."""

    id: str
    name: str
    role: str


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BOOTSTRAP = AdminActor(id=BOOTSTRAP_ACTOR, name=BOOTSTRAP_ACTOR, role="admin")


async def current_admin(request: Request, state: StateDep) -> AdminActor:
    """Any admin credential, for the admin API's reads. A viewer is refused on any other method here already,
    so a write route guarded only by this dependency still cannot be reached by a viewer."""
    configured = state.settings.admin_api_key
    if not configured:
        raise PermissionDenied("The admin API is disabled: set ADMIN_API_KEY to enable it")
    key = presented_key(request)
    if key is None:
        raise AuthenticationFailed("Missing admin key: send it as 'X-API-Key' or 'Authorization: Bearer'")
    if hmac.compare_digest(key.encode(), configured.encode()):
        return BOOTSTRAP
    # Looked up at every request (no cache): admin traffic is light and a deleted key must stop at once.
    async with state.sessions() as session:
        row = await authenticate_admin(session, key)
    if row is None:
        raise AuthenticationFailed("Invalid admin key")
    actor = AdminActor(id=row.id, name=row.name, role=row.role)
    if actor.role != "admin" and request.method not in READ_METHODS:
        raise PermissionDenied(VIEWER_REFUSAL)
    return actor


async def require_admin(actor: Annotated[AdminActor, Depends(current_admin)]) -> AdminActor:
    """An admin credential with the `admin` role, for the admin API's writes."""
    if actor.role != "admin":
        raise PermissionDenied(VIEWER_REFUSAL)
    return actor


VIEWER_REFUSAL = "This admin key has the 'viewer' role: it may read the admin API but not change anything"
AdminDep = Depends(require_admin)
ViewerDep = Depends(current_admin)
AdminActorDep = Annotated[AdminActor, Depends(require_admin)]
