"""Consent as data: no recognition without consent, withdrawal stops tracking mid-visit, erasure
leaves no trace, export is complete, identified presence expires and anonymous footfall stays."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from edge import protocol
from firmware_config.store import load_store
from gateway.ingest.core import GatewayCore
from gateway.storage.consent import (
    ConsentHooks,
    customer_needles,
    erase_customer,
    export_customer,
    find_traces,
    personal_columns,
    purge_identified_presence,
    set_consent,
    sync_visits,
    tables_with_customer_id,
)
from gateway.storage.customers import (
    Identity,
    add_customer,
    has_consent,
    link_identity,
    recognisable_identities,
    record_consent,
)
from gateway.storage.db import open_db
from gateway.storage.kpi import record_footfall
from gateway.storage.pos import record_sale
from gateway.storage.staff import add_note, add_task
from tests.conftest import BOUTIQUE

STORE = load_store(BOUTIQUE)
IBEACON = "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:{}"
KEY = "00112233445566778899aabbccddeeff"
# A phone on the sales floor: loud at floor-west, fainter elsewhere; fr3 hears nothing.
ON_FLOOR = {
    "entrance-1": -80.0,
    "floor-west": -50.0,
    "floor-east": -60.0,
    "fr1": -85.0,
    "fr2": -90.0,
    "fr3": None,
}


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Feeder:
    """Hand-made node windows for one beacon id, one per node per second."""

    def __init__(self, core: GatewayCore, clock: Clock):
        self.core, self.clock, self.seq = core, clock, {}

    def seconds(self, n: int, beacon: str, levels: dict = ON_FLOOR) -> list:
        events = []
        for _ in range(n):
            self.clock.t += 1
            t = self.clock.t
            for node, rssi in levels.items():
                s = self.seq.get(node, 0)
                self.seq[node] = s + 1
                obs = (
                    [
                        protocol.BleObservation(
                            id=beacon, n=2, rssi_mean=rssi, rssi_max=rssi, first=t - 1, last=t
                        )
                    ]
                    if rssi is not None
                    else []
                )
                w = protocol.BleWindow(
                    v=1, store="boutique", node=node, seq=s, window=(t - 1, t), observations=obs
                )
                events += self.core.on_ble(w)
        return events


def _setup(consent: bool | None, tmp_path=None):  # noqa: ANN001, ANN202
    db = open_db(":memory:" if tmp_path is None else tmp_path / "gw.db")
    clock = Clock()
    add_customer(db, "c1", "Alice Adler", whatsapp="+491701234567", now=clock.t)
    if consent is not None:
        record_consent(db, "c1", "recognition", consent, now=clock.t, method="test", wording="w")
    link_identity(db, Identity("c1", "ibeacon", IBEACON.format(7)))
    link_identity(db, Identity("c1", "eid", KEY, 10, 0))
    core = GatewayCore(STORE, db, clock=clock)
    return db, clock, core, Feeder(core, clock)


def test_a_consenting_customer_is_recognised_and_located() -> None:
    _, _, core, feed = _setup(True)
    events = feed.seconds(10, IBEACON.format(7))
    assert [e.kind for e in events][:1] == ["entered"] and events[0].customer_id == "c1"
    assert core.presence.present() == {"c1": "floor"}


def test_no_recognition_without_consent_never_and_withdrawn() -> None:
    for consent in (None, False):
        db, _, core, feed = _setup(consent)
        record_consent(db, "c1", "whatsapp_service", True, now=0)  # other purposes do not count
        assert feed.seconds(15, IBEACON.format(7)) == []
        assert core.presence.present() == {}
        assert core.db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
        assert core.resolver.resolve(IBEACON.format(7), 0) is None


def test_withdrawal_mid_visit_stops_tracking_at_once_and_runs_hooks() -> None:
    db, clock, core, feed = _setup(True)
    assert [e.kind for e in feed.seconds(10, IBEACON.format(7))][0] == "entered"
    sync_visits(db)
    hooks, told = ConsentHooks(), []
    hooks.register_withdraw("recognition", lambda cid: told.append(("recognition", cid)))
    cancel = hooks.register_withdraw("whatsapp_marketing", lambda cid: told.append(("marketing", cid)))
    set_consent(db, core, hooks, "c1", "recognition", False, now=clock.t, method="staff-tablet", wording="")
    assert told == [("recognition", "c1")]
    assert core.presence.present() == {} and core.presence.zone_of("c1") is None
    assert feed.seconds(20, IBEACON.format(7)) == []  # no zone change, no "left", nothing
    assert core.presence.present() == {}
    assert db.execute("SELECT left_at FROM visits WHERE customer_id = 'c1'").fetchone()[0] == clock.t - 20
    assert not has_consent(db, "c1", "recognition")
    set_consent(db, core, hooks, "c1", "whatsapp_marketing", False, now=clock.t, method="m", wording="")
    assert told[-1] == ("marketing", "c1")
    cancel()
    set_consent(db, core, hooks, "c1", "whatsapp_marketing", False, now=clock.t, method="m", wording="")
    assert len(told) == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["recognition", "whatsapp_service"]), st.booleans()), max_size=8))
def test_recognisable_exactly_when_the_latest_recognition_row_is_a_grant(
    history: list[tuple[str, bool]],
) -> None:
    db = open_db(":memory:")
    add_customer(db, "c1", "A", now=0)
    link_identity(db, Identity("c1", "ibeacon", IBEACON.format(1)))
    for i, (purpose, granted) in enumerate(history):
        record_consent(db, "c1", purpose, granted, now=float(i // 2))  # ties on time: the later row wins
    latest = [g for p, g in history if p == "recognition"]
    assert bool(recognisable_identities(db)) == bool(latest and latest[-1])
    assert has_consent(db, "c1", "recognition") == bool(latest and latest[-1])


def _rich_customer(tmp_path):  # noqa: ANN001, ANN202
    db, clock, core, feed = _setup(True, tmp_path)
    add_customer(db, "c2", "Bob Berg", whatsapp="+491709999999", now=clock.t)  # must survive c1's erasure
    feed.seconds(10, IBEACON.format(7))
    sync_visits(db)
    db.execute(
        "INSERT INTO staff (username, name, pw_hash, role, active, created_at) VALUES ('ana', 'Ana', 'x', "
        "'associate', 1, 0)"
    )
    add_note(db, "c1", 1, "likes linen", now=clock.t)
    add_task(
        db,
        kind="followup",
        title="call about jacket",
        customer_id="c1",
        due_at=clock.t,
        created_by=1,
        now=clock.t,
    )
    db.execute("INSERT INTO claims (subject, customer_id, staff_id, at) VALUES ('customer:c1', 'c1', 1, 0)")
    db.execute(
        "INSERT INTO wishlist (customer_id, gtin, description, added_at) VALUES ('c1', '', 'scarf', 0)"
    )
    s = db.execute(
        "INSERT INTO fitting_sessions (customer_id, zone, opened_at) VALUES ('c1', 'fr1', 0)"
    ).lastrowid
    db.execute(
        "INSERT INTO tried_items (session_id, customer_id, epc, gtin, at) VALUES (?, 'c1', 'e', 'g', 0)", [s]
    )
    sale = record_sale(
        db, now=clock.t, amount_cents=4200, currency="EUR", epcs=[], gtins=["4006381333931"], customer_id="c1"
    )
    db.execute(
        "INSERT INTO orders (id, customer_id, status, location, items, amount_cents, created_at) "
        "VALUES (1042, 'c1', 'ready', 'shelf B', '[]', 0, 0)"
    )
    return db, clock, core, sale


def test_erasure_leaves_no_trace_of_id_number_or_keys(tmp_path) -> None:  # noqa: ANN001
    db, _, core, sale = _rich_customer(tmp_path)
    needles = customer_needles(db, "c1")
    assert {"c1", "+491701234567", "491701234567", KEY, IBEACON.format(7)} <= set(needles)
    before = {(t, c) for t, c, _ in find_traces(db, needles)}
    # the scan sees the customer in every kind of table that holds them
    assert {
        ("customers", "id"),
        ("customers", "whatsapp"),
        ("identities", "value"),
        ("events", "customer_id"),
        ("visits", "customer_id"),
        ("notes", "customer_id"),
        ("tasks", "customer_id"),
        ("claims", "subject"),
        ("tried_items", "customer_id"),
        ("sales", "customer_id"),
        ("orders", "customer_id"),
        ("consents", "customer_id"),
    } <= before
    # every table with a customer_id column is one the scan covers
    assert set(tables_with_customer_id(db)) <= {t for t, _ in personal_columns(db)}
    erased = []
    hooks = ConsentHooks()
    hooks.register_erase(erased.append)
    assert erase_customer(db, core, hooks, "c1")
    assert erased == ["c1"]
    assert find_traces(db, needles) == []
    assert core.resolver.resolve(IBEACON.format(7), 0) is None and core.presence.present() == {}
    # the till's takings still add up; the other customer is untouched
    assert db.execute("SELECT amount_cents, customer_id FROM sales WHERE id = ?", [sale]).fetchone() == (
        4200,
        None,
    )
    assert db.execute("SELECT name FROM customers WHERE id = 'c2'").fetchone() == ("Bob Berg",)
    assert not erase_customer(db, core, hooks, "c1")
    # stream ids never go backwards after erasure (a tablet would take a reused id as seen)
    assert db.execute("SELECT MAX(id) FROM events").fetchone()[0] >= 1
    assert core.events.append(0, "entered", "c2", {}).id > max(
        r[0] for r in db.execute("SELECT id FROM events WHERE kind = 'erased'")
    )


def test_export_contains_everything_and_is_json(tmp_path) -> None:  # noqa: ANN001
    db, _, _, _ = _rich_customer(tmp_path)
    out = json.loads(json.dumps(export_customer(db, "c1")))
    assert out["customer"]["whatsapp"] == "+491701234567"
    assert out["consent_now"]["recognition"] is True
    assert {r["value"] for r in out["identities"]} == {KEY, IBEACON.format(7)}
    assert out["notes"][0]["text"] == "likes linen" and out["wishlist"][0]["description"] == "scarf"
    assert out["visits"] and out["events"][0]["kind"] == "entered"
    assert out["tried_items"][0]["epc"] == "e" and out["sale_items"][0]["gtin"] == "04006381333931"
    for table in tables_with_customer_id(db):  # every table with a customer_id is in the export
        assert table in out
    assert export_customer(db, "nobody") is None


def test_retention_purges_identified_presence_and_keeps_footfall(tmp_path) -> None:  # noqa: ANN001
    db, clock, core, _ = _rich_customer(tmp_path)
    record_footfall(db, "entrance-1", clock.t, devices=4, adverts=30)
    entered_at = db.execute("SELECT entered_at FROM visits").fetchone()[0]
    assert purge_identified_presence(db, clock.t, retention_s=30 * 86400) == 0  # nothing old yet
    later = entered_at + 30 * 86400 + 1
    assert purge_identified_presence(db, later, retention_s=30 * 86400) > 0
    assert db.execute("SELECT COUNT(*) FROM visits").fetchone()[0] == 0
    assert (
        db.execute(
            "SELECT COUNT(*) FROM events WHERE customer_id IS NOT NULL AND kind IN "
            "('entered', 'left', 'zone_changed')"
        ).fetchone()[0]
        == 0
    )
    assert (
        db.execute("SELECT COUNT(*) FROM events WHERE kind = 'entered'").fetchone()[0] == 1
    )  # anonymised, kept
    assert db.execute("SELECT adverts, devices_max FROM footfall").fetchone() == (30, 4)
    assert db.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 1  # the profile itself is not presence


def test_visits_are_folded_in_incrementally_from_events() -> None:
    db, _, core, _ = _setup(True)
    core.events.append(100.0, "entered", "c1", {})
    core.events.append(160.0, "zone_changed", "c1", {})
    assert sync_visits(db) == 1
    core.events.append(400.0, "left", "c1", {"dwell_s": 300.0})
    assert sync_visits(db) == 1 and sync_visits(db) == 0
    assert db.execute("SELECT entered_at, left_at, dwell_s FROM visits").fetchall() == [(100.0, 400.0, 300.0)]


def test_a_trace_is_the_whole_id_not_part_of_another_word(tmp_path) -> None:  # noqa: ANN001
    """Customer c1 is no trace in a random token that happens to contain "c1" (the chain's generation was)."""
    db, _, _, _ = _rich_customer(tmp_path)
    db.execute("UPDATE chain_generation SET generation = 'a3c1f0e9b2d4'")
    assert ("chain_generation", "generation", "c1") not in find_traces(db, ["c1"])
    db.execute("UPDATE chain_generation SET generation = 'c1'")
    assert ("chain_generation", "generation", "c1") in find_traces(db, ["c1"])
    assert ("notes", "customer_id", "c1") in find_traces(db, ["c1"])
