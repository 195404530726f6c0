"""The staff app and dashboard in headless Chromium: sign-in, the live feed with the full card,
a claim shown live on a colleague's tablet, who is in the store, and the dashboard's charts."""

from __future__ import annotations

import time

import pytest

from firmware_config.store import load_store
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage.customers import Identity, add_customer, link_identity, record_consent
from gateway.storage.db import open_db
from gateway.storage.kpi import record_footfall
from gateway.storage.orders import create_order
from gateway.web.app import create_app
from tests.conftest import BOUTIQUE
from tests.test_clienteling_consent import IBEACON, Clock, Feeder

pytestmark = pytest.mark.slow


def _sign_in(browser, url: str, user: str, pw: str, path: str = "/tablet"):  # noqa: ANN001, ANN202
    ctx = browser.new_context(
        viewport={"width": 1280, "height": 800}, has_touch=True, service_workers="block"
    )
    page = ctx.new_page()
    page.goto(url + path)
    assert "/login?next=" in page.url  # not signed in: sent to the sign-in page
    page.fill("#u", user)
    page.fill("#p", pw)
    page.click("#go")
    page.wait_for_url(url + path)
    return page


def test_sign_in_live_feed_claim_and_dashboard(serve, browser, tmp_path) -> None:  # noqa: ANN001
    clock = Clock(time.time())
    db = open_db(tmp_path / "gw.db")
    add_customer(db, "c1", "Alice Adler", sizes={"tops": "M"}, brands=["Linea"], now=clock.t)
    record_consent(db, "c1", "recognition", True, now=clock.t)
    link_identity(db, Identity("c1", "ibeacon", IBEACON.format(7)))
    create_order(
        db,
        order_id=1042,
        customer_id="c1",
        location="back room shelf B",
        items=[],
        amount_cents=0,
        now=clock.t,
    )
    for user, role in (("ana", "associate"), ("ben", "associate"), ("mia", "manager")):
        auth.create_staff(db, user, f"{user}-password", role, name=user.title(), now=clock.t)
    core = GatewayCore(load_store(BOUTIQUE), db, clock=clock)
    server = serve(create_app(core))

    ana = _sign_in(browser, server.url, "ana", "ana-password")
    ben = _sign_in(browser, server.url, "ben", "ben-password")
    for page in (ana, ben):
        page.wait_for_selector("#conn.live")
    assert "Ana" in ana.inner_text("#me")

    Feeder(core, clock).seconds(10, IBEACON.format(7))  # Alice walks in: the presence engine announces her
    ana.wait_for_selector("article.alert[data-kind=entered][data-customer=c1]")
    # the profile arrives after the card and redraws it: locators (found again on each use), not element handles
    card = ana.locator("article.alert[data-customer=c1]")
    card.locator("text=Pickup order 1042").wait_for(timeout=10000)
    card.locator("text=tops M").wait_for(timeout=10000)
    text = card.inner_text()
    assert "Alice Adler" in text and "tops M" in text and "Linea" in text
    assert "Pickup order 1042 ready, back room shelf B" in text
    ana.wait_for_selector("#present .row[data-customer=c1] >> text=floor", timeout=10000)

    card.locator("button.claim").click()  # ana: "I'll take it"
    ben.wait_for_selector("article.alert[data-customer=c1].claimed-by-other", timeout=10000)
    assert "With ana" in ben.inner_text("article.alert[data-customer=c1] .claim-state")
    assert ben.is_disabled("article.alert[data-customer=c1] button.claim")
    ana.wait_for_selector("article.alert[data-customer=c1].claimed-by-me")
    ana.screenshot(path=str(tmp_path / "tablet.png"))

    # an associate is refused the dashboard; the manager sees it with its charts
    assert ana.goto(server.url + "/dashboard").status == 403
    record_footfall(db, "entrance-1", clock.t, devices=5, adverts=40)
    mia = _sign_in(browser, server.url, "mia", "mia-password", path="/dashboard")
    charts = mia.locator("figure.chart svg")
    assert charts.count() == 4
    assert mia.locator("figure.chart[data-chart=traffic] svg >> text=Visitors").count() >= 1
    box = charts.first.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100  # actually drawn, not empty
    assert "ana" in mia.inner_text("#staff")
    mia.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)


def test_enrolment_page_in_the_browser(serve, browser, tmp_path) -> None:  # noqa: ANN001
    core = GatewayCore(load_store(BOUTIQUE), open_db(tmp_path / "gw.db"), clock=time.time)
    server = serve(create_app(core))
    page = browser.new_page()
    page.goto(server.url + "/enrol")  # public: no sign-in
    page.wait_for_selector("input[name=purpose][value=recognition]")
    assert "30 days" in page.inner_text("#recorded")
    page.fill("#name", "Carla Conti")
    page.check("input[name=purpose][value=whatsapp_service]")
    page.fill("#whatsapp", "0170 1234")  # no country code: refused with a clear message
    page.click("button[type=submit]")
    page.wait_for_selector("#err >> text=E.164")
    page.fill("#whatsapp", "+39 333 1234567")
    page.check("input[name=purpose][value=recognition]")
    page.fill("#sizes input[data-category=tops]", "S")
    page.click("button[type=submit]")
    page.wait_for_selector("#done:not([hidden]) #qr img")
    assert "identity_key" in (page.text_content("#payload") or "")
    row = core.db.execute("SELECT id, whatsapp, sizes FROM customers").fetchone()
    assert row[1] == "+393331234567" and '"tops": "S"' in row[2]
    wording = core.db.execute(
        "SELECT wording FROM consents WHERE customer_id = ? AND purpose = 'recognition'", [row[0]]
    ).fetchone()[0]
    assert wording in page.locator(".wording").all_text_contents()  # exactly the text the customer saw
