"""Every page in headless Chromium on a phone (390 px), a portrait tablet (768 px) and a landscape
tablet (1280 px): nothing scrolls sideways, and axe-core finds no serious or critical accessibility
violation (axe-core as the axe-playwright-python package ships it, the same as the fitting-room
screen's test uses)."""

from __future__ import annotations

import time
from pathlib import Path

import axe_playwright_python
import pytest

from gateway.engines.presence import PresenceEvent
from gateway.storage.pos import record_sale
from gateway.web.app import create_app
from gateway.web.routes_whatsapp import mount_whatsapp
from tests.test_wa_inbox import make_service

pytestmark = pytest.mark.slow
AXE = Path(axe_playwright_python.__file__).parent / "axe.min.js"
WIDTHS = (390, 768, 1280)
PAGES = ("/tablet", "/clients", "/customer/alice", "/dashboard", "/inbox", "/fleet", "/enrol", "/fitting-room/fr2")
BLOCKING = ("serious", "critical")  # axe's impact levels that fail the test


@pytest.fixture
def site(serve, tmp_path: Path, browser):  # noqa: ANN001, ANN201
    svc, core, _ = make_service(tmp_path, real_clock=True)
    record_sale(core.db, now=time.time() - 86400, amount_cents=8900, currency="EUR", epcs=[], gtins=[],
                customer_id="alice")
    app = create_app(core)
    mount_whatsapp(app, svc)
    server = serve(app)
    ctx = browser.new_context(service_workers="block")
    page = ctx.new_page()
    login = {}
    for width in WIDTHS:  # the sign-in page first, signed out
        page.set_viewport_size({"width": width, "height": 800})
        page.goto(server.url + "/login")
        login[width] = _sideways(page)
    login["axe"] = _axe(page)
    page.fill("#u", "mia")
    page.fill("#p", "mia-password")
    page.click("#go")
    page.wait_for_url(server.url + "/tablet")
    core.emit(PresenceEvent("entered", "alice", time.time(), "entrance", "pavement", 0.9))
    core.emit(PresenceEvent("entered", "bob", time.time(), "fr2", "pavement", 0.9))
    return server, page, login


def _sideways(page) -> list[str]:  # noqa: ANN001
    """Elements reaching past the right edge when the page is wider than the window."""
    return page.evaluate("""() => {
      if (document.documentElement.scrollWidth <= window.innerWidth) return [];
      const past = e => e.getBoundingClientRect().right > window.innerWidth + 1;
      const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '.' + e.className;
      return [...document.querySelectorAll('body *')].filter(past).slice(0, 8).map(name);
    }""")


def _axe(page) -> list[str]:  # noqa: ANN001
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate("axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)")
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:4]}"
            for v in violations if v["impact"] in BLOCKING]


def _open(page, url: str) -> None:  # noqa: ANN001
    page.goto(url)
    page.wait_for_load_state("load")
    page.wait_for_timeout(400)  # scripts fill the page from the API


def test_the_sign_in_page_fits_every_width_and_passes_axe(site) -> None:  # noqa: ANN001
    _, _, login = site
    assert {w: login[w] for w in WIDTHS} == {w: [] for w in WIDTHS}
    assert login["axe"] == []


@pytest.mark.parametrize("path", PAGES)
def test_no_page_scrolls_sideways_on_a_phone_or_a_tablet(site, path: str) -> None:  # noqa: ANN001
    server, page, _ = site
    wide = {}
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        _open(page, server.url + path)
        wide[width] = _sideways(page)
    assert wide == {w: [] for w in WIDTHS}


@pytest.mark.parametrize("path", PAGES)
def test_every_page_passes_axe(site, path: str) -> None:  # noqa: ANN001
    server, page, _ = site
    for width in (390, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        _open(page, server.url + path)
        assert _axe(page) == [], f"{path} at {width} px"


def test_on_a_phone_sign_out_is_visible_and_who_is_here_comes_before_the_feed(site) -> None:  # noqa: ANN001
    server, page, _ = site
    for width in (390, 768):
        page.set_viewport_size({"width": width, "height": 800})
        _open(page, server.url + "/tablet")
        box = page.locator("#logout").bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width
        present = page.locator("#present-panel").bounding_box()
        feed = page.locator("#feed-panel").bounding_box()
        assert present and feed and present["y"] < feed["y"]
