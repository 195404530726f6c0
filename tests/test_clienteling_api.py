"""The clienteling API over real HTTP: enrolment, the till, click & collect, claims and tasks,
each input validated with a 4xx that names the field."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_config.store import load_store
from gateway.engines.epc import encode_sgtin96
from gateway.engines.presence import PresenceEvent
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage.customers import normalise_whatsapp, recognisable_identities
from gateway.storage.db import open_db
from gateway.storage.pos import gtin_of_epc, valid_gtin
from gateway.web.app import create_app
from tests.conftest import BOUTIQUE

STORE = load_store(BOUTIQUE)
GTIN = "4006381333931"  # a valid EAN-13


class Clock:
    t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def gw(serve):  # noqa: ANN001, ANN201
    clock = Clock()
    core = GatewayCore(STORE, open_db(":memory:"), clock=clock)
    auth.create_staff(core.db, "mia", "manager-pass", "manager", now=clock.t)
    auth.create_staff(core.db, "ana", "associate-pass", "associate", now=clock.t)
    auth.create_staff(core.db, "ben", "associate-pass", "associate", now=clock.t)
    app = create_app(core)
    srv = serve(app)
    core.app = app  # type: ignore[attr-defined]  # lets a test reach app.state
    clients = {}
    for user, pw in (("mia", "manager-pass"), ("ana", "associate-pass"), ("ben", "associate-pass")):
        token = httpx.post(f"{srv.url}/api/login", json={"username": user, "password": pw}).json()["token"]
        clients[user] = httpx.Client(
            base_url=srv.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
    clients["public"] = httpx.Client(base_url=srv.url, timeout=10)
    yield clients, core, clock
    for c in clients.values():
        c.close()


def _enrol(c: httpx.Client, purposes: tuple[str, ...] = ("recognition", "whatsapp_service"), **extra) -> dict:  # noqa: ANN003
    form = c.get("/api/enrol/form").json()
    wording = {p["purpose"]: p["wording"] for p in form["purposes"]}
    body = {
        "name": "Alice Adler",
        "whatsapp": "+49 170 1234567",
        "sizes": {"tops": "M", "shoes": "39"},
        "brands": ["Linea"],
        "consents": {p: wording[p] for p in purposes},
        **extra,
    }
    r = c.post("/api/enrol", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _field_error(r: httpx.Response) -> str:
    assert 400 <= r.status_code < 500, r.status_code
    detail = r.json()["detail"]
    return (
        detail
        if isinstance(detail, str)
        else " ".join(f"{'.'.join(map(str, d['loc']))} {d['msg']}" for d in detail)
    )


def test_enrolment_records_consent_wording_key_and_returns_provisioning(gw) -> None:  # noqa: ANN001
    clients, core, clock = gw
    form = clients["public"].get("/api/enrol/form").json()
    assert any("30 days" in r for r in form["recorded"])  # honest about what is kept and for how long
    out = _enrol(clients["public"])
    cid, prov = out["customer_id"], out["provisioning"]
    eid = prov["eddystone"]
    assert len(bytes.fromhex(eid["identity_key"])) == 16
    assert (eid["k"], eid["epoch"], eid["namespace"]) == (
        STORE.store.eid_rotation_exponent,
        0,
        STORE.store.eddystone_namespace,
    )
    assert out["qr_svg"].startswith("<svg") and "path" in out["qr_svg"]
    rows = core.db.execute(
        "SELECT purpose, granted, method, wording FROM consents WHERE customer_id = ?", [cid]
    ).fetchall()
    wording = {p["purpose"]: p["wording"] for p in form["purposes"]}
    assert sorted(rows) == sorted(
        [
            ("recognition", 1, "enrolment-page", wording["recognition"]),
            ("whatsapp_service", 1, "enrolment-page", wording["whatsapp_service"]),
        ]
    )
    assert (
        core.db.execute("SELECT whatsapp FROM customers WHERE id = ?", [cid]).fetchone()[0] == "+491701234567"
    )
    idents = [i for i in recognisable_identities(core.db) if i.customer_id == cid]
    assert [(i.kind, i.value, i.k, i.epoch) for i in idents] == [("eid", eid["identity_key"], 10, 0)]
    assert len(core.resolver) == 1  # recognised from now on, without a restart
    # no recognition chosen: no key at all
    other = _enrol(clients["public"], purposes=("whatsapp_marketing",))
    assert other["provisioning"]["eddystone"] is None
    assert not core.db.execute(
        "SELECT 1 FROM identities WHERE customer_id = ?", [other["customer_id"]]
    ).fetchone()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"whatsapp": "0170 1234567"}, "whatsapp"),
        ({"whatsapp": None}, "whatsapp"),  # WhatsApp purposes need a number
        ({"name": ""}, "name"),
        ({"sizes": {"hats": "M"}}, "sizes"),
        ({"consents": {"recognition": "Track me everywhere"}}, "consents.recognition"),
        ({"consents": {"spam": "x"}}, "consents"),
        ({"language": "xx"}, "language"),
        ({"extra": 1}, "extra"),
    ],
)
def test_enrolment_rejects_bad_input_naming_the_field(gw, change: dict, field: str) -> None:  # noqa: ANN001
    clients, core, _ = gw
    c = clients["public"]
    wording = {p["purpose"]: p["wording"] for p in c.get("/api/enrol/form").json()["purposes"]}
    body = {
        "name": "Al",
        "whatsapp": "+491701234567",
        "consents": {"whatsapp_service": wording["whatsapp_service"]},
    }
    r = c.post("/api/enrol", json={**body, **change})
    assert r.status_code == 422 and field in _field_error(r)
    assert core.db.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=24))
def test_whatsapp_numbers_are_e164_or_refused(text: str) -> None:
    try:
        n = normalise_whatsapp(text)
    except ValueError as err:
        assert str(err).startswith("whatsapp:")
    else:
        assert n.startswith("+") and n[1:].isdigit() and 8 <= len(n) <= 16 and n[1] != "0"


def test_pickup_order_is_on_the_entered_alert_and_collected_at_the_till(gw) -> None:  # noqa: ANN001
    clients, core, clock = gw
    cid = _enrol(clients["public"])["customer_id"]
    ana = clients["ana"]
    r = ana.post(
        "/orders",
        json={
            "order_id": 1042,
            "customer_id": cid,
            "location": "back room shelf B",
            "items": ["Linen shirt M"],
            "amount_cents": 5900,
        },
    )
    assert r.status_code == 201 and r.json()["status"] == "ready"
    assert (
        ana.post("/orders", json={"order_id": 1042, "customer_id": cid, "location": "x"}).status_code == 409
    )
    assert (
        ana.post("/orders", json={"order_id": 7, "customer_id": "nobody", "location": "x"}).status_code == 404
    )
    assert ana.post("/orders", json={"order_id": 0, "customer_id": cid, "location": "x"}).status_code == 422
    ev = core.emit(PresenceEvent("entered", cid, clock.t, "entrance", "pavement", 0.9))
    assert ev.data["customer"]["pickup_orders"] == [
        {"id": 1042, "location": "back room shelf B", "items": ["Linen shirt M"]}
    ]
    assert ana.post(f"/api/claims/customer/{cid}").status_code == 200  # ana greets her: sale is ana's
    epc = encode_sgtin96("4012345", "012345", 7)
    r = ana.post("/pos/sales", json={"epcs": [epc], "gtins": [GTIN], "amount_cents": 5900, "order_id": 1042})
    assert r.status_code == 201, r.text
    assert r.json()["customer_id"] == cid and r.json()["staff_id"] == 2
    assert ana.get("/orders/1042").json()["status"] == "collected"
    assert (
        ana.post("/pos/sales", json={"gtins": [GTIN], "amount_cents": 1, "order_id": 1042}).status_code == 409
    )
    card = ana.get(f"/api/customers/{cid}/card").json()
    assert card["pickup_orders"] == [] and card["last_purchases"][0]["amount_cents"] == 5900
    assert card["last_purchases"][0]["gtins"] == [gtin_of_epc(epc), valid_gtin(GTIN)]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"gtins": ["4006381333932"], "amount_cents": 100}, 422, "gtin"),  # wrong check digit
        ({"gtins": ["12345"], "amount_cents": 100}, 422, "gtins"),
        ({"epcs": ["zz" * 12], "amount_cents": 100}, 422, "epcs"),
        ({"epcs": ["30"], "amount_cents": 100}, 422, "epcs"),
        ({"gtins": [GTIN], "amount_cents": -1}, 422, "amount_cents"),
        ({"gtins": [GTIN]}, 422, "amount_cents"),
        ({"amount_cents": 100}, 422, "epcs"),  # no items
        ({"gtins": [GTIN], "amount_cents": 1, "currency": "euro"}, 422, "currency"),
        ({"gtins": [GTIN], "amount_cents": 1, "customer_id": "nobody"}, 404, "customer_id"),
        ({"gtins": [GTIN], "amount_cents": 1, "order_id": 99}, 404, "order_id"),
        ({"gtins": [GTIN], "amount_cents": 1, "staff_username": "ghost"}, 422, "staff_username"),
        ({"gtins": [GTIN], "amount_cents": 1, "surprise": True}, 422, "surprise"),
    ],
)
def test_pos_sales_validation(gw, body: dict, status: int, field: str) -> None:  # noqa: ANN001
    clients, core, _ = gw
    r = clients["ana"].post("/pos/sales", json=body)
    assert r.status_code == status and field in _field_error(r), r.text
    assert core.db.execute("SELECT COUNT(*) FROM sales").fetchone()[0] == 0


def test_claims_are_one_at_a_time_and_go_out_on_the_stream(gw) -> None:  # noqa: ANN001
    clients, core, clock = gw
    cid = _enrol(clients["public"])["customer_id"]
    alert = core.emit(PresenceEvent("entered", cid, clock.t, "entrance", "pavement", 0.9))
    clock.t += 20
    ana, ben, mia = clients["ana"], clients["ben"], clients["mia"]
    r = ana.post(f"/api/claims/customer/{cid}")
    assert r.status_code == 200 and r.json()["answered_event"] == alert.id
    assert ben.post(f"/api/claims/customer/{cid}").status_code == 409
    assert ben.delete(f"/api/claims/customer/{cid}").status_code == 409
    assert ana.post(f"/api/claims/customer/{cid}").status_code == 200  # idempotent for the holder
    assert ana.post("/api/claims/customer/nobody").status_code == 404
    assert ana.post(f"/api/claims/shop/{cid}").status_code == 422
    events = [e for e in core.events.after(alert.id) if e.kind == "claimed"]
    assert events[0].data["staff"] == "ana" and events[0].data["subject"] == f"customer:{cid}"
    assert mia.delete(f"/api/claims/customer/{cid}").json()["released"] is True  # a manager may free it
    assert ben.post(f"/api/claims/customer/{cid}").status_code == 200
    answer = core.db.execute("SELECT staff_id, answered_at - alert_ts FROM alert_answers").fetchall()
    assert answer == [(2, 20.0)]  # answered once, by ana, 20 s after the alert
    kpi = mia.get("/api/kpi").json()
    assert kpi["alerts"] == {"answered_within_60s": 1, "answered_late": 0, "missed": 0}
    assert kpi["per_staff"]["ana"]["alerts_answered_within_60s"] == 1


def test_tasks_due_today_and_profile_edits(gw) -> None:  # noqa: ANN001
    clients, core, clock = gw
    cid = _enrol(clients["public"])["customer_id"]
    ana = clients["ana"]
    assert (
        ana.post(
            "/api/tasks", json={"title": "Call about the jacket", "customer_id": cid, "due_at": clock.t + 60}
        ).status_code
        == 201
    )
    assert (
        ana.post("/api/tasks", json={"title": "Next month", "due_at": clock.t + 40 * 86400}).status_code
        == 201
    )
    assert ana.post("/api/tasks", json={"title": ""}).status_code == 422
    assert ana.post("/api/tasks", json={"title": "x", "customer_id": "nobody"}).status_code == 404
    today = ana.get("/api/tasks", params={"due": "today"}).json()
    assert [t["title"] for t in today] == ["Call about the jacket"] and today[0]["customer"] == "Alice Adler"
    assert len(ana.get("/api/tasks").json()) == 2
    assert (
        ana.get(f"/api/customers/{cid}/card").json()["open_followups"][0]["title"] == "Call about the jacket"
    )
    assert clients["ben"].post(f"/api/claims/task/{today[0]['id']}").status_code == 200
    assert ana.post(f"/api/claims/task/{today[0]['id']}").status_code == 409
    assert ana.post(f"/api/tasks/{today[0]['id']}/done").status_code == 200
    assert ana.post(f"/api/tasks/{today[0]['id']}/done").status_code == 404
    r = ana.patch(f"/api/customers/{cid}", json={"colours": ["navy"], "whatsapp": "0049 171 2223334"})
    assert r.status_code == 200 and r.json()["colours"] == ["navy"]
    assert ana.patch(f"/api/customers/{cid}", json={"whatsapp": "12"}).status_code == 422
    assert ana.patch(f"/api/customers/{cid}", json={"name": None}).status_code == 422
    assert ana.patch("/api/customers/nobody", json={"notes": "x"}).status_code == 404
    assert ana.post(f"/api/customers/{cid}/notes", json={"text": "Prefers linen"}).status_code == 201
    rec = ana.get(f"/api/customers/{cid}").json()
    assert rec["whatsapp"] == "+491712223334" and rec["staff_notes"][0]["staff"] == "ana"
    assert ana.get("/api/customers", params={"q": "Ali"}).json()[0]["id"] == cid


def test_consent_withdrawal_over_the_api_and_manager_export_and_erasure(gw) -> None:  # noqa: ANN001
    clients, core, _ = gw
    cid = _enrol(clients["public"])["customer_id"]
    ana, mia = clients["ana"], clients["mia"]
    cancelled: list[str] = []  # what the WhatsApp outbox would do: cancel queued messages
    core.app.state.clienteling.hooks.register_withdraw("whatsapp_service", cancelled.append)
    core.app.state.clienteling.hooks.register_erase(lambda c: cancelled.append("erased " + c))
    r = ana.post(f"/api/customers/{cid}/consent", json={"purpose": "whatsapp_service", "granted": False})
    assert r.json()["consent"]["whatsapp_service"] is False and cancelled == [cid]
    r = ana.post(f"/api/customers/{cid}/consent", json={"purpose": "recognition", "granted": False})
    assert r.status_code == 200 and r.json()["consent"]["recognition"] is False
    assert len(core.resolver) == 0
    r = ana.post(f"/api/customers/{cid}/consent", json={"purpose": "recognition", "granted": True})
    assert r.json()["consent"]["recognition"] is True and len(core.resolver) == 1
    assert (
        ana.post(f"/api/customers/{cid}/consent", json={"purpose": "spying", "granted": True}).status_code
        == 422
    )
    export = mia.get(f"/api/customers/{cid}/export").json()
    assert [c["purpose"] for c in export["consents"]][-2:] == ["recognition", "recognition"]
    json.dumps(export)
    r = mia.delete(f"/api/customers/{cid}")
    assert r.status_code == 200 and r.json()["remaining_traces"] == []
    assert mia.get(f"/api/customers/{cid}").status_code == 404 and len(core.resolver) == 0
    assert mia.delete(f"/api/customers/{cid}").status_code == 404
    assert cancelled[-1] == f"erased {cid}"
