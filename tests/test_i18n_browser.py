"""The tablet and the enrolment page in headless Chromium: German by the store's default (over an
English browser), prices as German writes them, and English after the DE/EN switch."""

from __future__ import annotations

import time

import pytest

from firmware_config.store import load_store
from gateway.engines.presence import PresenceEvent
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage import consent as consent_mod
from gateway.storage.customers import add_customer
from gateway.storage.db import open_db
from gateway.storage.pos import record_sale
from gateway.web.app import create_app
from tests.conftest import BOUTIQUE

pytestmark = pytest.mark.slow


def _text(page, selector: str) -> str:  # noqa: ANN001
    return page.inner_text(selector).replace("\xa0", " ").replace("\u202f", " ")


@pytest.fixture
def german_store(serve, tmp_path):  # noqa: ANN001, ANN201
    store = load_store(BOUTIQUE)
    store = store.model_copy(update={"store": store.store.model_copy(update={"language": "de"})})
    db = open_db(tmp_path / "gw.db")
    add_customer(db, "c1", "Alice Adler", sizes={"tops": "M"}, now=0)
    record_sale(db, now=time.time() - 86400, amount_cents=8900, currency="EUR", epcs=[], gtins=[], customer_id="c1")
    auth.create_staff(db, "ana", "ana-password", "associate", name="Ana")
    core = GatewayCore(store, db, clock=time.time)
    return core, serve(create_app(core))


def test_tablet_in_german_by_store_default_then_english(german_store, browser) -> None:  # noqa: ANN001
    core, server = german_store
    ctx = browser.new_context(locale="en-US", service_workers="block")  # the browser itself prefers English
    page = ctx.new_page()
    page.goto(server.url + "/tablet")
    assert _text(page, "h1") == "Anmeldung für Mitarbeitende"
    page.fill("#u", "ana")
    page.fill("#p", "ana-password")
    page.click("#go")
    page.wait_for_url(server.url + "/tablet")
    page.wait_for_selector("#conn.live")
    assert _text(page, "h1") == "Stammkundschaft" and _text(page, "#conn") == "verbunden"
    assert page.get_attribute("html", "lang") == "de"

    core.emit(PresenceEvent("entered", "c1", time.time(), "entrance", "pavement", 0.9))
    card = page.wait_for_selector("article.alert[data-kind=entered]")
    text = card.inner_text().replace("\xa0", " ")
    assert "Stammkunde ist hereingekommen" in text and "89,00 €" in text and "Übernehme ich" in text

    page.click("button[data-lang=en]")  # this device's choice, kept in a cookie
    page.wait_for_function("document.documentElement.lang === 'en'")
    page.wait_for_selector("#conn.live")
    assert _text(page, "h1") == "Regular customers"
    card = page.wait_for_selector("article.alert[data-kind=entered]")  # the feed replays after the reload
    assert "€89.00" in card.inner_text() and "I'll take it" in card.inner_text()
    page.goto(server.url + "/tablet")
    assert _text(page, "h1") == "Regular customers"  # still English on the next visit


def test_enrolment_in_german_then_english(german_store, browser) -> None:  # noqa: ANN001
    _, server = german_store
    page = browser.new_context(locale="en-US").new_page()
    page.goto(server.url + "/enrol")
    page.wait_for_selector("input[name=purpose][value=recognition]")
    assert _text(page, "label[for=name]") == "Ihr Name"
    wordings = page.locator(".wording").all_text_contents()
    assert consent_mod.WORDING["recognition"]["de"] in wordings  # the consent text in German
    assert "30 Tage" in _text(page, "#recorded")

    page.click("button[data-lang=en]")
    page.wait_for_function("document.documentElement.lang === 'en'")
    page.wait_for_selector("input[name=purpose][value=recognition]")
    assert _text(page, "label[for=name]") == "Your name"
    assert consent_mod.WORDING["recognition"]["en"] in page.locator(".wording").all_text_contents()


@pytest.mark.parametrize("width", [390, 768, 1280])
def test_the_german_tablet_never_scrolls_sideways(german_store, browser, width: int) -> None:  # noqa: ANN001
    """German is the longer language: the header (name, sound, connection, language, sign out)
    wraps on a phone instead of pushing "Abmelden" off the screen."""
    core, server = german_store
    page = browser.new_context(viewport={"width": width, "height": 800}, service_workers="block").new_page()
    page.goto(server.url + "/tablet")
    page.fill("#u", "ana")
    page.fill("#p", "ana-password")
    page.click("#go")
    page.wait_for_selector("#conn.live")
    core.emit(PresenceEvent("entered", "c1", time.time(), "entrance", "pavement", 0.9))
    page.wait_for_selector("article.alert[data-kind=entered]")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    box = page.locator("#logout").bounding_box()
    assert box is not None and box["x"] + box["width"] <= width
