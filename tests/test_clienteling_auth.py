"""Staff sign-in: every route but enrolment, sign-in and health rejects a missing, forged or expired
session; associates cannot reach manager routes. Routes are enumerated from the app, so a route
added later is covered without touching this file."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.routing import APIRoute

from firmware_config.store import load_store
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage.db import open_db
from gateway.web.app import create_app
from gateway.web.routes_common import require_manager
from tests.conftest import BOUTIQUE

# Open on purpose: health and metrics (no customer data), the public enrolment page and its API,
# the sign-in page and the PWA's static assets. (The API description and /docs need sign-in.)
PUBLIC = {
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/enrol"),
    ("GET", "/api/enrol/form"),
    ("POST", "/api/enrol"),
    ("GET", "/login"),
    ("POST", "/api/login"),
    ("GET", "/manifest.webmanifest"),
    ("GET", "/sw.js"),
    ("GET", "/icon.svg"),
    ("GET", "/icon-192.png"),  # home-screen icons: fetched before anyone signs in
    ("GET", "/icon-512.png"),
    ("GET", "/apple-touch-icon.png"),
    ("GET", "/r/{token}"),  # a short link in a customer's WhatsApp message: an unguessable token, a redirect
}
KNOWN_MANAGER = {
    ("GET", "/dashboard"),
    ("GET", "/api/kpi"),
    ("GET", "/api/staff"),
    ("POST", "/api/staff"),
    ("DELETE", "/api/customers/{customer_id}"),
    ("GET", "/api/customers/{customer_id}/export"),
}


class Clock:
    t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def _routes(app) -> list[tuple[str, str, object]]:  # noqa: ANN001
    """(method, path, route) for every route the app serves, through included routers."""
    try:
        from fastapi.routing import iter_route_contexts

        items = [(c.path, c.original_route) for c in iter_route_contexts(app.routes)]
    except ImportError:  # older FastAPI: included routes are flattened into app.routes
        items = [(r.path, r) for r in app.routes]
    out = []
    for path, route in items:
        for method in sorted(getattr(route, "methods", None) or []):
            if method != "HEAD":
                out.append((method, path, route))
    return out


def _needs_manager(route: object) -> bool:
    def walk(dep) -> bool:  # noqa: ANN001
        return dep.call is require_manager or any(walk(d) for d in dep.dependencies)

    return isinstance(route, APIRoute) and walk(route.dependant)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.fixture
def server(serve):  # noqa: ANN001, ANN201
    clock = Clock()
    core = GatewayCore(load_store(BOUTIQUE), open_db(":memory:"), clock=clock)
    auth.create_staff(core.db, "mia", "manager-pass", "manager", now=clock.t)
    auth.create_staff(core.db, "ana", "associate-pass", "associate", now=clock.t)
    app = create_app(core)
    return app, serve(app), clock, core


def _login(url: str, user: str, pw: str) -> str:
    r = httpx.post(f"{url}/api/login", json={"username": user, "password": pw})
    assert r.status_code == 200, r.text
    return r.json()["token"]


def test_every_protected_route_rejects_missing_forged_and_expired_sessions(server) -> None:  # noqa: ANN001
    app, srv, clock, _ = server
    expired = _login(srv.url, "ana", "associate-pass")
    clock.t += auth.SESSION_TTL_S + 1
    routes = _routes(app)
    protected = [(m, p) for m, p, _ in routes if (m, p) not in PUBLIC]
    assert ("GET", "/api/stream") in protected and ("POST", "/pos/sales") in protected and len(protected) > 30
    forged = "A" * 43
    with httpx.Client(base_url=srv.url, follow_redirects=False, timeout=10) as c:
        for method, path in protected:
            for headers, cookies in (
                ({}, {}),
                ({"Authorization": f"Bearer {forged}"}, {}),
                ({}, {auth.COOKIE: forged}),
                ({}, {auth.COOKIE: expired}),
            ):
                c.cookies.clear()
                for name, value in cookies.items():
                    c.cookies.set(name, value)
                r = c.request(method, _concrete(path), headers=headers, json={})
                if r.status_code == 303:  # pages send the browser to sign-in
                    assert method == "GET" and r.headers["location"].startswith("/login?next="), (
                        method,
                        path,
                    )
                else:
                    assert r.status_code == 401, (method, path, headers, cookies, r.status_code)
        not_plain_get = {("POST", "/api/enrol"), ("POST", "/api/login"), ("GET", "/r/{token}")}  # /r/: needs a token
        for method, path in PUBLIC - not_plain_get:
            assert c.request(method, path).status_code == 200, path


def test_openapi_documents_the_clienteling_api(server) -> None:  # noqa: ANN001
    _, srv, _, _ = server
    assert httpx.get(f"{srv.url}/openapi.json").status_code == 303  # staff only
    token = _login(srv.url, "ana", "associate-pass")
    r = httpx.get(f"{srv.url}/openapi.json", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, "the OpenAPI document must build (a route's types are broken)"
    paths = r.json()["paths"]
    for path in ("/api/enrol", "/pos/sales", "/orders", "/api/claims/{kind}/{ident}", "/api/kpi",
                 "/api/customers/{customer_id}/export"):
        assert path in paths, path


def test_associates_cannot_reach_manager_routes(server) -> None:  # noqa: ANN001
    app, srv, _, _ = server
    manager_routes = {(m, p) for m, p, r in _routes(app) if _needs_manager(r)}
    assert KNOWN_MANAGER <= manager_routes  # the discovery is not vacuous
    token = _login(srv.url, "ana", "associate-pass")
    boss = _login(srv.url, "mia", "manager-pass")
    with httpx.Client(base_url=srv.url, follow_redirects=False, timeout=30) as c:
        for method, path in sorted(manager_routes):
            r = c.request(method, _concrete(path), headers={"Authorization": f"Bearer {token}"}, json={})
            assert r.status_code == 403, (method, path, r.status_code)
        assert c.get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()["role"] == "associate"
        assert c.get("/api/kpi", headers={"Authorization": f"Bearer {boss}"}).status_code == 200


def test_sign_in_sets_an_httponly_cookie_and_sign_out_ends_the_session(server) -> None:  # noqa: ANN001
    _, srv, _, _ = server
    assert (
        httpx.post(f"{srv.url}/api/login", json={"username": "ana", "password": "wrong-pass"}).status_code
        == 401
    )
    assert httpx.post(f"{srv.url}/api/login", json={"username": "nobody", "password": "x"}).status_code == 401
    assert httpx.post(f"{srv.url}/api/login", json={"username": "ana"}).status_code == 422
    with httpx.Client(base_url=srv.url) as c:
        r = c.post("/api/login", json={"username": "ana", "password": "associate-pass"})
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert c.get("/api/me").json()["username"] == "ana"  # the cookie alone is enough (EventSource)
        assert c.post("/api/logout").status_code == 200
        c.cookies.set(auth.COOKIE, r.json()["token"])
        assert c.get("/api/me").status_code == 401


def test_passwords_are_hashed_with_scrypt_and_accounts_validated() -> None:
    db = open_db(":memory:")
    sid = auth.create_staff(db, "ana", "a-good-password", "associate", now=0)
    stored = db.execute("SELECT pw_hash FROM staff WHERE id = ?", [sid]).fetchone()[0]
    assert stored.startswith("scrypt$") and "a-good-password" not in stored
    assert auth.verify_password("a-good-password", stored) and not auth.verify_password(
        "a-good-passwore", stored
    )
    assert not auth.verify_password("x", "garbage")
    for args, field in (
        (("Ana!", "a-good-password", "associate"), "username"),
        (("bob", "short", "associate"), "password"),
        (("bob", "a-good-password", "owner"), "role"),
        (("ana", "a-good-password", "manager"), "username"),
    ):
        with pytest.raises(ValueError, match=f"^{field}:"):
            auth.create_staff(db, *args, now=0)
    token = auth.login(db, "ana", "a-good-password", now=100.0, ttl_s=60)
    assert token and auth.session_staff(db, token, now=159.0).username == "ana"  # type: ignore[union-attr]
    assert auth.session_staff(db, token, now=161.0) is None
    assert token not in str(db.execute("SELECT * FROM sessions").fetchall())  # only the hash is stored
    db.execute("UPDATE staff SET active = 0")
    assert auth.login(db, "ana", "a-good-password", now=200.0) is None
