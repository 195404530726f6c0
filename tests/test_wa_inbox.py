"""The staff inbox API on the gateway (in-process, no servers): the 24 h window enforced on the
server with a clear error, templates, products, checkout links, assignment, the signed webhook,
consent withdrawal cancelling queued messages and erasure removing every WhatsApp row."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from cloud_sync import messages, outbox, signature
from cloud_sync.config import ConfigError, parse_config
from cloud_sync.service import WhatsAppService
from firmware_config.store import load_store
from gateway.channels.whatsapp_host import whatsapp_service
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.storage.customers import add_customer, record_consent
from gateway.storage.db import open_db
from gateway.web.app import create_app
from gateway.web.routes_whatsapp import mount_whatsapp
from sim.emulator_outbox import emulator_lookup
from tests.conftest import BOUTIQUE
from tests.test_clienteling_consent import Clock

SECRET = "inbox-test-app-secret"
ENV = {
    "INSTORE_WA_ACCESS_TOKEN": "test-access-token",
    "INSTORE_WA_APP_SECRET": SECRET,
    "INSTORE_WA_VERIFY_TOKEN": "inbox-verify-token",
}
ALICE, BOB = "491701111111", "491702222222"
T0 = 1_772_442_000.0  # 2026-03-02 10:00 Berlin (outside quiet hours)


def config_text(
    base_url: str = "http://127.0.0.1:9", *, worker: bool = False, catalogue: bool = False, extra: str = ""
) -> str:
    return f"""
