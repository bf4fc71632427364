"""What a tenant key with the `manage` scope (issue 16) may grant when it issues a key for its own tenant in the
console: never more than it holds itself. The new key's models must be within the issuing key's allow-list, its
endpoints a subset of the issuing key's, and (when the issuing key expires) it must expire no later, so a
restricted or temporary key cannot mint an unrestricted or lasting one. The issuing key's limits and budget are
not copied: the tenant's own limits and budget still bound every key. Tenant limits, budgets, weights,
allow-lists and disabling stay the operator's (the console refuses those forms to tenant sessions)."""

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.api_keys import KeyCreate, model_allowed
from shared.db.tables import ApiKey
from shared.errors import InvalidRequest, PermissionDenied

__all__ = ["check_grant", "managing_key", "tenant_actor"]

GLOB_CHARACTERS = frozenset("*?[")


def tenant_actor(tenant_id: str, key_id: str) -> str:
    """The audit actor of a change a tenant makes with one of its keys: `tenant:<tenant_id>` (as for a tenant's
    own budget alerts) and the key's id, as admin actors name their admin key."""
    return f"tenant:{tenant_id}:{key_id}"


async def managing_key(session: AsyncSession, tenant_id: str, key_hash: str) -> ApiKey:
    """The tenant's active key with this hash, if it has the `manage` scope; PermissionDenied otherwise (read
    again on every change, so revoking the scope or the key takes effect at once)."""
    statement = select(ApiKey).where(col(ApiKey.key_hash) == key_hash, col(ApiKey.tenant_id) == tenant_id,
                                     col(ApiKey.revoked_at).is_(None))
    key = (await session.exec(statement)).first()
    if key is None or not key.manage:
        raise PermissionDenied("This key may read its tenant's keys but not manage them (it lacks the manage scope)")
    return key


def check_grant(issuer: ApiKey, params: KeyCreate) -> None:
    """Refuse (400, naming the field) a new key that would hold more than the issuing key."""
    _check_models(issuer.allowed_models, params.allowed_models)
    _check_endpoints(issuer.allowed_endpoints, params.allowed_endpoints)
    if issuer.expires_at is not None and (params.expires_at is None or params.expires_at > issuer.expires_at):
        raise InvalidRequest(f"Invalid API key: expires_at: must be no later than this key's own expiry "
                             f"({issuer.expires_at.isoformat()})")


def _check_models(own: list[str] | None, wanted: list[str] | None) -> None:
    """A new pattern is within `own` when it is one of `own`'s patterns, or a plain name one of them matches (a
    new glob other than the issuer's own could match models outside them)."""
    if own is None:
        return
    outside = ["(every model)"] if wanted is None else [
        pattern for pattern in wanted
        if pattern not in own and (GLOB_CHARACTERS & set(pattern) or not model_allowed(own, pattern))]
    if outside:
        raise InvalidRequest(f"Invalid API key: allowed_models: {', '.join(outside)} not within this key's own "
                             f"allowed models ({', '.join(own)})")


def _check_endpoints(own: list[str] | None, wanted: list[str] | None) -> None:
    if own is None:
        return
    outside = ["(every endpoint)"] if wanted is None else sorted(set(wanted) - set(own))
    if outside:
        raise InvalidRequest(f"Invalid API key: allowed_endpoints: {', '.join(outside)} not within this key's own "
                             f"allowed endpoints ({', '.join(own)})")
