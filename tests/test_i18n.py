"""Choosing a page's language, locale formatting with Babel, German pages served without English
left over, and the consent record keeping which language's wording was shown."""

from __future__ import annotations

import time

import httpx
import pytest

from firmware_config.store import load_store
from gateway import i18n
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage import consent as consent_mod
from gateway.storage.db import open_db
from gateway.web.app import create_app
from tests.conftest import BOUTIQUE
from tests.test_i18n_catalogue import IDENTICAL


def test_device_choice_beats_store_default_beats_browser() -> None:
    assert i18n.choose("en", "de", "de-DE") == "en"
    assert i18n.choose(None, "de", "en-US,en;q=0.9") == "de"
    assert i18n.choose(None, None, "fr-FR, en;q=0.8, de;q=0.9") == "de"  # best supported by weight
    assert i18n.choose("xx", None, "en-GB") == "en"  # a stale or forged cookie is ignored
    assert i18n.choose(None, None, None) == i18n.FALLBACK == "de"


def test_accept_language_order_and_refusals() -> None:
    assert i18n.accepted("en;q=0.5, de-AT, fr;q=0") == ["de", "en"]  # q=0 means "not this one"
    assert i18n.accepted("de;q=abc, en") == ["en"]
    assert i18n.accepted("") == []


def test_prices_numbers_and_days_by_locale() -> None:
    assert i18n.price(8900, "EUR", "de").replace("\xa0", " ") == "89,00 €"
    assert i18n.price(8900, "EUR", "en") == "€89.00"
    assert i18n.number(1234.5, "de", digits=2) == "1.234,50"
    assert i18n.number(1234.5, "en", digits=2) == "1,234.50"
    assert i18n.day("2026-12-06", "de") == "06.12.2026"
    assert i18n.day("2026-12-06", "en") == "Dec 6, 2026"


def test_message_slots_and_fallbacks() -> None:
    assert i18n.t("de", "tablet.with_staff", staff="ana") == "Bei ana"
    assert i18n.t("fr", "tablet.with_staff", staff="ana") == "With ana"  # a customer's language without pages
    assert i18n.t("de", "no.such.key") == "no.such.key"  # never a broken page


def test_consent_wording_exists_in_both_languages_and_is_recognised() -> None:
    for purpose, texts in consent_mod.WORDING.items():
        assert set(i18n.LANGUAGES) <= set(texts)
        for lang in i18n.LANGUAGES:
            assert consent_mod.wording_language(purpose, texts[lang]) == lang
    assert consent_mod.wording_language("recognition", "told in person") == ""


@pytest.fixture
def client(serve, tmp_path):  # noqa: ANN001, ANN201
    store = load_store(BOUTIQUE)
    store = store.model_copy(update={"store": store.store.model_copy(update={"language": "de"})})
    db = open_db(tmp_path / "gw.db")
    auth.create_staff(db, "mia", "mia-password", "manager", name="Mia", now=time.time())
    core = GatewayCore(store, db, clock=time.time)
    server = serve(create_app(core))
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c, core


SHOWN = [(">", "<")] + [(f'{attr}="', '"') for attr in ("title", "placeholder", "aria-label", "alt")]


def _without_catalogue(page: str) -> str:
    start = page.index("<script>const LANG")
    return page[:start] + page[page.index("</script>", start):]


def test_every_page_in_german_has_no_english_left(client) -> None:  # noqa: ANN001
    c, _ = client
    c.post("/api/login", json={"username": "mia", "password": "mia-password"})
    english = {
        k: v for k, v in i18n.catalogue("en").items() if k not in IDENTICAL["de"] and "{" not in v and len(v) > 3
    }
    headers = {"accept-language": "en-US,en;q=0.9"}  # the store's default wins over the browser
    for path in ("/login", "/enrol", "/tablet", "/dashboard", "/fleet", "/fitting-room/fr2"):
        r = c.get(path, headers=headers)
        assert r.status_code == 200, path
        page = _without_catalogue(r.text)
        assert '<html lang="de">' in page and "{{" not in page, path
        left = [v for v in english.values() if any(f"{before}{v}{after}" in page for before, after in SHOWN)]
        assert left == [], path
    c.cookies.set(i18n.COOKIE, "en", domain="127.0.0.1")  # the device's switch beats the store's default
    assert "Staff sign-in" in c.get("/login").text


def test_enrolment_records_the_language_of_the_wording_shown(client) -> None:  # noqa: ANN001
    c, core = client
    form = c.get("/api/enrol/form", params={"language": "de"}).json()
    shown = {p["purpose"]: p["wording"] for p in form["purposes"]}
    assert shown["recognition"] == consent_mod.WORDING["recognition"]["de"]
    assert "30 Tage" in " ".join(form["recorded"])
    r = c.post("/api/enrol", json={"name": "Greta Graf", "consents": {"recognition": shown["recognition"]}})
    assert r.status_code == 201
    row = core.db.execute("SELECT wording, language FROM consents WHERE customer_id = ?", [r.json()["customer_id"]])
    assert row.fetchall() == [(shown["recognition"], "de")]