store_name = "Linea"
[api]
base_url = "{base_url}"
phone_number_id = "106540352242922"
catalog_id = "55501"
[[templates]]
name = "tried_followup"
language = "en"
category = "MARKETING"
params = 2
[[templates]]
name = "back_in_size"
language = "en"
category = "MARKETING"
params = 2
[[templates]]
name = "appointment_reminder"
language = "en"
category = "UTILITY"
params = 2
[[templates]]
name = "order_ready"
language = "en"
category = "UTILITY"
params = 1
[shop]
checkout_url = "https://shop.example.com/cart?items={{items}}&ref={{ref}}&store={{store}}"
[outbox]
worker = {"true" if worker else "false"}
rate_per_s = 200
reconcile_after_s = 2
[catalogue]
enabled = {"true" if catalogue else "false"}
{extra}
"""


def make_service(
    tmp_path: Path,
    *,
    now: float = T0,
    base_url: str = "http://127.0.0.1:9",
    worker: bool = False,
    real_clock: bool = False,
) -> tuple[WhatsAppService, GatewayCore, Clock]:
    clock = Clock(now)
    db = open_db(tmp_path / "gw.db")
    add_customer(db, "alice", "Alice Adler", whatsapp="+" + ALICE, now=now)
    add_customer(db, "bob", "Bob Brandt", whatsapp="+" + BOB, now=now)
    for cid, purposes in (
        ("alice", ("whatsapp_service", "whatsapp_marketing")),
        ("bob", ("whatsapp_service",)),
    ):
        for p in purposes:
            record_consent(db, cid, p, True, now=now - 10)
    for g, name, size, price, back in (
        ("04000000000011", "Linen shirt", "M", 4990, 2),
        ("04000000000028", "Wool coat", "38", 19900, 1),
        ("04000000000042", "Chinos", "32", 7990, 0),
    ):
        db["products"].insert(
            {
                "gtin": g,
                "model": name,
                "name": name,
                "brand": "Linea",
                "colour": "navy",
                "size": size,
                "price_cents": price,
                "currency": "EUR",
                "category": "",
                "image_url": "",
                "backroom": back,
            }
        )
    for user, role in (("ana", "associate"), ("ben", "associate"), ("mia", "manager")):
        auth.create_staff(db, user, f"{user}-password", role, name=user.title(), now=now)
    import time as _t

    core = GatewayCore(load_store(BOUTIQUE), db, clock=_t.time if real_clock else clock)
    cfg = parse_config(config_text(base_url, worker=worker), environ=ENV)
    svc = whatsapp_service(core, cfg, clock=_t.time if real_clock else clock, lookup=emulator_lookup(base_url))
    return svc, core, clock


def inbound_payload(sender: str, text: str, mid: str, ts: float) -> dict:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "1555",
                                "phone_number_id": "106540352242922",
                            },
                            "contacts": [{"profile": {"name": "Alice"}, "wa_id": sender}],
                            "messages": [
                                {
                                    "from": sender,
                                    "id": mid,
                                    "timestamp": str(int(ts)),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


def post_signed(client: httpx.Client, payload: dict, secret: str = SECRET) -> int:
    raw = json.dumps(payload).encode()
    return client.post(
        "/whatsapp/webhook",
        content=raw,
        headers={"Content-Type": "application/json", signature.HEADER: signature.sign(raw, secret)},
    ).status_code


@pytest.fixture
def stack(tmp_path: Path, serve):  # noqa: ANN001, ANN201
    svc, core, clock = make_service(tmp_path)
    app = create_app(core)
    mount_whatsapp(app, svc)
    server = serve(app)
    client = httpx.Client(base_url=server.url, timeout=10)
    assert client.post("/api/login", json={"username": "ana", "password": "ana-password"}).status_code == 200
    yield svc, core, clock, client
    client.close()
    svc.close()


def test_free_form_outside_the_window_is_refused_clearly_and_a_template_accepted(stack) -> None:  # noqa: ANN001
    svc, core, clock, client = stack
    r = client.post(f"/api/whatsapp/conversations/{ALICE}/reply", json={"text": "Hello Alice"})
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert detail["field"] == "type" and "24 h" in detail["message"] and "template" in detail["message"]
    assert core.db.execute("SELECT COUNT(*) FROM wa_outbox").fetchone()[0] == 0  # nothing queued

    r = client.post(
        f"/api/whatsapp/conversations/{ALICE}/template",
        json={"name": "order_ready", "language": "en", "params": ["#1042"]},
    )
    assert r.status_code == 202, r.text
    key = r.json()["key"]
    body = json.loads(
        core.db.execute("SELECT body FROM wa_outbox WHERE idempotency_key = ?", [key]).fetchone()[0]
    )
    assert body["type"] == "template" and body["template"]["name"] == "order_ready" and body["to"] == ALICE

    bad = client.post(
        f"/api/whatsapp/conversations/{ALICE}/template",
        json={"name": "spring_sale", "language": "en", "params": []},
    )
    assert bad.status_code == 422 and "not an approved template" in bad.json()["detail"]["message"]
    bad = client.post(
        f"/api/whatsapp/conversations/{ALICE}/template",
        json={"name": "order_ready", "language": "en", "params": []},
    )
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "params"
    # a marketing template needs marketing consent: Bob has only service consent
    bad = client.post(
        f"/api/whatsapp/conversations/{BOB}/template",
        json={"name": "back_in_size", "language": "en", "params": ["Bob", "Chinos"]},
    )
    assert bad.status_code == 403 and "marketing" in bad.json()["detail"]["message"]
    # the same client_ref twice queues one message (a tablet retrying a timed-out POST)
    for _ in range(2):
        r = client.post(
            f"/api/whatsapp/conversations/{BOB}/template",
            json={"name": "order_ready", "language": "en", "params": ["#7"], "client_ref": "tab-0001"},
        )
        assert r.status_code == 202
    assert core.db.execute("SELECT COUNT(*) FROM wa_outbox WHERE customer = ?", [BOB]).fetchone()[0] == 1


def test_signed_inbound_opens_the_window_shows_unread_and_reply_goes_out(stack) -> None:  # noqa: ANN001
    svc, core, clock, client = stack
    payload = inbound_payload(ALICE, "Is the coat still there?", "wamid.in1", clock.t - 60)
    raw = json.dumps(payload).encode()
    assert client.post("/whatsapp/webhook", content=raw).status_code == 401  # unsigned
    assert post_signed(client, payload, secret="wrong") == 401
    assert core.db.execute("SELECT COUNT(*) FROM wa_inbox").fetchone()[0] == 0
    assert post_signed(client, payload) == 200
    assert post_signed(client, payload) == 200  # Meta redelivers: shown once
    convs = client.get("/api/whatsapp/conversations").json()
    assert [(c["wa_id"], c["name"], c["unread"], c["window_open"]) for c in convs] == [
        (ALICE, "Alice Adler", 1, True)
    ]
    ev = core.events.after(0)[-1]
    assert (
        ev.kind == "message" and ev.customer_id == "alice" and ev.data["text"] == "Is the coat still there?"
    )

    r = client.post(
        f"/api/whatsapp/conversations/{ALICE}/reply", json={"text": "Yes, in 38. Shall we keep it?"}
    )
    assert r.status_code == 202, r.text
    conv = client.get(f"/api/whatsapp/conversations/{ALICE}").json()
    assert [(m["direction"], m["text"]) for m in conv["messages"]] == [
        ("in", "Is the coat still there?"),
        ("out", "Yes, in 38. Shall we keep it?"),
    ]
    assert conv["messages"][1]["status"] == "pending" and conv["messages"][1]["staff"] == "ana"
    assert client.get("/api/whatsapp/conversations").json()[0]["unread"] == 0  # opened: read
    # Bob's last message is 25 hours old: his window has closed
    assert post_signed(client, inbound_payload(BOB, "thanks", "wamid.old", clock.t - 25 * 3600)) == 200
    r = client.post(f"/api/whatsapp/conversations/{BOB}/reply", json={"text": "Hello?"})
    assert r.status_code == 409 and "25 h ago" in r.json()["detail"]["message"]


def test_product_checkout_and_assignment(stack) -> None:  # noqa: ANN001
    svc, core, clock, client = stack
    assert post_signed(client, inbound_payload(ALICE, "Shirt in M?", "wamid.in2", clock.t)) == 200
    r = client.post(f"/api/whatsapp/conversations/{ALICE}/product", json={"gtin": "04000000000011"})
    assert r.status_code == 202
    body = json.loads(
        core.db.execute("SELECT body FROM wa_outbox WHERE idempotency_key = ?", [r.json()["key"]]).fetchone()[
            0
        ]
    )
    assert body["interactive"]["type"] == "product"
    assert body["interactive"]["action"] == {"catalog_id": "55501", "product_retailer_id": "04000000000011"}
    miss = client.post(f"/api/whatsapp/conversations/{ALICE}/product", json={"gtin": "04000000009999"})
    assert miss.status_code == 404 and miss.json()["detail"]["field"] == "gtin"

    r = client.post(
        f"/api/whatsapp/conversations/{ALICE}/checkout",
        json={
            "items": [{"gtin": "04000000000011", "quantity": 2}, {"gtin": "04000000000028"}],
            "client_ref": "basket-42",
        },
    )
    assert r.status_code == 202, r.text
    url = r.json()["url"]
    assert url == (
        "https://shop.example.com/cart?items=04000000000011%3A2%2C04000000000028%3A1&ref=basket-42"
        "&store=" + core.store.store.id
    )
    text = json.loads(
        core.db.execute("SELECT body FROM wa_outbox WHERE idempotency_key = ?", [r.json()["key"]]).fetchone()[
            0
        ]
    )["text"]["body"]
    assert url in text and "Total 298.80 EUR" in text
    bad = client.post(
        f"/api/whatsapp/conversations/{ALICE}/checkout",
        json={"items": [{"gtin": "04000000009999", "quantity": 1}]},
    )
    assert bad.status_code == 404 and bad.json()["detail"]["field"] == "items[0].gtin"
    assert client.post(f"/api/whatsapp/conversations/{ALICE}/checkout", json={"items": []}).status_code == 422

    assert (
        client.post(f"/api/whatsapp/conversations/{ALICE}/assign", json={"staff": "ben"}).status_code == 200
    )
    assert client.get("/api/whatsapp/conversations").json()[0]["assigned_to"] == "ben"
    r = client.post(f"/api/whatsapp/conversations/{ALICE}/assign", json={"staff": "nobody"})
    assert r.status_code == 404 and r.json()["detail"]["field"] == "staff"
    assert client.post(f"/api/whatsapp/conversations/{ALICE}/assign", json={"staff": None}).status_code == 200
    assert client.get("/api/whatsapp/conversations").json()[0]["assigned_to"] is None


def test_validation_and_sign_in_are_required(stack) -> None:  # noqa: ANN001
    svc, core, clock, client = stack
    assert (
        client.post("/api/whatsapp/conversations/12/reply", json={"text": "x"}).status_code == 422
    )  # bad number
    assert client.post(f"/api/whatsapp/conversations/{ALICE}/reply", json={"text": ""}).status_code == 422
    assert (
        client.post(f"/api/whatsapp/conversations/{ALICE}/reply", json={"text": "x", "bcc": 1}).status_code
        == 422
    )
    r = client.post("/api/whatsapp/conversations/491709999999/reply", json={"text": "hi"})
    assert r.status_code == 404 and r.json()["detail"]["field"] == "wa_id"
    anon = httpx.Client(base_url=str(client.base_url), timeout=10)
    assert anon.get("/api/whatsapp/conversations").status_code == 401
    assert anon.post(f"/api/whatsapp/conversations/{ALICE}/reply", json={"text": "x"}).status_code == 401
    assert anon.get("/inbox").status_code == 303
    assert client.post("/api/whatsapp/journeys/run").status_code == 403  # managers only
    # the webhook's GET handshake: public, token-checked
    ok = anon.get(
        "/whatsapp/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": "inbox-verify-token", "hub.challenge": "12345"},
    )
    assert ok.status_code == 200 and ok.text == "12345"
    assert (
        anon.get(
            "/whatsapp/webhook",
            params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
        ).status_code
        == 403
    )


def test_withdrawal_cancels_queued_messages_and_erasure_clears_whatsapp_rows(stack) -> None:  # noqa: ANN001
    svc, core, clock, client = stack
    assert post_signed(client, inbound_payload(ALICE, "hi", "wamid.in3", clock.t)) == 200
    conn = core.db.conn
    for key, purpose, body in (
        ("m1", "marketing", messages.template(ALICE, "back_in_size", "en", body_params=["Alice", "Chinos"])),
        ("u1", "utility", messages.template(ALICE, "order_ready", "en", body_params=["#1"])),
    ):
        outbox.enqueue(conn, key, ALICE, body, purpose, clock.t + 3600, now=clock.t)
    r = client.post("/api/customers/alice/consent", json={"purpose": "whatsapp_marketing", "granted": False})
    assert r.status_code == 200, r.text
    status = dict(
        conn.execute("SELECT idempotency_key, status FROM wa_outbox WHERE idempotency_key IN ('m1','u1')")
    )
    assert status == {"m1": "cancelled", "u1": "pending"}
    assert client.post(f"/api/whatsapp/conversations/{ALICE}/reply", json={"text": "ok"}).status_code == 202

    mia = httpx.Client(base_url=str(client.base_url), timeout=10)
    assert mia.post("/api/login", json={"username": "mia", "password": "mia-password"}).status_code == 200
    r = mia.delete("/api/customers/alice")
    assert r.status_code == 200 and r.json()["remaining_traces"] == [], r.json()
    for table, col in (
        ("wa_outbox", "customer"),
        ("wa_contacts", "customer"),
        ("wa_inbox", "wa_id"),
        ("wa_conversations", "wa_id"),
    ):
        assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {col} = ?", [ALICE]).fetchone()[0] == 0, (
            table
        )
    assert client.get("/api/whatsapp/conversations").json() == []


def test_config_errors_name_file_line_and_key() -> None:
    text = config_text().replace('phone_number_id = "106540352242922"', 'phone_number_id = "abc"\ncolour = 1')
    with pytest.raises(ConfigError) as info:
        parse_config(text, "wa.toml", environ=ENV)
    msg = str(info.value)
    assert "wa.toml:5: api.phone_number_id:" in msg and "wa.toml:6: api.colour: unknown key" in msg
    with pytest.raises(
        ConfigError, match=r"webhook.app_secret_file: required \(or set INSTORE_WA_APP_SECRET\)"
    ):
        parse_config(
            config_text(),
            "wa.toml",
            environ={"INSTORE_WA_ACCESS_TOKEN": "t", "INSTORE_WA_VERIFY_TOKEN": "v" * 8},
        )
    bad_tpl = config_text(extra='[journeys.back_in_size]\ntemplate = "nope"\n')
    with pytest.raises(
        ConfigError, match=r"journeys.back_in_size.template: 'nope' is not in \[\[templates\]\]"
    ):
        parse_config(bad_tpl, "wa.toml", environ=ENV)


def test_the_example_config_is_valid(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "cloud_sync" / "examples" / "whatsapp.toml"
    cfg = parse_config(example.read_text(), str(example), environ=ENV)
    assert cfg.journeys.tried_not_bought.send_at == "11:00" and len(cfg.registry()) == 4
