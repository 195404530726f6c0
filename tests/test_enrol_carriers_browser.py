"""The enrolment page offers the other carriers once someone joined: the WhatsApp check-in when
they chose a WhatsApp purpose, and the staff's key-fob button when they chose recognition (which
only signed-in staff can use)."""

from __future__ import annotations

import time

import pytest

from firmware_config.store import load_store
from gateway.ingest.core import GatewayCore
from gateway.storage.db import open_db
from gateway.web.app import create_app
from tests.conftest import BOUTIQUE

pytestmark = pytest.mark.slow


def test_enrolment_offers_whatsapp_check_in_and_the_fob_button(serve, browser, tmp_path) -> None:  # noqa: ANN001
    core = GatewayCore(load_store(BOUTIQUE), open_db(tmp_path / "gw.db"), clock=time.time)
    server = serve(create_app(core))
    page = browser.new_page()
    page.goto(server.url + "/enrol")
    page.wait_for_selector("input[name=purpose][value=recognition]")
    page.fill("#name", "Carla Conti")
    page.fill("#whatsapp", "+39 333 1234567")
    page.check("input[name=purpose][value=recognition]")
    page.check("input[name=purpose][value=whatsapp_service]")
    page.click("button[type=submit]")
    page.wait_for_selector("#done:not([hidden]) #qr img")
    assert page.is_visible("#way-whatsapp") and page.is_visible("#fob")
    page.click("#fob summary")
    page.fill("#fob-address", "C4:7C:8D:6A:12:34")
    page.fill("#fob-key", "00" * 16)
    page.click("#fob-go")
    page.wait_for_selector("#fob-msg >> text=signed-in staff")  # a customer alone cannot register one
    assert core.db.execute("SELECT COUNT(*) FROM identities WHERE carrier = 'key_fob'").fetchone()[0] == 0
