"""The chain's pure decisions: what leaves a store (`chain_message`), whose it is at HQ (`classify`), and
the customer record between HQ and the stores (`merge_profile`, `bucket_value`, `snapshot`)."""

from __future__ import annotations

import json
import threading

import pytest

from firmware_config.store import Chain
from gateway.channels.chain_customers import (
    CHAIN_METHOD,
    CustomerSync,
    StoreSide,
    apply_record,
    bucket_entry,
    changed_customers,
    snapshot,
)
from gateway.channels.chain_publish import Generation, chain_message, published_id
from gateway.events import StaffEvent
from gateway.storage.consent import ConsentHooks, erase_customer
from gateway.storage.customers import Identity, add_customer, link_identity, record_consent
from gateway.storage.db import open_db
from instore.hq import bucket_value, classify, erasure, merge_profile


def _ev(kind: str, customer: str | None = "c-7", data: dict | None = None, id_: int = 42) -> StaffEvent:
    return StaffEvent(id_, 1700.5, kind, customer, data or {})


@pytest.mark.parametrize(
    ("kind", "data", "chain_kind"),
    [
        ("entered", {"zone": "entrance"}, "entry"),
        ("left", {"dwell_s": 600}, "visit"),
        ("session_started", {"room": "fr1"}, "fitting"),
        ("session_ended", {"room": "fr1"}, "fitting"),
        ("task", {"kind": "followup", "title": "call"}, "follow_up"),
    ],
)
def test_customer_business_events_leave_with_subject_and_message_id(kind: str, data: dict, chain_kind: str) -> None:
    msg = chain_message("shop", _ev(kind, data=data), "9f3a")
    assert msg is not None
    assert msg.subject == f"chain.shop.events.{chain_kind}"
    assert msg.msg_id == "shop:9f3a:42"
    assert json.loads(msg.payload) == {"store": "shop", "generation": "9f3a", "id": 42, "ts": 1700.5,
                                       "kind": chain_kind, "source_kind": kind, "customer_id": "c-7", "data": data}


@pytest.mark.parametrize(
    "ev",
    [
        _ev("entered", customer=None),  # no customer: an anonymous device never leaves
        _ev("note", data={"text": "likes linen"}),
        _ev("task", data={"kind": "pickup"}),
        _ev("node_offline", customer=None),
        _ev("zone_changed"),
        _ev("claimed"),
    ],
)
def test_everything_else_stays_in_the_store(ev: StaffEvent) -> None:
    assert chain_message("shop", ev, "9f3a") is None


def test_a_published_id_counts_only_for_this_store_and_generation() -> None:
    assert published_id("shop:9f3a:42", "shop", "9f3a") == 42
    assert published_id("shop:0b1c:42", "shop", "9f3a") is None  # an earlier database of the store
    assert published_id("mall:9f3a:42", "shop", "9f3a") is None
    assert published_id("shop:9f3a:customer:3.4:c-1", "shop", "9f3a") is None


def test_every_new_database_has_its_own_generation() -> None:
    first, second = (Generation(open_db(":memory:"), threading.RLock()) for _ in range(2))
    assert first.get() != second.get()
    old = first.get()
    assert first.renew() == first.get() != old


def _body(store: str) -> bytes:
    return json.dumps({"store": store, "id": 1, "kind": "entry"}).encode()


def test_an_honest_event_is_not_flagged() -> None:
    got = classify("a", "chain.a.events.entry", "a:1", _body("a"))
    assert (got.store, got.msg_id, got.kind, got.forged) == ("a", "a:1", "entry", None)


@pytest.mark.parametrize(
    ("subject", "msg_id", "data", "reason"),
    [
        ("chain.a.events.entry", "a:1", _body("b"), "payload store 'b'"),
        ("chain.a.events.entry", "b:1", _body("a"), "message id 'b:1'"),
        ("chain.a.events.entry", None, _body("a"), "message id None"),
        ("chain.b.events.entry", "a:1", _body("a"), "subject 'chain.b.events.entry'"),
        ("chain.a.events.entry", "a:1", b"not json", "payload store None"),
    ],
)
def test_another_store_named_anywhere_is_flagged_and_the_link_store_kept(
    subject: str, msg_id: str | None, data: bytes, reason: str
) -> None:
    got = classify("a", subject, msg_id, data)
    assert got.store == "a"
    assert got.forged == reason


def _snap(at: float, granted: bool, keys: list[str], name: str = "Anna", updated: float = 1.0) -> dict:
    return {"id": "c-1", "name": name, "language": "de", "sizes": {}, "brands": [], "colours": [],
            "updated_at": updated,
            "consent": {"recognition": {"granted": granted, "at": at}},
            "identities": [{"kind": "eid", "value": k, "k": 10, "epoch": 0} for k in keys]}


def test_hq_record_takes_the_newest_consent_joins_keys_and_keeps_the_home_store() -> None:
    first = merge_profile(None, _snap(10.0, True, ["k1"]), "a")
    later = merge_profile(first, _snap(20.0, False, ["k2"], name="Anna B", updated=2.0), "b")
    assert later["consent"]["recognition"] == {"granted": False, "at": 20.0}
    assert [i["value"] for i in later["identities"]] == ["k1", "k2"]
    assert (later["home"], later["name"]) == ("a", "Anna B")
    stale = merge_profile(later, _snap(15.0, True, ["k1"], name="Old", updated=0.5), "c")
    assert stale["consent"]["recognition"]["granted"] is False  # an older grant does not undo the withdrawal
    assert stale["name"] == "Anna B"


