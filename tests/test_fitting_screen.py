"""Issue #20 in headless Chromium: the fitting-room screen (a screen device, no staff sign-in) shows
the garments read in its room, a size is asked for by tapping, the request rings on the staff
tablet, the claim shows on the screen and stays there through a gateway restart; German on a
German screen; no serious accessibility violations (axe-core)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe

from firmware_config.store import load_store
from gateway.i18n import COOKIE as LANG_COOKIE
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage import products as cat
from gateway.storage.db import open_db
from gateway.web.app import create_app
from gateway.web.screens import COOKIE as SCREEN_COOKIE
from gateway.web.screens import create_screen
from tests.conftest import BOUTIQUE
from tests.test_rfid_screen import CSV, SHIRT, TEE_M, Clock, Feed, _sign_in

pytestmark = pytest.mark.slow

SHOTS = os.environ.get("INSTORE_SHOTS")  # a folder: the test also saves screenshots there


def _open(path: Path, clock: Clock) -> GatewayCore:
    return GatewayCore(load_store(BOUTIQUE), open_db(path), clock=clock)


@pytest.fixture
def gw(serve, tmp_path):  # noqa: ANN001, ANN201
    clock = Clock(time.time())
    db = open_db(tmp_path / "gw.db")
    cat.import_products(db, cat.parse_products_csv(CSV, "cat.csv"))
    auth.create_staff(db, "ana", "ana-password", "associate", name="Ana Alves", now=clock.t)
    manager = auth.create_staff(db, "max", "max-password", "manager", name="Max", now=clock.t)
    _, token = create_screen(db, "fr2", manager, clock.t)
    core = GatewayCore(load_store(BOUTIQUE), db, clock=clock)
    return core, serve(create_app(core)), clock, token


def _screen(browser, url: str, token: str, lang: str, size: tuple[int, int] = (1080, 1920), **ctx_args):  # noqa: ANN001, ANN003, ANN202
    ctx = browser.new_context(viewport={"width": size[0], "height": size[1]}, service_workers="block", **ctx_args)
    host = url.split("//")[1].split(":")[0]
    ctx.add_cookies([
        {"name": SCREEN_COOKIE, "value": token, "domain": host, "path": "/"},
        {"name": LANG_COOKIE, "value": lang, "domain": host, "path": "/"},
    ])
    page = ctx.new_page()
    page.goto(url + "/fitting-room/fr2")
    page.wait_for_selector("#conn.live")
    return page


def _shot(page, name: str) -> None:  # noqa: ANN001
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=False)


def test_size_by_tapping_rings_on_the_tablet_claim_shows_and_survives_a_restart(gw, browser, serve, tmp_path) -> None:  # noqa: ANN001
    core, server, clock, token = gw
    tablet = _sign_in(browser, server.url, "ana", "ana-password")
    tablet.wait_for_selector("#conn.live")
    tablet.wait_for_selector("#room-requests", state="attached")
    screen = _screen(browser, server.url, token, "en")
    assert screen.inner_text("#title") == "Fitting room 2"

    Feed(core, clock.t).seconds(3, [TEE_M, SHIRT])  # two garments carried in: live on the screen
    card = screen.wait_for_selector(f"article.item[data-epc='{TEE_M}']")
    assert "Organic tee" in card.inner_text() and "€19.95" in card.inner_text()
    assert card.query_selector(".pic svg") is not None  # no photo in the catalogue: a garment drawing, no letter
    sizes = [b.inner_text() for b in card.query_selector_all(".chip")]
    assert sizes == ["M", "L"]  # in stock: M (this one) and L in the back room; navy M is out of stock
    _shot(screen, "screen-en-1080x1920.png")

    rings = tablet.evaluate("window.roomRequestRings")
    screen.click(f"article.item[data-epc='{TEE_M}'] .chip[data-value='L']")
    screen.click(f"article.item[data-epc='{TEE_M}'] button.bring")  # one tap, no browser prompt
    screen.wait_for_selector("#status .request >> text=Request sent: Organic tee, black, size L")
    rq = tablet.wait_for_selector("#room-requests .rq >> text=Fitting room 2: bring Organic tee, black, size L")
    assert rq is not None
    tablet.wait_for_function(f"window.roomRequestRings > {rings}")  # the sound was triggered
    _shot(tablet, "tablet-request-en-1280x800.png")
    tablet.click("#room-requests .rq button.claim")  # "I'm on it"
    screen.wait_for_selector("#status .request.claimed >> text=Ana is bringing you: Organic tee, black, size L")
    _shot(screen, "screen-en-1080x1920-claimed.png")

    # the gateway restarts: the screen reconnects by itself and the status is still there
    server.stop()
    core2 = _open(tmp_path / "gw.db", clock)
    serve(create_app(core2), port=server.port)
    screen.wait_for_selector("#conn:not(.live)", timeout=10000)
    screen.wait_for_selector("#conn.live", timeout=15000)
    Feed(core2, clock.t).seconds(3, [TEE_M])
    screen.wait_for_selector(f"article.item[data-epc='{TEE_M}']", timeout=10000)
    assert "Ana is bringing you" in screen.inner_text("#status")

    tablet.wait_for_selector("#room-requests .rq.claimed", timeout=15000)
    tablet.click("#room-requests .rq button.done")
    screen.wait_for_selector("#status .request", state="detached", timeout=10000)
    kpis = core2.db.execute("SELECT COUNT(*) FROM room_requests WHERE claimed_at IS NOT NULL AND done_at IS NOT NULL")
    assert kpis.fetchone()[0] == 1


def test_call_staff_in_german_and_no_serious_accessibility_violations(gw, browser) -> None:  # noqa: ANN001
    core, server, clock, token = gw
    Feed(core, clock.t).seconds(3, [TEE_M])
    for lang, size in (("de", (1080, 1920)), ("en", (1024, 768)), ("de", (1024, 768))):
        screen = _screen(browser, server.url, token, lang, size)
        screen.wait_for_selector(f"article.item[data-epc='{TEE_M}']")
        if lang == "de":
            assert "19,95\xa0€" in screen.inner_text(f"article.item[data-epc='{TEE_M}'] .price")
            assert screen.inner_text("#call-staff") == "Personal rufen"
            assert screen.inner_text(f"article.item[data-epc='{TEE_M}'] button.bring") == "Bitte bringen"
        _shot(screen, f"screen-{lang}-{size[0]}x{size[1]}.png")
        results = Axe().run(screen)
        serious = [v["id"] for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
        assert serious == [], results.generate_report()
        screen.context.close()
    screen = _screen(browser, server.url, token, "en", extra_http_headers={"Accept-Language": "de"})
    screen.click("#call-staff")
    screen.wait_for_selector("#status .request >> text=We have let the team know")
    # the customer chose English; once the session is over, the next one starts in the default again
    Feed(core, clock.t).seconds(15, [])
    screen.wait_for_selector("#status .request >> text=Wir haben dem Team Bescheid gegeben", timeout=15000)
    assert screen.evaluate("LANG") == "de"
    _shot(screen, "screen-de-1080x1920-called.png")
