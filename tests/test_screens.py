"""The `screen` device role: bound to one fitting room, its own routes only, valid until a
manager revokes it (a staff session's 12 h do not apply)."""

from __future__ import annotations

import httpx
import pytest

from gateway.storage import auth
from tests.test_clienteling_api import gw  # noqa: F401  (the fixture)


def make_screen(base_url: str, room: str) -> httpx.Client:
    """A manager signs in on the device and turns it into the room's screen."""
    device = httpx.Client(base_url=base_url, timeout=10)
    assert device.post("/api/login", json={"username": "mia", "password": "manager-pass"}).status_code == 200
    r = device.post("/api/screens", json={"room": room})
    assert r.status_code == 201, r.text
    assert r.json()["url"] == f"/fitting-room/{room}"
    return device


def test_a_screen_reaches_its_room_only_until_revoked(gw) -> None:  # noqa: ANN001, F811
    clients, _, clock = gw
    base = str(clients["public"].base_url)
    screen = make_screen(base, "fr2")
    assert screen.get("/api/me").status_code == 401  # the manager's session left the device
    assert screen.get("/fitting-room/fr2").status_code == 200
    assert screen.get("/api/fitting-room/fr2").status_code == 200
    assert screen.post("/api/fitting-room/fr2/request", json={"kind": "staff"}).status_code == 201
    for path in ("/api/fitting-room/fr1", "/api/customers?q=a", "/epcis/events", "/api/events", "/api/fleet"):
        assert screen.get(path, follow_redirects=False).status_code in (401, 303), path  # 303: to sign-in
    assert screen.get("/tablet", follow_redirects=False).status_code == 303

    clock.t += 30 * auth.SESSION_TTL_S  # weeks later: no expiry
    assert screen.get("/api/fitting-room/fr2").status_code == 200

    mia = httpx.Client(base_url=base, timeout=10)
    assert mia.post("/api/login", json={"username": "mia", "password": "manager-pass"}).status_code == 200
    listed = mia.get("/api/screens").json()
    assert [(s["room"], s["created_by"]) for s in listed] == [("fr2", "mia")]
    assert mia.delete(f"/api/screens/{listed[0]['id']}").status_code == 200
    assert screen.get("/api/fitting-room/fr2").status_code == 401
    assert mia.get("/api/screens").json() == []
    for c in (screen, mia):
        c.close()


def test_only_managers_make_screens_and_only_of_real_rooms(gw) -> None:  # noqa: ANN001, F811
    clients, _, _ = gw
    assert clients["ana"].post("/api/screens", json={"room": "fr2"}).status_code == 403
    assert clients["ana"].get("/api/screens").status_code == 403
    assert clients["mia"].post("/api/screens", json={"room": "stockroom"}).status_code == 404
    assert clients["public"].post("/api/screens", json={"room": "fr2"}).status_code == 401


@pytest.mark.slow
def test_fleet_page_lists_screens_and_revokes_in_german_and_english(gw, browser) -> None:  # noqa: ANN001, F811
    clients, core, _ = gw
    base = str(clients["public"].base_url).rstrip("/")
    make_screen(base, "fr1").close()
    for locale, title, revoke in (("de-DE", "Umkleide-Bildschirme", "Entziehen"),
                                  ("en-GB", "Fitting-room screens", "Revoke")):
        ctx = browser.new_context(locale=locale, service_workers="block")
        page = ctx.new_page()
        page.goto(f"{base}/login?next=/fleet")
        page.fill("#u", "mia")
        page.fill("#p", "manager-pass")
        page.click("#go")
        page.wait_for_selector("#screens:not([hidden]) li[data-screen]")
        assert page.inner_text("#screens-title") == title
        assert page.inner_text("#screen-list button") == revoke
        assert page.locator("dt", has_text="Uhr" if locale == "de-DE" else "Clock").count() > 0
        if locale == "en-GB":
            page.on("dialog", lambda d: d.accept())
            page.click("#screen-list button")
            page.wait_for_selector("#screen-list li", state="detached")
            assert core.db.execute("SELECT COUNT(*) FROM screens WHERE revoked_at IS NULL").fetchone()[0] == 0
            setup = ctx.new_page()  # on the room's page a manager makes the device its screen
            setup.goto(f"{base}/fitting-room/fr3")
            setup.click("#make-screen")
            setup.wait_for_function("document.getElementById('make-screen').hidden")
            assert ctx.request.get(f"{base}/api/me").status == 401  # the device is a screen now
            assert ctx.request.get(f"{base}/api/fitting-room/fr3").status == 200
            rooms = core.db.execute("SELECT room FROM screens WHERE revoked_at IS NULL").fetchall()
            assert rooms == [("fr3",)]
        ctx.close()
