"""The staff tablet page in headless Chromium: alerts appear live, and after a server restart
the alert emitted while it was down appears exactly once."""

from __future__ import annotations

import time

import pytest

from firmware_config.store import load_store
from gateway.engines.presence import PresenceEvent
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage.customers import add_customer
from gateway.storage.db import open_db
from gateway.web.app import create_app
from tests.conftest import BOUTIQUE

pytestmark = pytest.mark.slow


def test_alert_appears_and_a_missed_alert_is_replayed_once_after_restart(serve, browser, tmp_path) -> None:  # noqa: ANN001
    db = open_db(tmp_path / "gw.db")
    add_customer(db, "c1", "Alice Adler", sizes={"tops": "M"}, brands=["Linea"], now=0)
    add_customer(db, "c2", "Bob Berg", sizes={"tops": "L"}, brands=["Mono"], now=0)
    auth.create_staff(db, "ana", "associate-pass", "associate")
    core = GatewayCore(load_store(BOUTIQUE), db, clock=time.time)
    server = serve(create_app(core))
    page = browser.new_page()
    page.goto(f"{server.url}/tablet")  # staff sign in first; the session cookie also opens the stream
    page.fill("#u", "ana")
    page.fill("#p", "associate-pass")
    page.click("#go")
    page.wait_for_url(f"{server.url}/tablet")
    page.wait_for_selector("#conn.live")

    core.emit(PresenceEvent("entered", "c1", time.time(), "entrance", "pavement", 0.9))
    card = page.wait_for_selector("article.alert[data-kind=entered]")
    assert "Alice Adler" in card.inner_text()
    assert "tops M" in card.inner_text() and "Linea" in card.inner_text()

    server.stop()
    page.wait_for_selector("#conn.down")
    core.emit(PresenceEvent("entered", "c2", time.time(), "entrance", "pavement", 0.9))  # while the tablet is cut off
    server = serve(create_app(core), port=server.port)
    page.wait_for_function("document.querySelectorAll('article.alert').length >= 2", timeout=15000)
    page.wait_for_timeout(1500)  # give a duplicate the chance to show up
    names = page.locator("article.alert .who").all_inner_texts()
    assert sorted(names) == ["Alice Adler", "Bob Berg"]
    page.screenshot(path=str(tmp_path / "tablet.png"))
