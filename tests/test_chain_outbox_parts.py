"""The parts of HQ's WhatsApp outbox without servers: a store with `[outbox] at_hq` queues a request
instead of sending, the request HQ makes of it, the 24-hour recipient budget, inbound charged to the
number's bucket, the relay codec, and a forged or repeated request (docs/chain.md, "WhatsApp at HQ")."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cloud_sync import outbox
from cloud_sync.config import parse_config
from cloud_sync.errors import Action, CloudApiError
from cloud_sync.events import InboundMessage, OrderItem, StatusEvent
from cloud_sync.ratelimit import TokenBucket
from cloud_sync.relay import from_wire, to_wire
from cloud_sync.rules import DecisionKind, Policy, Purpose, Rules, TemplateRegistry
from firmware_config.store import Chain
from gateway.channels.chain_publish import chain_message
from gateway.channels.chain_whatsapp import FromHq
from instore import hq_outbox
from instore.hq_outbox import RECIPIENT_WINDOW_S, BudgetRules, HqOutbox, RequestError, budget_release, message_request
from tests.test_wa_inbox import ALICE, ENV, config_text, make_service

DAY = RECIPIENT_WINDOW_S


def test_a_store_at_hq_queues_a_request_for_hq_and_runs_no_worker(tmp_path: Path) -> None:
    svc, core, _clock = make_service(tmp_path)
    svc.cfg = parse_config(config_text(worker=True).replace("[outbox]\n", "[outbox]\nat_hq = true\n"), environ=ENV)
    for _ in range(2):  # a tablet retrying: one request
        svc.send_template(ALICE, "order_ready", "en", ["#1042"], None, client_ref="tab-1")
    svc.start()
    try:
        assert svc.worker is None  # the number's outbox is HQ's
    finally:
        svc.stop()
    requests = [ev for ev in core.events.after(0, 1000) if ev.kind == "wa_request"]
    assert len(requests) == 1 and requests[0].customer_id == "alice"
    msg = chain_message("boutique", requests[0], "g1")
    assert msg is not None and msg.subject == "chain.boutique.events.message"
    req = message_request("boutique", json.loads(msg.payload))
    assert req.key == f"boutique:staff:{ALICE}:tab-1" and req.to == ALICE and req.customer_id == "alice"
    assert req.body["to"] == ALICE and req.body["template"]["name"] == "order_ready"
    assert req.purpose == "service"


def test_a_store_applies_statuses_and_replies_relayed_by_hq(tmp_path: Path) -> None:
    svc, core, clock = make_service(tmp_path)
    svc.cfg = parse_config(config_text().replace("[outbox]\n", "[outbox]\nat_hq = true\n"), environ=ENV)
    key = svc.send_template(ALICE, "order_ready", "en", ["#1042"], None, client_ref="tab-1")["key"]
    from_hq = FromHq("boutique", Chain(hq_url="tls://hq:7422"), svc.handlers)
    status = StatusEvent("wamid.1", "delivered", int(clock()), ALICE, key)  # HQ strips its `boutique:` prefix
    reply = InboundMessage("wamid.2", ALICE, int(clock()), "text", text="Thanks!")
    for ev in (status, reply, status):  # the status redelivered: applied once
        from_hq.apply(json.dumps(to_wire(ev)).encode())
    from_hq.apply(b"{not json")
    row = core.db.execute("SELECT status, wamid FROM wa_outbox WHERE idempotency_key = ?", [key]).fetchone()
    assert tuple(row) == ("delivered", "wamid.1")
    texts = [r[0] for r in core.db.execute("SELECT text FROM wa_inbox WHERE wa_id = ? AND direction = 'in'", [ALICE])]
    assert texts == ["Thanks!"]
    assert (from_hq.applied, from_hq.unreadable) == (2, 1)


def test_a_malformed_request_names_its_field() -> None:
    good = {"key": "k1", "to": "4917011", "purpose": "utility", "due_at": 5.0, "message": {"type": "text"}}
    assert message_request("a", {"data": good}).key == "a:k1"
    for field, value in (("to", "+49 170"), ("purpose", "spam"), ("key", ""), ("due_at", None), ("message", [])):
        with pytest.raises(RequestError, match=f"data.{field}"):
            message_request("a", {"data": {**good, field: value}})


def test_the_recipient_budget_holds_new_recipients_until_one_ages_out() -> None:
    recent = {"x": 100.0, "y": 50.0, "z": 300.0}
    assert budget_release(recent, "new", 400.0, budget=4) is None  # room for one more
    assert budget_release(recent, "y", 400.0, budget=3) is None  # already counted: free
    assert budget_release(recent, "new", 400.0, budget=3) == 50.0 + DAY  # y's slot frees first
    assert budget_release(recent, "new", 400.0, budget=2) == 100.0 + DAY  # two must age out


def test_budget_rules_defer_a_new_recipient_over_budget(tmp_path: Path) -> None:
    conn = outbox.connect(tmp_path / "o.db")
    outbox.migrate(conn)
    for n, sent_at in ((1, 10.0), (2, 20.0)):
        conn.execute("INSERT INTO wa_outbox (idempotency_key, customer, body, purpose, status, due_at, created_at, "
                     "sent_at) VALUES (?, ?, '{}', 'service', 'accepted', 0, 0, ?)", (f"k{n}", f"49{n}", sent_at))
    policy = Policy(ZoneInfo("UTC"), TemplateRegistry([]), quiet_hours=None)
    rules = BudgetRules(Rules(policy, consent=lambda _c, _p: True), conn, budget=2, now=100.0)
    body = {"messaging_product": "whatsapp", "to": "493", "type": "text", "text": {"body": "hi"}}
    kw = {"body": body, "purpose": Purpose.SERVICE, "last_inbound_at": 99.0}
    held = rules.decide(customer="493", now=100.0, **kw)
    assert held.kind is DecisionKind.DEFER and held.until == 10.0 + DAY
    assert rules.decide(customer="491", now=100.0, **kw).kind is DecisionKind.SEND_NOW  # counted already
    # 491 was messaged again at 100: 492's slot (20) is the first to free
    assert rules.decide(customer="493", now=10.0 + DAY + 1, **kw).kind is DecisionKind.DEFER
    assert rules.decide(customer="493", now=20.0 + DAY + 1, **kw).kind is DecisionKind.SEND_NOW
    assert rules.decide(customer="494", now=20.0 + DAY + 2, **kw).until == 100.0 + DAY  # 491 and 493 in the window


def test_an_inbound_message_delays_the_next_send() -> None:
    bucket = TokenBucket(10.0, 1.0, now=0.0)
    bucket.charge(0.0, 3)  # three inbound messages at once: 0.3 s of the number's throughput
    assert bucket.take(0.0) == pytest.approx(0.3)
    assert bucket.take(0.3) == 0.0


def test_relayed_events_come_out_as_they_went_in() -> None:
    err = CloudApiError(131026, None, "undeliverable", "no WhatsApp", None, Action.DO_NOT_RETRY, source="status")
    status = StatusEvent("wamid.1", "failed", 17, "4917011", "staff:1", (err,), "1065")
    inbound = InboundMessage("wamid.2", "4917011", 18, "order", order=(OrderItem("g1", 2, 9.5, "EUR"),),
                             profile_name="Ann")
    for ev in (status, inbound):
        assert from_wire(json.loads(json.dumps(to_wire(ev)))) == ev
    with pytest.raises(ValueError):
        from_wire({"kind": "error", "event": {}})


def _hq(tmp_path: Path) -> HqOutbox:
    return HqOutbox(hq_outbox.HqWhatsApp(db=str(tmp_path / "hq.db"), phone_number_id="1", token_file="t",
                                         app_secret_file="s", verify_token="verify-me"))


def _event(store: str, key: str = "k1") -> bytes:
    data = {"key": key, "to": "4917011", "purpose": "utility", "due_at": 5.0,
            "message": {"messaging_product": "whatsapp", "type": "text", "text": {"body": "hi"}}}
    return json.dumps({"store": store, "kind": "message", "customer_id": "c1", "data": data}).encode()


def test_hq_queues_a_request_once_and_refuses_a_forged_one(tmp_path: Path) -> None:
    hq = _hq(tmp_path)
    subject = "chain.a.events.message"
    assert hq.take("a", subject, "a:g:1", _event("a")) == "queued"
    assert hq.take("a", subject, "a:g:1", _event("a")) == "duplicate"
    assert hq.take("a", subject, "a:g:2", _event("b", "k2")) == "forged"  # the payload names another store
    assert hq.take("a", subject, "a:g:3", json.dumps({"store": "a", "kind": "message"}).encode()) == "bad"
    rows = hq.conn.execute("SELECT idempotency_key, customer FROM wa_outbox").fetchall()
    assert [tuple(r) for r in rows] == [("a:k1", "4917011")]


def test_a_reply_from_a_number_no_store_wrote_to_stays_at_hq(tmp_path: Path) -> None:
    hq = _hq(tmp_path)
    hq.on_message(InboundMessage("wamid.9", "4917099", 18, "text", text="hello"))
    assert hq.counts["unrouted"] == 1 and hq.pending("a") == []
    assert hq.take("a", "chain.a.events.message", "a:g:1", _event("a")) == "queued"
    hq.on_message(InboundMessage("wamid.10", "4917011", 19, "text", text="hello"))
    assert [kind for _id, kind, _body in hq.pending("a")] == ["message"]


def test_an_erasure_at_hq_leaves_no_trace_of_the_number_in_the_outbox(tmp_path: Path) -> None:
    hq = _hq(tmp_path)
    assert hq.take("a", "chain.a.events.message", "a:g:1", _event("a")) == "queued"  # customer c1, 4917011
    hq.on_message(InboundMessage("wamid.10", "4917011", 19, "text", text="hello"))
    hq.on_status(StatusEvent("wamid.11", "sent", 20, "4917011", "a:k1"))
    (first, _kind, _body), *_ = hq.pending("a")
    hq.relayed(first)  # one published, one still waiting
    assert len(hq.pending("a")) == 1
    assert hq.erase("c1") > 0
    tables = [r[0] for r in hq.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    left = {t: n for t in tables for n in [sum("4917011" in json.dumps(list(r)) for r in
                                               hq.conn.execute(f"SELECT * FROM {t}"))] if n}
    assert left == {}


def test_the_crm_consumer_acknowledges_message_requests_without_recording_the_number() -> None:
    import asyncio

    from instore.hq import Hq, HqConfig, Postgres, classify

    request = classify("a", "chain.a.events.message", "a:g:1", _event("a"))
    hq = Hq(HqConfig(password_file="p", postgres="postgresql://nobody@127.0.0.1:9/none", stores=["a"]), "pw")
    asyncio.run(hq._take("a", Postgres(hq.config.postgres), [request]))  # PostgreSQL unreachable: never asked
    assert (hq.recorded, hq.failures) == (0, 0)
