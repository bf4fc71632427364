"""Console sign-in state: the signing secret, the session cookie (a session id signed with SECRET_KEY by
itsdangerous; the session itself is in Redis, shared/console_sessions.py), the dependency that loads the signed-in
session on every console request and checks its credential still works, and the CSRF checks of every POST."""

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from redis.asyncio import Redis
from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import AppState, StateDep
from shared.config import PLACEHOLDER_SECRETS, Settings
from shared.console_sessions import ConsoleSession, close_session, load_session
from shared.db.tables import AdminKey, ApiKey, Tenant, utc_now
from shared.errors import NotFound, PermissionDenied, ServiceUnavailable
from shared.tenants import get_tenant

logger = logging.getLogger(__name__)

SESSION_COOKIE = "gw_console"
LOGIN_CSRF_COOKIE = "gw_console_login"
CSRF_FIELD = "csrf_token"


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in form, other requests get 401 (api/console/pages.py)."""


@dataclass(frozen=True)
class ConsoleConfig:
    """Per app: built once in api/main.py. `secret` is None when the console is refused (no SECRET_KEY in a
    distributed deployment, where every API process must sign with the same key)."""

    secret: str | None
    session_ttl_s: int
    per_process_secret: bool = False

    def serializer(self, salt: str) -> URLSafeTimedSerializer:
        if self.secret is None:
            raise ServiceUnavailable("The console is disabled: set SECRET_KEY (the same in every API process)")
        return URLSafeTimedSerializer(self.secret, salt=salt)


def build_console_config(settings: Settings) -> ConsoleConfig:
    """A real SECRET_KEY signs the cookies. Without one, the embedded one-process mode signs with a key made for
    this process (sessions end at restart); a distributed gateway refuses the console, as a per-process key would
    make each API process reject the others' sessions."""
    default = Settings.model_fields["secret_key"].default  # a development default, never a secret
    if settings.secret_key.lower() not in PLACEHOLDER_SECRETS and settings.secret_key != default:
        return ConsoleConfig(settings.secret_key, settings.console_session_ttl_s)
    if settings.embedded:
        logger.warning("console: SECRET_KEY is unset, so sessions are signed with a key made for this process "
                       "and end when it restarts")
        return ConsoleConfig(secrets.token_urlsafe(32), settings.console_session_ttl_s, per_process_secret=True)
    logger.warning("console: disabled until SECRET_KEY is set (the same value in every API process)")
    return ConsoleConfig(None, settings.console_session_ttl_s)


async def get_console(request: Request) -> ConsoleConfig:
    config: ConsoleConfig = request.app.state.console
    return config


ConsoleDep = Annotated[ConsoleConfig, Depends(get_console)]


def admin_credential(config: ConsoleConfig, admin_key: str) -> str:
    """What an admin session remembers of the admin key: changing ADMIN_API_KEY ends every admin session."""
    return hmac.new((config.secret or "").encode(), b"admin:" + admin_key.encode(), hashlib.sha256).hexdigest()


def sign_session_id(config: ConsoleConfig, session_id: str) -> str:
    return config.serializer("console-session").dumps(session_id)


def is_secure(request: Request) -> bool:
    """Served over TLS (directly, or behind a proxy uvicorn trusts for X-Forwarded-Proto): cookies get `Secure`."""
    return request.url.scheme == "https"


