"""Console sign-in sessions, kept in Redis so that the server decides when one ends: at its expiry, at sign-out,
or when the credential it was opened with stops working. The API's console routes open, load and close them;
this module knows roles and tenants, not pages or cookies."""

import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Literal

from redis.asyncio import Redis

from shared.audit import CONSOLE_ACTOR
from shared.keys import PREFIX

__all__ = ["ConsoleSession", "Role", "close_session", "load_session", "open_session"]

Role = Literal["admin", "viewer", "tenant"]
"""`admin` (ADMIN_API_KEY, or a named admin key with that role) and `viewer` (a named admin key with the viewer
role) see every tenant; a viewer may not write. `tenant` (a tenant's API key) sees its own tenant only."""

WRITE_ROLES: frozenset[str] = frozenset({"admin"})


@dataclass(frozen=True)
class ConsoleSession:
    id: str
    role: Role
    tenant_id: str | None  # set for `tenant` sessions: everything they read is filtered to it
    credential: str  # a digest of the key signed in with, checked again on every request (never the key)
    csrf_token: str
    expires_at: float  # unix seconds
    admin_key_id: str | None = None  # the named admin key signed in with; None for ADMIN_API_KEY and tenants

    @property
    def can_write(self) -> bool:
        """Gateway-wide writes (tenants, limits, redelivery) are the admin's; a tenant's own jobs are its own."""
        return self.role in WRITE_ROLES

    @property
    def sees_all_tenants(self) -> bool:
        return self.tenant_id is None

    @property
    def audit_actor(self) -> str:
        """Who the audit log names for this session's changes: a named admin key's id, as the admin API does;
        `console` for ADMIN_API_KEY."""
        return self.admin_key_id or CONSOLE_ACTOR


def session_key(session_id: str) -> str:
    return f"{PREFIX}:console:session:{session_id}"


def new_session_id() -> str:
    """A fresh session id; drawn before the session is stored, since with Redis shards it picks the shard."""
    return secrets.token_urlsafe(32)


async def open_session(redis: Redis, *, role: Role, tenant_id: str | None, credential: str,
                       ttl_s: int, admin_key_id: str | None = None, session_id: str | None = None) -> ConsoleSession:
    """A new session with its own CSRF token, stored until `ttl_s` from now (an absolute, not sliding, expiry)."""
    session = ConsoleSession(id=session_id or new_session_id(), role=role, tenant_id=tenant_id, credential=credential,
                             csrf_token=secrets.token_urlsafe(32), expires_at=time.time() + ttl_s,
                             admin_key_id=admin_key_id)
    await redis.set(session_key(session.id), json.dumps(asdict(session)), ex=ttl_s)
    return session


async def load_session(redis: Redis, session_id: str) -> ConsoleSession | None:
    raw = await redis.get(session_key(session_id))
    if raw is None:
        return None
    data = json.loads(raw)
    session = ConsoleSession(**data)
    # Redis expires the key too; the check also covers a clock step or a stand-in without expiry.
    return session if session.expires_at > time.time() else None


async def close_session(redis: Redis, session_id: str) -> None:
    await redis.delete(session_key(session_id))
