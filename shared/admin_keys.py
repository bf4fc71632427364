"""Admin credentials besides ADMIN_API_KEY (the bootstrap admin): named keys with a role, `admin` (reads and
writes) or `viewer` (reads only), managed by the admin API and the CLI. Like tenant keys, a plain key is shown
once and stored only as its SHA-256 hex; it starts with `gwa-`, so it can never be mistaken for a tenant key.
Callers record the change in the audit log (shared/audit.py) before committing."""

import secrets
from typing import Literal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.tables import AdminKey, utc_now
from shared.errors import InvalidRequest, NotFound
from shared.tenants import hash_key

__all__ = [
    "ADMIN_KEY_PREFIX",
    "ADMIN_ROLES",
    "BOOTSTRAP_ACTOR",
    "AdminRole",
    "authenticate_admin",
    "create_admin_key",
    "get_admin_key",
    "list_admin_keys",
    "render_admin_key",
    "revoke_admin_key",
]

ADMIN_KEY_PREFIX = "gwa-"
BOOTSTRAP_ACTOR = "bootstrap"  # the audit log's actor for ADMIN_API_KEY
AdminRole = Literal["admin", "viewer"]
ADMIN_ROLES: tuple[AdminRole, ...] = ("admin", "viewer")
DISPLAY_PREFIX_LENGTH = 12
MAX_NAME_LENGTH = 100


async def create_admin_key(session: AsyncSession, name: str, role: str) -> tuple[AdminKey, str]:
    """Add a new admin key to the session (flushed, not committed); returns it and the plain key."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or name == BOOTSTRAP_ACTOR:
        raise InvalidRequest(f"name must be 1 to {MAX_NAME_LENGTH} characters and not {BOOTSTRAP_ACTOR!r}")
    if role not in ADMIN_ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ADMIN_ROLES)}")
    plain = ADMIN_KEY_PREFIX + secrets.token_urlsafe(32)
    row = AdminKey(id="adm_" + secrets.token_hex(8), name=name, role=role, key_hash=hash_key(plain),
                   key_prefix=plain[:DISPLAY_PREFIX_LENGTH])
    session.add(row)
    await session.flush()
    return row, plain


async def list_admin_keys(session: AsyncSession) -> list[AdminKey]:
    """Active admin keys, oldest first."""
    statement = select(AdminKey).where(col(AdminKey.revoked_at).is_(None)).order_by(col(AdminKey.created_at))
    return list((await session.exec(statement)).all())


async def get_admin_key(session: AsyncSession, key_id: str) -> AdminKey:
    """The active admin key with this id; raises NotFound."""
    row = await session.get(AdminKey, key_id)
    if row is None or row.revoked_at is not None:
        raise NotFound(f"admin key {key_id!r} not found")
    return row


async def revoke_admin_key(session: AsyncSession, key_id: str) -> AdminKey:
    """Revoke the key (flushed, not committed): it stops authenticating once committed. The row stays, so
    audit entries naming it as actor still resolve."""
    row = await get_admin_key(session, key_id)
    row.revoked_at = utc_now()
    session.add(row)
    await session.flush()
    return row


async def authenticate_admin(session: AsyncSession, plain_key: str) -> AdminKey | None:
    """The active admin key for this plain key, by its hash (an indexed lookup, as for tenant keys)."""
    if not plain_key.startswith(ADMIN_KEY_PREFIX):
        return None
    statement = select(AdminKey).where(col(AdminKey.key_hash) == hash_key(plain_key),
                                       col(AdminKey.revoked_at).is_(None))
    return (await session.exec(statement)).first()


def render_admin_key(row: AdminKey) -> dict[str, object]:
    """The public view: never the hash, only the display prefix."""
    return {"id": row.id, "object": "admin_key", "name": row.name, "role": row.role, "key_prefix": row.key_prefix,
            "created_at": row.created_at.isoformat()}