def test_no_snapshot_brings_back_a_customer_erased_at_hq_however_new() -> None:
    record = merge_profile(None, _snap(10.0, True, ["k1"]), "a")
    assert merge_profile(record, _snap(99.0, True, ["k2"], updated=99.0), "b", erased=50.0) is None
    assert merge_profile(None, _snap(10.0, True, ["k1"]), "b", erased=50.0) is None


def _erasure_body(store: str, customer: object = "c-1", ts: object = 7.5) -> bytes:
    return json.dumps({"store": store, "kind": "erasure", "customer_id": customer, "ts": ts}).encode()


def test_a_stores_erasure_is_applied_only_when_honest_and_well_formed() -> None:
    assert erasure(classify("a", "chain.a.events.erasure", "a:g:erasure:1", _erasure_body("a"))) == ("c-1", 7.5)
    assert erasure(classify("a", "chain.a.events.erasure", "a:g:erasure:1", _erasure_body("b"))) is None  # forged
    assert erasure(classify("a", "chain.a.events.erasure", "a:g:erasure:1", _erasure_body("a", ts=None))) is None
    assert erasure(classify("a", "chain.a.events.erasure", "a:g:erasure:1", _erasure_body("a", customer=3))) is None
    assert erasure(classify("a", "chain.a.events.entry", "a:g:1", _body("a"))) is None


class _Core:
    def forget_customer(self, customer_id: str) -> None:
        pass


def test_an_erasure_here_is_noted_for_hq_and_blocks_hqs_record_until_hqs_erasure_comes_back() -> None:
    db, lock, hooks = open_db(":memory:"), threading.RLock(), ConsentHooks()
    side = StoreSide(db, lock, _Core(), hooks, lambda ident: None)
    CustomerSync("a", Chain(hq_url="tls://hq:7422"), side, clock=lambda: 42.0)
    add_customer(db, "c-1", "Anna", now=1.0)
    assert erase_customer(db, side.core, hooks, "c-1")
    assert db.execute("SELECT erased, at FROM chain_erasures").fetchall() == [("c-1", 42.0)]
    apply_record(side, "c-1", merge_profile(None, _snap(1.0, True, ["k1"]), "b"))  # HQ has not heard yet
    assert db.execute("SELECT count(*) FROM customers").fetchone() == (0,)
    apply_record(side, "c-1", None)  # HQ's erasure came back: the note has done its work
    assert db.execute("SELECT count(*) FROM chain_erasures").fetchone() == (0,)
    apply_record(side, "c-2", merge_profile(None, {**_snap(1.0, True, ["k2"]), "id": "c-2"}, "b"))
    apply_record(side, "c-2", None)  # erased at HQ first: nothing to send up
    assert db.execute("SELECT count(*) FROM chain_erasures").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM customers").fetchone() == (0,)


def test_the_bucket_carries_keys_only_while_recognition_is_granted() -> None:
    granted = json.loads(bucket_value(merge_profile(None, _snap(1.0, True, ["k1"]), "a")))
    withdrawn = json.loads(bucket_value(merge_profile(None, _snap(1.0, False, ["k1"]), "a")))
    assert [i["value"] for i in granted["identities"]] == ["k1"]
    assert withdrawn["identities"] == []


def test_a_bucket_delete_or_purge_is_an_erasure() -> None:
    assert bucket_entry("$KV.chain-customers.c-1", None, b'{"id": "c-1"}') == ("c-1", {"id": "c-1"})
    assert bucket_entry("$KV.chain-customers.c-1", {"KV-Operation": "PURGE"}, b"") == ("c-1", None)
    assert bucket_entry("$KV.chain-customers.c-1", {"KV-Operation": "DEL"}, b"") == ("c-1", None)


def test_a_store_sends_up_its_own_consent_changes_and_keys_but_not_what_came_from_hq() -> None:
    db = open_db(":memory:")
    add_customer(db, "c-1", "Anna", whatsapp="+491701234567", notes="likes linen", now=1.0)
    add_customer(db, "c-2", "Ben", now=1.0)
    record_consent(db, "c-1", "recognition", True, now=2.0, method="enrolment-page")
    link_identity(db, Identity("c-1", "eid", "ab" * 16, 10, 0))
    record_consent(db, "c-2", "recognition", True, now=2.0, method=CHAIN_METHOD)
    ids, consents, idents = changed_customers(db, 0, 0)
    assert ids == ["c-1"]
    assert changed_customers(db, consents, idents)[0] == []
    snap = snapshot(db, "c-1")
    assert snap is not None
    assert "whatsapp" not in snap and "notes" not in snap  # the number and staff notes stay in the store
    assert snap["consent"] == {"recognition": {"granted": True, "at": 2.0}}
    assert [i["value"] for i in snap["identities"]] == ["ab" * 16]
