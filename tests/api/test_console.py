"""The console's sign-in rules in process (tests/e2e/test_console.py drives it in a browser): refused without a
SECRET_KEY when distributed, a per-process key when embedded, sessions that end on the server when they expire
or when the key they were opened with is revoked, and CSV cells that a spreadsheet will not run."""

import json
import re

import fakeredis
import httpx
from itsdangerous import URLSafeTimedSerializer

from api.console.auth import build_console_config
from api.routes.console_usage import _cell
from shared.config import Settings
from shared.console_sessions import load_session, open_session, session_key
from tests.api.conftest import REDIS_URL, app_client, make_tenant_key

ADMIN = "console-admin-key"
SECRET = "a-real-secret-" + "x" * 32


async def _sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    form = await client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    return await client.post("/console/login", data={"key": key, "csrf_token": token.group(1)})


async def test_console_is_refused_without_secret_key_when_distributed(sqlite_url: str, clean_redis: str) -> None:
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN) as client:
        response = await client.get("/console/login")
    assert response.status_code == 503
    assert "set SECRET_KEY" in response.text


def test_console_secret_is_per_process_only_in_embedded_mode() -> None:
    embedded = build_console_config(Settings(_env_file=None))
    assert embedded.per_process_secret and embedded.secret and embedded.secret != "dev-secret-key"
    assert build_console_config(Settings(_env_file=None)).secret != embedded.secret
    distributed = build_console_config(Settings(_env_file=None, redis_url=REDIS_URL, secret_key="changeme"))
    assert distributed.secret is None
    configured = build_console_config(Settings(_env_file=None, redis_url=REDIS_URL, secret_key=SECRET))
    assert configured.secret == SECRET and not configured.per_process_secret


async def test_console_tenant_session_ends_when_its_key_is_rotated(sqlite_url: str, clean_redis: str) -> None:
    key = await make_tenant_key(sqlite_url)
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        signed_in = await _sign_in(client, key)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console/"
        assert (await client.get("/console/tenants")).status_code == 200
        tenant_id = (await client.get("/api/v1/usage", headers={"X-API-Key": key})).json()["tenant_id"]
        rotated = await client.post(f"/api/v1/admin/tenants/{tenant_id}/rotate-key", headers={"X-API-Key": ADMIN})
        assert rotated.status_code == 200
        after = await client.get("/console/tenants")
    assert after.status_code == 303 and after.headers["location"].startswith("/console/login")


async def test_console_sign_in_with_a_wrong_key_is_401_and_opens_no_session(
    sqlite_url: str, clean_redis: str
) -> None:
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        refused = await _sign_in(client, "gw-wrong")
        assert refused.status_code == 401 and "gw_console=" not in refused.headers.get("set-cookie", "")
        assert (await client.get("/console/tenants")).status_code == 303


async def test_console_session_past_its_expiry_is_gone() -> None:
    redis = fakeredis.FakeAsyncRedis()
    session = await open_session(redis, role="admin", tenant_id=None, credential="c", ttl_s=600)
    assert await load_session(redis, session.id) == session
    assert 590 < await redis.ttl(session_key(session.id)) <= 600  # Redis drops it at the expiry as well
    stored = json.loads(await redis.get(session_key(session.id)))
    await redis.set(session_key(session.id), json.dumps({**stored, "expires_at": stored["expires_at"] - 601}))
    assert await load_session(redis, session.id) is None


def test_console_csv_cells_never_start_a_formula() -> None:
    assert _cell("=HYPERLINK(\"http://evil\")") == "'=HYPERLINK(\"http://evil\")"
    assert _cell("-1+2") == "'-1+2" and _cell("@SUM(A1)") == "'@SUM(A1)"
    assert _cell("gpt-4o") == "gpt-4o"


async def test_console_cookie_is_secure_over_tls_and_sign_in_never_leaves_the_console(
    sqlite_url: str, clean_redis: str
) -> None:
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        client.base_url = httpx.URL("https://gateway")
        form = await client.get("/console/login", params={"next": "//evil.example/x"})
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token and 'value="/console/"' in form.text  # the foreign `next` is replaced
        signed_in = await client.post("/console/login", data={"key": ADMIN, "csrf_token": token.group(1),
                                                              "next": "https://evil.example/"})
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console/"
    cookie = next(c for c in signed_in.headers.get_list("set-cookie") if c.startswith("gw_console="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"secure", "httponly", "samesite=strict", "path=/console"} <= flags


async def test_console_cookie_is_signed_with_secret_key_and_one_signed_otherwise_is_refused(
    sqlite_url: str, clean_redis: str
) -> None:
    async with app_client(redis_url=REDIS_URL, database_url=sqlite_url, admin_api_key=ADMIN,
                          secret_key=SECRET) as client:
        assert (await _sign_in(client, ADMIN)).status_code == 303
        cookie = client.cookies["gw_console"]
        session_id = URLSafeTimedSerializer(SECRET, salt="console-session").loads(cookie)  # SECRET_KEY signed it
        forged = URLSafeTimedSerializer("another-" + SECRET, salt="console-session").dumps(session_id)
        client.cookies.clear()
        genuine = await client.get("/console/tenants", headers={"cookie": f"gw_console={cookie}"})
        refused = await client.get("/console/tenants", headers={"cookie": f"gw_console={forged}"})
        unsigned = await client.get("/console/tenants", headers={"cookie": f"gw_console={session_id}"})
    assert genuine.status_code == 200
    assert refused.status_code == unsigned.status_code == 303
    assert refused.headers["location"].startswith("/console/login")
