"""Rendering console pages: the Jinja2 environment (autoescape on for every template, so tenant names and job
text are always text), number and time formatting, and `ConsoleRoute`, which turns a missing sign-in into a
redirect and a gateway error into an HTML page with the error's status instead of the API's JSON."""

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from api.console.auth import SignInRequired
from shared.console_sessions import ConsoleSession
from shared.errors import GatewayError

PACKAGE_DIR = Path(__file__).parent
NAVIGATION = [("overview", "/console/"), ("tenants", "/console/tenants"), ("usage", "/console/usage"),
              ("requests", "/console/requests"), ("jobs", "/console/jobs"), ("routes", "/console/routes"),
              ("webhooks", "/console/webhooks"), ("audit", "/console/audit")]
OPERATOR_PAGES = frozenset({"routes", "webhooks", "audit"})


def format_money(value: float | None) -> str:
    """US dollars with thousands separators; sub-cent amounts keep enough digits to be seen."""
    if value is None:
        return "—"
    if 0 < abs(value) < 0.01:
        return f"${value:,.6f}"
    return f"${value:,.2f}"


def format_count(value: float | int | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def iso_time(value: datetime | float | None) -> str:
    """An ISO 8601 UTC instant for `<time datetime>`; console.js shows it in the browser's zone."""
    if value is None:
        return ""
    moment = datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else value
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def pretty_json(value: object) -> str:
    """Indented JSON for a `<pre>` (autoescaping still applies: this is text, not markup)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(PACKAGE_DIR / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(money=format_money, count=format_count, iso=iso_time, pretty_json=pretty_json)
    return env


TEMPLATES = Jinja2Templates(env=_environment())


def render(request: Request, template: str, session: ConsoleSession | None, *, status: int = 200,
           **context: Any) -> Response:
    """A console page, with the navigation this session may use and its CSRF token for the page's forms."""
    nav = [(name, url) for name, url in NAVIGATION
           if session is not None and (session.sees_all_tenants or name not in OPERATOR_PAGES)]
    base = {"session": session, "nav": nav, "csrf_token": session.csrf_token if session else "",
            "active": context.pop("active", ""), "notice": context.pop("notice", None)}
    return TEMPLATES.TemplateResponse(request, template, {**base, **context}, status_code=status)


def error_page(request: Request, status: int, message: str) -> Response:
    return render(request, "error.html", None, status=status, message=message, status_code=status)


class ConsoleRoute(APIRoute):
    """Console routes answer in HTML: sign-in problems redirect a page view to the sign-in form (401 for
    anything else), and gateway and validation errors become an error page with their status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                if request.method == "GET" and "text/event-stream" not in request.headers.get("accept", ""):
                    target = quote(request.url.path, safe="/")
                    return RedirectResponse(f"/console/login?next={target}", status_code=303)
                return error_page(request, 401, "Your console session has ended: sign in again.")
            except GatewayError as error:
                return error_page(request, error.status, error.message)
            except RequestValidationError as error:
                problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                                     for e in error.errors())
                return error_page(request, 400, f"Invalid request: {problems}")

        return guarded
