"""The WhatsApp channel end to end: the real gateway (uvicorn, lifespan, outbox worker thread)
and the Cloud API emulator posting signed webhooks to it.  STOP ends marketing and is confirmed
once, erasure leaves no WhatsApp trace, the catalogue follows stock, and the inbox works in
headless Chromium: an inbound message arrives live and the reply reaches the emulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud_sync import messages, outbox
from gateway.storage.customers import has_consent
from gateway.web.app import create_app
from gateway.web.routes_whatsapp import mount_whatsapp
from sim.whatsapp_emulator import EmulatorConfig, run_emulator
from tests.test_wa_inbox import ALICE, SECRET, make_service

pytestmark = pytest.mark.slow


def wait_for(pred: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def live(tmp_path: Path, serve):  # noqa: ANN001, ANN201
    emu = run_emulator(EmulatorConfig(app_secret=SECRET, webhook_delay_s=(0.01, 0.05), seed=7))
    svc, core, _clock = make_service(
        tmp_path, now=time.time(), base_url=emu.url, worker=True, real_clock=True
    )
    emu_state = emu.server.config.app.state.emulator
    emu_state.registry = svc.policy.templates  # the same approved templates as the gateway's config
    app = create_app(core)
    mount_whatsapp(app, svc)
    gw = serve(app)
    emu_state.config.webhook_url = f"{gw.url}/whatsapp/webhook"
    http = httpx.Client(timeout=10)
    yield svc, core, gw, emu, http
    http.close()
    emu.stop()


def sent_to(http: httpx.Client, emu_url: str, number: str) -> list[dict]:
    return http.get(f"{emu_url}/_emulator/sent", params={"to": number}).json()["messages"]


def test_stop_through_gateway_and_emulator_ends_marketing_and_confirms_once(live) -> None:  # noqa: ANN001
    svc, core, gw, emu, http = live
    conn = core.db.conn
    with svc.lock:  # a marketing message waiting for tomorrow
        outbox.enqueue(
            conn,
            "promo-1",
            ALICE,
            messages.template(ALICE, "back_in_size", "en", body_params=["Alice", "Chinos"]),
            "marketing",
            time.time() + 86400,
        )
    assert has_consent(core.db, "alice", "whatsapp_marketing")
    r = http.post(f"{emu.url}/_emulator/inbound", json={"from": ALICE, "text": "STOP", "name": "Alice"})
    assert r.json()["webhook_status"] == 200
    assert not has_consent(core.db, "alice", "whatsapp_marketing")
    assert has_consent(core.db, "alice", "whatsapp_service")  # service messages continue
    row = conn.execute("SELECT method FROM consents WHERE customer_id = 'alice' ORDER BY id DESC").fetchone()
    assert row[0] == "whatsapp opt-out (STOP)"
    assert (
        conn.execute("SELECT status FROM wa_outbox WHERE idempotency_key = 'promo-1'").fetchone()[0]
        == "cancelled"
    )
    confirmation = wait_for(lambda: sent_to(http, emu.url, ALICE), what="the confirmation")
    assert (
        len(confirmation) == 1 and "no longer get news and offers" in confirmation[0]["body"]["text"]["body"]
    )
    # the status webhooks come back signed and move the row to read
    wait_for(
        lambda: (
            conn.execute("SELECT status FROM wa_outbox WHERE idempotency_key LIKE 'optout:%'").fetchone()[0]
            == "read"
        ),
        what="read status",
    )

    # a second STOP (and the button variant) changes nothing and is not confirmed again
    http.post(f"{emu.url}/_emulator/inbound", json={"from": ALICE, "text": "Stop!"})
    http.post(
        f"{emu.url}/_emulator/inbound", json={"from": ALICE, "button": {"payload": "STOP", "text": "Stop"}}
    )
    time.sleep(0.8)
    assert len(sent_to(http, emu.url, ALICE)) == 1
    withdrawals = conn.execute(
        "SELECT COUNT(*) FROM consents WHERE customer_id = 'alice' AND "
        "purpose = 'whatsapp_marketing' AND granted = 0"
    ).fetchone()[0]
    assert withdrawals == 1
    assert sorted(e.data["direction"] for e in core.events.after(0) if e.kind == "message").count("in") == 3


def test_erasure_through_the_gateway_leaves_no_whatsapp_trace(live) -> None:  # noqa: ANN001
    svc, core, gw, emu, http = live
    http.post(f"{emu.url}/_emulator/inbound", json={"from": ALICE, "text": "Do you have the coat in 38?"})
    staff = httpx.Client(base_url=gw.url, timeout=10)
    assert staff.post("/api/login", json={"username": "mia", "password": "mia-password"}).status_code == 200
    r = staff.post(f"/api/whatsapp/conversations/{ALICE}/reply", json={"text": "Yes, shall we keep it?"})
    assert r.status_code == 202
    conn = core.db.conn
    wait_for(
        lambda: (
            conn.execute("SELECT COUNT(*) FROM wa_status_events WHERE recipient_id = ?", [ALICE]).fetchone()[
                0
            ]
            >= 3
        ),
        what="status webhooks",
    )
    r = staff.delete("/api/customers/alice")
    assert r.status_code == 200 and r.json()["remaining_traces"] == []
    for table in ("wa_outbox", "wa_status_events", "wa_contacts", "wa_inbox", "wa_conversations"):
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
    time.sleep(0.3)  # a late status webhook for an erased customer is dropped, not stored
    assert conn.execute("SELECT COUNT(*) FROM wa_status_events").fetchone()[0] == 0
    staff.close()


def test_catalogue_sync_follows_stock_batched_and_retried(live) -> None:  # noqa: ANN001
    svc, core, gw, emu, http = live
    res = svc.sync_catalogue()
    assert (res.changed, res.sent, res.failed_batches) == (3, 3, 0)
    items = http.get(f"{emu.url}/_emulator/catalogue/55501").json()["items"]
    assert (
        items["04000000000011"]["availability"] == "in stock"
        and items["04000000000011"]["price"] == "49.90 EUR"
    )
    assert items["04000000000042"]["availability"] == "out of stock"
    assert svc.sync_catalogue().changed == 0  # unchanged items are not sent again
    core.db.execute("UPDATE products SET backroom = 5 WHERE gtin = '04000000000042'")
    http.post(f"{emu.url}/_emulator/errors", json={"code": 2, "endpoint": "items_batch", "http_status": 503})
    res = svc.sync_catalogue()
    assert (res.changed, res.sent, res.failed_batches) == (1, 1, 0)  # retried after the 503
    items = http.get(f"{emu.url}/_emulator/catalogue/55501").json()["items"]
    assert items["04000000000042"]["availability"] == "in stock"


def test_inbox_in_chromium_sees_an_inbound_message_live_and_replies(live, browser, tmp_path) -> None:  # noqa: ANN001
    svc, core, gw, emu, http = live
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, service_workers="block")
    page = ctx.new_page()
    page.goto(gw.url + "/inbox")
    assert "/login?next=" in page.url
    page.fill("#u", "ana")
    page.fill("#p", "ana-password")
    page.click("#go")
    page.wait_for_url(gw.url + "/inbox")
    page.wait_for_selector("#conn.live")
    assert page.locator(".conv").count() == 0

    http.post(f"{emu.url}/_emulator/inbound", json={"from": ALICE, "text": "Is the linen shirt in M?"})
    conv = page.wait_for_selector(f".conv[data-wa='{ALICE}']", timeout=5000)
    assert "Alice Adler" in conv.inner_text() and "Is the linen shirt in M?" in conv.inner_text()
    assert page.inner_text(f".conv[data-wa='{ALICE}'] .badge") == "1"
    conv.click()
    page.wait_for_selector("#window.open")
    page.wait_for_selector("#thread .msg.in >> text=Is the linen shirt in M?")
    page.fill("#text", "Yes, we have it in M. Shall I keep one for you?")
    page.click("#send")
    page.wait_for_selector("#thread .msg.out >> text=Shall I keep one for you?")
    got = wait_for(
        lambda: [m for m in sent_to(http, emu.url, ALICE) if m["type"] == "text"], what="the reply"
    )
    assert got[0]["body"]["text"]["body"] == "Yes, we have it in M. Shall I keep one for you?"
    assert page.inner_text(f".conv[data-wa='{ALICE}'] .badge") in ("", "0") or not page.is_visible(
        f".conv[data-wa='{ALICE}'] .badge"
    )
    page.screenshot(path=str(tmp_path / "inbox.png"))
    ctx.close()