async def current_session(request: Request, state: StateDep, config: ConsoleDep) -> ConsoleSession:
    """The signed-in session, if its cookie is genuine, it has not expired and its key still works."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise SignInRequired
    try:
        session_id = config.serializer("console-session").loads(cookie, max_age=config.session_ttl_s)
    except BadSignature as exc:
        raise SignInRequired from exc
    session = await load_session(session_redis(state, str(session_id)), str(session_id))
    if session is None:
        raise SignInRequired
    if not await _credential_works(state, config, session):
        await close_session(session_redis(state, session.id), session.id)
        raise SignInRequired
    return session


SessionUser = Annotated[ConsoleSession, Depends(current_session)]


def session_redis(state: AppState, session_id: str) -> Redis:
    """The shard holding a console session: spread by session id, since a session (an operator's) belongs to
    no one tenant (docs/SHARDING.md)."""
    return state.shards.clients.for_key(session_id)


def require_writer(session: ConsoleSession) -> None:
    if not session.can_write:
        raise PermissionDenied("This session may read but not change the gateway (an admin session can)")


def require_all_tenants(session: ConsoleSession) -> None:
    if not session.sees_all_tenants:
        raise PermissionDenied("This page is for the gateway's operators; a tenant session sees its own tenant")


async def visible_tenant(db: AsyncSession, session: ConsoleSession, tenant_id: str) -> Tenant:
    """The tenant, if this session may see it: an operator any, a tenant session its own. Another tenant is
    indistinguishable from a missing one (404), as in the API."""
    if not session.sees_all_tenants and tenant_id != session.tenant_id:
        raise NotFound(f"tenant {tenant_id!r} not found")
    return await get_tenant(db, tenant_id)


def check_csrf(request: Request, expected: str, submitted: object) -> None:
    """A POST must come from the console's own pages: same origin (when the browser says), and the form's token
    equal to the session's (or, at sign-in, the login cookie's)."""
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin is not None and origin != own:
        raise PermissionDenied(f"Cross-site form post refused (Origin {origin!r} is not {own!r})")
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise PermissionDenied("Cross-site form post refused (Sec-Fetch-Site)")
    if not isinstance(submitted, str) or not expected or not hmac.compare_digest(submitted, expected):
        raise PermissionDenied("Missing or wrong CSRF token: reload the page and try again")


async def checked_form(request: Request, session: ConsoleSession, *, admin_only: bool = True) -> dict[str, object]:
    """The form of a POST, once its CSRF token and origin are checked and (unless the page says otherwise, as
    cancelling a tenant's own job does) the session may change the gateway."""
    form: dict[str, object] = dict(await request.form(max_files=0, max_fields=50))
    check_csrf(request, session.csrf_token, form.get(CSRF_FIELD))
    if admin_only:
        require_writer(session)
    return form


async def _credential_works(state: AppState, config: ConsoleConfig, session: ConsoleSession) -> bool:
    admin_key = state.settings.admin_api_key
    if session.admin_key_id is not None:
        # As in the admin API (api/deps.py), named admin keys work only while ADMIN_API_KEY is set.
        return bool(admin_key) and await _admin_key_works(state, session)
    if session.role in ("admin", "viewer"):
        return bool(admin_key) and hmac.compare_digest(session.credential, admin_credential(config, admin_key or ""))
    return await _tenant_key_works(state, session)


async def _admin_key_works(state: AppState, session: ConsoleSession) -> bool:
    """The named admin key is still there, unrevoked, with the role the session was opened with (a deleted key
    ends its sessions at their next request)."""
    statement = select(AdminKey.id).where(
        col(AdminKey.id) == session.admin_key_id, col(AdminKey.key_hash) == session.credential,
        col(AdminKey.role) == session.role, col(AdminKey.revoked_at).is_(None))
    async with state.sessions() as db:
        return (await db.exec(statement)).first() is not None


async def _tenant_key_works(state: AppState, session: ConsoleSession) -> bool:
    statement = (
        select(Tenant.id)
        .join(ApiKey, col(ApiKey.tenant_id) == col(Tenant.id))
        .where(col(ApiKey.key_hash) == session.credential, col(ApiKey.revoked_at).is_(None),
               or_(col(ApiKey.expires_at).is_(None), col(ApiKey.expires_at) > utc_now()),
               col(Tenant.disabled).is_(False), col(Tenant.id) == session.tenant_id)
    )
    async with state.sessions() as db:
        return (await db.exec(statement)).first() is not None
