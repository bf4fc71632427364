"""Console sign-in and sign-out. ADMIN_API_KEY opens an `admin` session; a named admin key (shared/admin_keys.py)
a session with its role, `admin` or `viewer`; a tenant's API key a `tenant` session that sees only that tenant.
The form is protected by a double-submit token (there is no session yet); sign-out by the session's own CSRF
token."""

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from api.console.auth import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    ConsoleConfig,
    ConsoleDep,
    SessionUser,
    admin_credential,
    check_csrf,
    is_secure,
    session_redis,
    sign_session_id,
)
from api.console.pages import ConsoleRoute, render
from api.deps import AppState, StateDep
from shared.admin_keys import ADMIN_KEY_PREFIX, authenticate_admin
from shared.console_sessions import ConsoleSession, Role, close_session, new_session_id, open_session
from shared.errors import AuthenticationFailed, PermissionDenied
from shared.tenants import authenticate, hash_key

router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)

MAX_KEY_CHARS = 512


@router.get("/login")
async def read_login(request: Request, config: ConsoleDep,
                     next: Annotated[str, Query(max_length=512)] = "/console/") -> Response:
    config.serializer("console-session")  # 503 page at once when the console is disabled
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", None, login_token=token, next=_safe_next(next), error=None)
    _set_cookie(response, request, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/login")
async def create_login(
    request: Request, state: StateDep, config: ConsoleDep,
    key: Annotated[str, Form(max_length=MAX_KEY_CHARS)],
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=128)],
    next: Annotated[str, Form(max_length=512)] = "/console/",
) -> Response:
    """Sign in with the admin key or a tenant's key; a wrong key re-shows the form with 401."""
    check_csrf(request, request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf_token)
    try:
        session = await _open(state, config, key.strip())
    except (AuthenticationFailed, PermissionDenied) as error:
        response = render(request, "login.html", None, status=error.status, login_token=csrf_token,
                          next=_safe_next(next), error=error.message)
        return response
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_cookie(response, request, SESSION_COOKIE, sign_session_id(config, session.id),
                max_age=config.session_ttl_s)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console", secure=is_secure(request), httponly=True,
                           samesite="strict")
    return response


@router.post("/logout")
async def delete_login(request: Request, state: StateDep, session: SessionUser,
                       csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=128)]) -> Response:
    check_csrf(request, session.csrf_token, csrf_token)
    await close_session(session_redis(state, session.id), session.id)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console", secure=is_secure(request), httponly=True,
                           samesite="strict")
    return response


async def _open(state: AppState, config: ConsoleConfig, key: str) -> ConsoleSession:
    admin_key = state.settings.admin_api_key
    ttl_s = config.session_ttl_s
    if admin_key and hmac.compare_digest(key.encode(), admin_key.encode()):
        session_id = new_session_id()
        return await open_session(session_redis(state, session_id), role="admin", tenant_id=None,
                                  credential=admin_credential(config, admin_key), ttl_s=ttl_s, session_id=session_id)
    if key.startswith(ADMIN_KEY_PREFIX):
        return await _open_named_admin(state, config, key)
    async with state.sessions() as db:
        tenant = await authenticate(db, key)
    if tenant is None:
        raise AuthenticationFailed("That key is neither the admin key nor an active tenant key")
    if tenant.disabled:
        raise PermissionDenied("This tenant is disabled")
    session_id = new_session_id()
    return await open_session(session_redis(state, session_id), role="tenant", tenant_id=tenant.id,
                              credential=hash_key(key), ttl_s=ttl_s, session_id=session_id)


async def _open_named_admin(state: AppState, config: ConsoleConfig, key: str) -> ConsoleSession:
    """A named admin key opens a session with its role, while ADMIN_API_KEY is set (as the admin API requires);
    the session keeps the key's hash and id, to check it again on every request and to name it in the audit log."""
    found = None
    if state.settings.admin_api_key:
        async with state.sessions() as db:
            found = await authenticate_admin(db, key)
    if found is None:
        raise AuthenticationFailed("That admin key is unknown or has been deleted")
    role: Role = "admin" if found.role == "admin" else "viewer"
    session_id = new_session_id()
    return await open_session(session_redis(state, session_id), role=role, tenant_id=None,
                              credential=found.key_hash, ttl_s=config.session_ttl_s, admin_key_id=found.id,
                              session_id=session_id)


def _safe_next(target: str) -> str:
    """Only a console path: never another site (`//host`, `https://...`) after sign-in."""
    if target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


def _set_cookie(response: Response, request: Request, name: str, value: str, *, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/console", secure=is_secure(request), httponly=True,
                        samesite="strict")
