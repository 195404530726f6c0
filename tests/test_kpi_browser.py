"""The dashboard in headless Chromium: German, a fortnight of door counts, sales and WhatsApp messages,
on a phone (390 px: no sideways scroll) and on a desktop, with the tables' CSV links."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cloud_sync import inbox, migrations
from edge import protocol
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage.customers import add_customer
from gateway.storage.db import open_db
from gateway.web.app import create_app
from tests.shots import save_shot
from tests.test_kpi_dashboard import DAY, MON_10, STORE, Clock, H

pytestmark = pytest.mark.slow
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def fill_history(core: GatewayCore, days: int = 14, seed: int = 1) -> None:
    """Door crossings, sales and WhatsApp messages for the `days` days up to Monday (opening hours 10-18)."""
    rng = random.Random(seed)
    migrations.migrate(core.db.conn)
    ana = core.db.execute("SELECT id FROM staff WHERE username = 'ana'").fetchone()[0]
    topic = protocol.node_topic("boutique", "entrance-1", "door")
    seq = 0
    for d in range(days):
        day0 = MON_10 - d * DAY
        for h in range(8):
            for _ in range(rng.randrange(4, 16)):
                t = day0 + h * H + rng.uniform(0, H)
                for direction in ("in", "out"):
                    seq += 1
                    crossing = protocol.DoorCrossing(t=t + (0 if direction == "in" else 900), direction=direction,
                                                     confidence=0.95)
                    core.handle(topic, protocol.encode(protocol.DoorCrossings(
                        v=1, store="boutique", node="entrance-1", seq=seq, ts=t + 901, door="front",
                        sensor="beam", crossings=[crossing])))
            if rng.random() < 0.6:
                core.db.execute("INSERT INTO sales (ts, amount_cents, currency, till) VALUES (?, ?, 'EUR', 't1')",
                                [day0 + h * H + 1200, rng.randrange(2000, 20000)])
    for i in range(6):
        cid, number = f"c{i}", f"4917000000{i:02d}"
        add_customer(core.db, cid, f"Customer {i}", whatsapp="+" + number, now=MON_10 - 20 * DAY)
        at = MON_10 - rng.randrange(1, 5) * DAY
        journey = ("tried", "back")[i % 2]
        inbox.add_outbound(core.db.conn, number, cid, f"j{i}", f"journey:{journey}", "hi", {}, None, at)
        if i % 2 == 0:
            core.db.execute("INSERT INTO visits (customer_id, entered_at) VALUES (?, ?)", [cid, at + DAY])
            core.db.execute("INSERT INTO sales (ts, customer_id, amount_cents, currency, till) VALUES (?, ?, ?, "
                            "'EUR', 't1')", [at + DAY + 600, cid, 8900])
        core.db.execute("INSERT INTO wa_inbox (wa_id, customer_id, direction, kind, text, at) VALUES (?, ?, 'in', "
                        "'text', 'hi', ?)", [number, cid, at + 3600])
        inbox.add_outbound(core.db.conn, number, cid, f"s{i}", "text", "hello", {}, ana, at + 3600 + 300 * (i + 1))


def serve_history(serve, tmp_path: Path):  # noqa: ANN001, ANN201
    core = GatewayCore(STORE, open_db(tmp_path / "gw.db"), clock=Clock())
    for user, role in (("mia", "manager"), ("ana", "associate")):
        auth.create_staff(core.db, user, f"{user}-password", role, name=user.title(), now=MON_10)
    fill_history(core)
    return serve(create_app(core))


def open_dashboard(browser, url: str, lang: str, viewport: dict):  # noqa: ANN001, ANN201
    ctx = browser.new_context(viewport=viewport, locale=lang, service_workers="block")
    ctx.add_cookies([{"name": "instore_lang", "value": lang, "url": url}])
    page = ctx.new_page()
    page.clock.install()  # the page's own timers, to fast-forward to its refresh
    page.goto(url + "/dashboard")
    page.fill("#u", "mia")
    page.fill("#p", "mia-password")
    page.click("#go")
    page.wait_for_url(url + "/dashboard")
    return page


def test_dashboard_in_german_on_a_phone_has_no_sideways_scroll(serve, browser, tmp_path) -> None:  # noqa: ANN001
    server = serve_history(serve, tmp_path)
    page = open_dashboard(browser, server.url, "de", PHONE)
    assert page.locator("html").get_attribute("lang") == "de"
    with page.expect_response(lambda r: r.url.endswith("/dashboard") and r.ok):  # fresh figures each minute
        page.clock.fast_forward(61_000)
    tiles = page.locator(".tile .l").all_inner_texts()
    assert "Besucher (aus Türzählung geschätzt)" in tiles and "Konversion (Verkäufe je Besucher)" in tiles
    assert page.locator("#summary").inner_text().startswith("01.03.2026")  # yesterday, written the German way
    assert "€" in page.locator(".tiles").inner_text() and "%" in page.locator(".tiles").inner_text()
    assert page.locator("#messages tbody tr").count() == 3  # two journeys and the staff replies
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width} px wide"
    save_shot(page, "dashboard-de-phone.png")
    with page.expect_download() as dl:
        page.click("a[href^='/api/kpi/messages.csv']")
    assert Path(dl.value.path()).read_text().startswith("channel,name,messages")


def test_dashboard_in_english_on_a_desktop_labels_the_estimate(serve, browser, tmp_path) -> None:  # noqa: ANN001
    server = serve_history(serve, tmp_path)
    page = open_dashboard(browser, server.url, "en", DESKTOP)
    assert page.locator("html").get_attribute("lang") == "en"
    tiles = page.locator(".tile .l").all_inner_texts()
    assert "Visitors (estimated from door counts)" in tiles and "Conversion (sales per visitor)" in tiles
    assert page.locator("#messages tbody tr").count() == 3
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= DESKTOP["width"], f"the page scrolls sideways: {width} px wide"
    save_shot(page, "dashboard-en-desktop.png")
