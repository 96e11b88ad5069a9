"""Accounts, sessions, tokens, CSRF and security headers, on SQLite and PostgreSQL.

The route-protection test is generated from the app's own route table, so a new
route that forgets its protection fails here.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Iterator
from datetime import timedelta

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute

from scripts import users as users_cli
from services.common.db import create_engine, run_migrations, session_factory, utcnow
from services.gateway import accounts
from services.gateway.security import CSRF_COOKIE, SESSION_COOKIE
from services.gateway.settings import GatewaySettings
from services.gateway.testing import TEST_PASSWORD, add_user, sign_in_with_token
from services.gateway.tests.test_api import create, wait_generated

# Routes anyone may reach: health, the sign-in page, docs and static assets.
PUBLIC = {"/healthz", "/login", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
# Routes that change what every trainer sees, or manage people: admins only.
ADMIN_ONLY = re.compile(r"^/(admin/|prompts/evolve$|prompts/versions/\{version\}/\{action\}$"
                        r"|api/train/evolve$)")
SAMPLE_PATH_VALUES = {"action": "retry", "version": "v1.0.0", "run_id": "1"}


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every endpoint, including those of included routers (FastAPI nests them)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from api_routes(nested.routes)


def gateway_routes(client: TestClient) -> list[tuple[str, str]]:
    routes: list[tuple[str, str]] = []
    for route in api_routes(client.app.routes):  # type: ignore[attr-defined]
        if route.path in PUBLIC:
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PATH_VALUES.get(m.group(1), "x1"),
                      route.path)
        routes.extend((method, path) for method in sorted((route.methods or set()) - {"HEAD"}))
    return routes


def origin_headers() -> dict[str, str]:
    return {"Origin": "http://testserver"}


def sign_in_browser(client: TestClient, username: str, password: str = TEST_PASSWORD):
    return client.post("/login", data={"username": username, "password": password,
                                       "next": "/train/history"},
                       headers=origin_headers(), follow_redirects=False)


def csrf_headers(client: TestClient) -> dict[str, str]:
    client.get("/train")  # the first page sets the CSRF cookie
    return {**origin_headers(), "X-CSRF-Token": client.cookies[CSRF_COOKIE]}


def test_every_route_refuses_anonymous_callers(anonymous_gateway: TestClient) -> None:
    routes = gateway_routes(anonymous_gateway)
    assert len(routes) > 20  # the table really was read
    for method, path in routes:
        answer = anonymous_gateway.request(method, path, follow_redirects=False,
                                           headers={"accept": "text/html"})
        if path.startswith(("/api/", "/images/")):
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert "Inicia sesión" in answer.json()["detail"]
        else:
            assert answer.status_code in (303, 401), (method, path, answer.status_code)
            target = answer.headers.get("location") or answer.headers.get("hx-redirect") or ""
            assert target.startswith("/login?next="), (method, path, target)


def test_admin_routes_refuse_trainers(anonymous_gateway: TestClient) -> None:
    sign_in_with_token(anonymous_gateway, "tere", "trainer")
    admin_routes = [(m, p) for m, p in gateway_routes(anonymous_gateway)
                    if ADMIN_ONLY.match(p)]
    assert len(admin_routes) >= 6
    for method, path in admin_routes:
        answer = anonymous_gateway.request(method, path, headers={"accept": "text/html"})
        assert answer.status_code in (403, 422), (method, path, answer.status_code)
        if answer.status_code == 422:  # a form that fails validation first must still be admin-only
            again = anonymous_gateway.request(method, path, data={"reason": "porque sí",
                                                                  "password": "x" * 12,
                                                                  "username": "zz"})
            assert again.status_code == 403, (method, path)


def test_login_page_session_and_logout(anonymous_gateway: TestClient) -> None:
    client = anonymous_gateway
    add_user(client, "lucia")
    page = client.get("/train", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Ftrain"
    assert "Iniciar sesión" in client.get("/login").text

    answer = sign_in_browser(client, "Lucia")  # user names are case-insensitive
    assert answer.status_code == 303 and answer.headers["location"] == "/train/history"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "lucia" in client.get("/train").text

    out = client.post("/logout", headers=csrf_headers(client), follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/train", follow_redirects=False).status_code == 303


def test_wrong_password_and_rate_limit(anonymous_gateway: TestClient,
                                       gateway_settings: GatewaySettings) -> None:
    client = anonymous_gateway
    add_user(client, "marta")
    for _ in range(gateway_settings.login_max_failures_per_account):
        wrong = sign_in_browser(client, "marta", "not-the-password")
        assert wrong.status_code == 401 and "incorrectos" in wrong.text
        assert 'value="marta"' in wrong.text  # the name typed is kept
    throttled = sign_in_browser(client, "marta")  # even the right password waits now
    assert throttled.status_code == 429 and "Demasiados intentos" in throttled.text
    english = client.post("/login?lang=en", data={"username": "marta", "password": "x"},
                          headers=origin_headers())
    assert "Too many failed attempts" in english.text


def test_rate_limit_per_address(anonymous_gateway: TestClient) -> None:
    client = anonymous_gateway
    client.app.state.settings.login_max_failures_per_ip = 3  # type: ignore[attr-defined]
    for name in ("a1", "a2", "a3"):
        assert sign_in_browser(client, name, "wrong-password").status_code == 401
    add_user(client, "nuria")
    assert sign_in_browser(client, "nuria").status_code == 429


def test_deactivation_ends_sessions_and_tokens(anonymous_gateway: TestClient) -> None:
    client = anonymous_gateway
    token = add_user(client, "olga")
    assert sign_in_browser(client, "olga").status_code == 303
    admin_token = add_user(client, "jefa", "admin")
    answer = client.post("/admin/users/olga/deactivate",
                         headers={"Authorization": f"Bearer {admin_token}"})
    assert answer.status_code == 200 and "desactivado" in answer.text
    assert client.get("/train", follow_redirects=False).status_code == 303  # session gone
    client.cookies.clear()
    refused = client.get("/api/train/status", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401  # token gone
    assert sign_in_browser(client, "olga").status_code == 401
    audit = client.get("/admin/audit", headers={"Authorization": f"Bearer {admin_token}"}).text
    assert "user_deactivated" in audit and "login_failed" in audit and "olga" in audit


async def test_sessions_expire_when_idle_and_when_old(gateway_settings: GatewaySettings,
                                                      database_url: str) -> None:
    await asyncio.to_thread(run_migrations, users_cli.MIGRATIONS, database_url,
                            "alembic_version_gateway")
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            user = await accounts.add_user(session, "pia", TEST_PASSWORD, "trainer", actor="t")
            token = await accounts.open_session(session, user, None)
        start = utcnow()
        idle = timedelta(minutes=gateway_settings.session_idle_minutes)
        step = idle - timedelta(minutes=1)
        now = start
        # Active use keeps a session alive past the idle limit…
        for _ in range(3):
            now += step
            async with sessions() as session, session.begin():
                assert await accounts.user_for_session(session, gateway_settings, token, now)
        # …until its absolute limit.
        late = start + timedelta(hours=gateway_settings.session_absolute_hours, seconds=1)
        async with sessions() as session, session.begin():
            assert await accounts.user_for_session(session, gateway_settings, token, late) is None
        async with sessions() as session, session.begin():
            user = await accounts.get_user(session, "pia")
            fresh = await accounts.open_session(session, user, None)
        async with sessions() as session, session.begin():
            assert await accounts.user_for_session(
                session, gateway_settings, fresh, utcnow() + idle + timedelta(seconds=1)) is None
    finally:
        await engine.dispose()


def test_cross_site_posts_are_refused_even_with_a_session(anonymous_gateway: TestClient
                                                          ) -> None:
    client = anonymous_gateway
    add_user(client, "rosa")
    assert sign_in_browser(client, "rosa").status_code == 303
    good = csrf_headers(client)
    # No CSRF header: refused.
    assert client.post("/train/rate", data={"experiment_id": "x"},
                       headers=origin_headers()).status_code == 403
    # A foreign origin with the right token: refused.
    foreign = {**good, "Origin": "https://evil.example"}
    answer = client.post("/train/rate", data={"experiment_id": "x"}, headers=foreign)
    assert answer.status_code == 403 and "Afinador" in answer.json()["detail"]
    # Same origin and token: it reaches the route (which then finds no such experiment).
    assert client.post("/train/rate", data={"experiment_id": "x", "rating_A": "3"},
                       headers=good).status_code == 404


def test_security_headers_on_pages_and_images(gateway: TestClient) -> None:
    page = gateway.get("/train")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    assert "<script>" not in page.text and " onclick=" not in page.text
    created = create(gateway)
    body = wait_generated(gateway, created["experiment_id"])
    image = gateway.get(body["options"][0]["url"])
    assert image.headers["x-content-type-options"] == "nosniff"


def test_the_rater_is_the_signed_in_user_whatever_the_body_says(gateway: TestClient) -> None:
    created = create(gateway)
    wait_generated(gateway, created["experiment_id"])
    saved = gateway.post("/api/train/rate", json={
        "experiment_id": created["experiment_id"], "rated_by": "somebody-else",
        "ratings": [{"option": "A", "rating": 4}]})
    assert saved.status_code == 200, saved.text
    history = gateway.get("/api/train/history").json()
    raters = {o["rated_by"] for e in history["experiments"] for o in e["options"]}
    assert raters == {"ana"}


def test_training_mode_off_leaves_only_admins(anonymous_gateway: TestClient) -> None:
    client = anonymous_gateway
    client.app.state.settings.enable_training_mode = False  # type: ignore[attr-defined]
    trainer = add_user(client, "sara")
    admin = add_user(client, "admin2", "admin")
    closed = client.get("/train", headers={"Authorization": f"Bearer {trainer}"})
    assert closed.status_code == 403 and "cerrado" in closed.text
    assert client.get("/train", headers={"Authorization": f"Bearer {admin}"}).status_code == 200


def test_training_admin_emails_make_admins(anonymous_gateway: TestClient) -> None:
    client = anonymous_gateway
    client.app.state.settings.training_admin_emails = "Jefa@Estudio.es"  # type: ignore[attr-defined]
    token = add_user(client, "jefa@estudio.es", "trainer")
    answer = client.get("/admin/users", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and "jefa@estudio.es" in answer.text


def test_admin_adds_a_trainer_who_can_then_sign_in(anonymous_gateway: TestClient) -> None:
    client = anonymous_gateway
    admin = add_user(client, "root", "admin")
    headers = {"Authorization": f"Bearer {admin}"}
    short = client.post("/admin/users", data={"username": "tina", "password": "corta",
                                              "role": "trainer"}, headers=headers)
    assert short.status_code == 422 and "10 caracteres" in short.text
    added = client.post("/admin/users", data={"username": "tina", "password": "una-clave-larga",
                                              "role": "trainer"}, headers=headers)
    assert added.status_code == 200 and "tina" in added.text
    assert sign_in_browser(client, "tina", "una-clave-larga").status_code == 303


def test_command_line_manages_users(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AFINADOR_PASSWORD", "una-clave-larga")
    assert users_cli.main(["add", "Elena", "--role", "admin"]) == 0
    assert users_cli.main(["add", "elena"]) == 1  # already there
    assert users_cli.main(["token", "elena"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("afn_")
    assert users_cli.main(["deactivate", "elena"]) == 0
    assert users_cli.main(["list"]) == 0
    assert "elena\tadmin\tdeactivated" in capsys.readouterr().out
    settings = GatewaySettings(data_dir=tmp_path)
    from services.gateway.main import create_app

    with TestClient(create_app(settings)) as client:
        assert client.get("/api/train/status",
                          headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize("token", ["x", "afinador-dev-token", "a" * 31])
def test_production_refuses_weak_secrets(tmp_path, token: str) -> None:
    with pytest.raises(ValueError, match="at least 32"):
        GatewaySettings(environment="production", service_token=token, data_dir=tmp_path,
                        session_secret="s" * 40)
    with pytest.raises(ValueError, match="GATEWAY_SESSION_SECRET"):
        GatewaySettings(environment="production", service_token="t" * 40, data_dir=tmp_path,
                        session_secret=token)
    ready = GatewaySettings(environment="production", service_token="t" * 40,
                            session_secret="s" * 40, data_dir=tmp_path)
    assert ready.token_for("optimizer") == "t" * 40


def test_first_start_creates_a_development_admin(anonymous_gateway: TestClient,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    users = anonymous_gateway.portal.call(_usernames, anonymous_gateway)  # type: ignore[union-attr]
    assert users == ["admin"]


async def _usernames(client: TestClient) -> list[str]:
    async with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        return [u.username for u in await accounts.list_users(session)]


def test_signed_cookie_cannot_be_forged(anonymous_gateway: TestClient) -> None:
    client = anonymous_gateway
    client.cookies.set(SESSION_COOKIE, "forged-value")
    assert client.get("/train", follow_redirects=False).status_code == 303
