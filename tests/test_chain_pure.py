"""The chain's pure decisions: what leaves a store (`chain_message`) and whose it is at HQ (`classify`)."""

from __future__ import annotations

import json

import pytest

from gateway.chain_publish import chain_message
from gateway.events import StaffEvent
from instore.hq import classify


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
    msg = chain_message("shop", _ev(kind, data=data))
    assert msg is not None
    assert msg.subject == f"chain.shop.events.{chain_kind}"
    assert msg.msg_id == "shop:42"
    assert json.loads(msg.payload) == {"store": "shop", "id": 42, "ts": 1700.5, "kind": chain_kind,
                                       "source_kind": kind, "customer_id": "c-7", "data": data}


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
    assert chain_message("shop", ev) is None


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
