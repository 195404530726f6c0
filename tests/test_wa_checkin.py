"""WhatsApp check-in: the prepared text and its click-to-chat link, and the signed inbound "check-in"
for a known, an unknown, a withdrawn-consent and an erased number; the printable QR page."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import httpx
import pytest

from cloud_sync.config import ConfigError, parse_config
from firmware_config.store import ZoneKind, load_store
from gateway.channels import checkin
from gateway.channels.whatsapp_host import whatsapp_service
from gateway.storage.consent import sync_visits
from gateway.web.app import create_app
from gateway.web.routes_whatsapp import mount_whatsapp
from tests.conftest import BOUTIQUE
from tests.test_wa_inbox import ALICE, BOB, ENV, config_text, inbound_payload, make_service, post_signed

NUMBER = "4930555000111"
ENROL_URL = "https://linea.example.com/enrol"
CHECKIN = f'[checkin]\nnumber = "{NUMBER}"\nenrol_url = "{ENROL_URL}"\n'
STRANGER = "491709999999"


def test_places_come_from_the_store_file_and_the_text_round_trips_in_both_languages() -> None:
    places = checkin.places(load_store(BOUTIQUE))
    assert [(p.kind, p.n) for p in places if p.kind is ZoneKind.FITTING_ROOM] == [
        (ZoneKind.FITTING_ROOM, 1), (ZoneKind.FITTING_ROOM, 2), (ZoneKind.FITTING_ROOM, 3)
    ]
    assert {p.kind for p in places} == {ZoneKind.ENTRANCE, ZoneKind.TILL, ZoneKind.FITTING_ROOM}
    fr2 = next(p for p in places if p.zone == "fr2")
    for lang, words in (("en", "Check in: Fitting room 2"), ("de", "Einchecken: Umkleide 2")):
        text = checkin.prepared_text(lang, fr2)
        assert text == f"{words} #fr2"
        assert checkin.parse(text, places) == (lang, fr2)
        link = urlparse(checkin.click_to_chat(NUMBER, text))
        assert (link.netloc, link.path) == ("wa.me", f"/{NUMBER}")
        assert parse_qs(link.query)["text"] == [text]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("check-in #nowhere", ("en", None)),  # an unknown tag still checks in, without a place
        ("CHECKIN", ("en", None)),
        ("Is the coat still there?", None),
        ("checking in tomorrow", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_edge_cases(text: str | None, expected: tuple | None) -> None:
    assert checkin.parse(text, checkin.places(load_store(BOUTIQUE))) == expected


def test_checkin_config_is_checked_with_its_line() -> None:
    bad = config_text(extra='[checkin]\nnumber = "+49 30"\nenrol_url = "http://example.com"\n')
    with pytest.raises(ConfigError) as err:
        parse_config(bad, "wa.toml", environ=ENV)
    text = str(err.value)
    assert "checkin.number" in text and "checkin.enrol_url: must be an https:// URL" in text and "wa.toml:" in text


@pytest.fixture
def stack(tmp_path: Path, serve):  # noqa: ANN001, ANN201
    first, core, clock = make_service(tmp_path)
    first.close()
    svc = whatsapp_service(core, parse_config(config_text(extra=CHECKIN), environ=ENV), clock=clock)
    core.db.execute("UPDATE customers SET language = 'de' WHERE id = 'alice'")
    app = create_app(core)
    mount_whatsapp(app, svc)
    server = serve(app)
    client = httpx.Client(base_url=server.url, timeout=10)
    yield app.state.checkin, core, clock, client  # the check-in shell (gateway.channels.checkin)
    client.close()
    svc.close()


def _outbox(core, number: str) -> list[tuple[str, dict]]:  # noqa: ANN001
    rows = core.db.execute(
        "SELECT idempotency_key, body FROM wa_outbox WHERE customer = ? ORDER BY id", [number]
    ).fetchall()
    return [(k, json.loads(b)) for k, b in rows]


def _entries(core) -> list:  # noqa: ANN001
    return [ev for ev in core.events.after(0) if ev.kind == "entered"]


def test_known_customer_checks_in_alert_visit_and_welcome_in_their_language(stack) -> None:  # noqa: ANN001
    checkins, core, clock, client = stack
    payload = inbound_payload(ALICE, "Einchecken: Umkleide 1 #fr1", "wamid.c1", clock.t - 2)
    assert post_signed(client, payload) == 200
    assert post_signed(client, payload) == 200  # Meta redelivers: one alert, one reply
    [ev] = _entries(core)
    assert ev.customer_id == "alice"
    assert ev.data["checked_in"] == {"via": "whatsapp", "place": "fr1"} and ev.data["zone"] == "fr1"
    assert ev.data["customer"]["name"] == "Alice Adler"  # the same card as a BLE entry
    [(key, body)] = _outbox(core, ALICE)
    assert key == "checkin:wamid.c1"
    assert body["text"]["body"].startswith("Willkommen, Alice!") and "Umkleide 1" in body["text"]["body"]
    sync_visits(core.db)
    assert core.db.execute("SELECT customer_id, left_at FROM visits").fetchall() == [("alice", None)]
    # an ordinary message is not a check-in
    assert post_signed(client, inbound_payload(ALICE, "Danke!", "wamid.c2", clock.t - 1)) == 200
    assert len(_entries(core)) == 1 and len(_outbox(core, ALICE)) == 1
    # scanning the same code again (a new message) is a double scan: no second alert or reply
    assert post_signed(client, inbound_payload(ALICE, "Einchecken: Umkleide 1 #fr1", "wamid.c3", clock.t)) == 200
    assert len(_entries(core)) == 1 and checkins.counters["repeat"] == 1
    # another place in the same visit is news: the team sees her at the till
    assert post_signed(client, inbound_payload(ALICE, "Einchecken: Kasse 1 #till", "wamid.c4", clock.t)) == 200
    assert [e.data["checked_in"]["place"] for e in _entries(core)] == ["fr1", "till"]


def test_unknown_number_gets_the_enrolment_link_and_no_alert(stack) -> None:  # noqa: ANN001
    checkins, core, clock, client = stack
    assert post_signed(client, inbound_payload(STRANGER, "Check in: Till 1 #till", "wamid.u1", clock.t)) == 200
    assert _entries(core) == []
    [(_, body)] = _outbox(core, STRANGER)
    assert ENROL_URL in body["text"]["body"] and body["text"]["body"].startswith("Hello!")
    assert checkins.counters["enrol"] == 1


def test_withdrawn_consent_no_alert_and_a_polite_reply(stack) -> None:  # noqa: ANN001
    checkins, core, clock, client = stack
    r = client.post("/api/login", json={"username": "mia", "password": "mia-password"})
    assert r.status_code == 200
    r = client.post("/api/customers/bob/consent", json={"purpose": "whatsapp_service", "granted": False})
    assert r.status_code == 200
    assert post_signed(client, inbound_payload(BOB, "check-in #door", "wamid.w1", clock.t)) == 200
    assert _entries(core) == []
    [(_, body)] = _outbox(core, BOB)
    assert "not checked you in" in body["text"]["body"]


def test_erased_customer_is_never_checked_in_again(stack) -> None:  # noqa: ANN001
    checkins, core, clock, client = stack
    assert client.post("/api/login", json={"username": "mia", "password": "mia-password"}).status_code == 200
    assert client.delete("/api/customers/alice").status_code == 200
    assert post_signed(client, inbound_payload(ALICE, "Einchecken #fr1", "wamid.e1", clock.t)) == 200
    assert _entries(core) == []
    [(_, body)] = _outbox(core, ALICE)
    assert ENROL_URL in body["text"]["body"]  # a stranger now; the old name is nowhere
    assert "Alice" not in body["text"]["body"]


def test_stale_redelivery_alerts_nobody(stack) -> None:  # noqa: ANN001
    checkins, core, clock, client = stack
    late = clock.t - checkin.STALE_S - 60
    assert post_signed(client, inbound_payload(ALICE, "check in #door", "wamid.s1", late)) == 200
    assert _entries(core) == [] and _outbox(core, ALICE) == []


def test_qr_page_is_for_managers_and_holds_one_code_per_place(stack) -> None:  # noqa: ANN001
    checkins, core, clock, client = stack
    assert client.post("/api/login", json={"username": "ana", "password": "ana-password"}).status_code == 200
    assert client.get("/checkin-codes").status_code == 403
    assert client.post("/api/login", json={"username": "mia", "password": "mia-password"}).status_code == 200
    client.cookies.set("instore_lang", "de")
    page = client.get("/checkin-codes")
    assert page.status_code == 200
    places = checkin.places(core.store)
    assert page.text.count('<section class="code"') == len(places) == page.text.count("<svg")
    assert "Scannen und mit WhatsApp einchecken" in page.text and "{{" not in page.text
    url = page.text.split('data-zone="fr3" data-url="', 1)[1].split('"', 1)[0]
    text = unquote(url.split("?text=", 1)[1])
    assert url.startswith(f"https://wa.me/{NUMBER}?") and text == "Einchecken: Umkleide 3 #fr3"
