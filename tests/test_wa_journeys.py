"""Journeys: a simulated week on an injected clock (deterministic, no duplicates, quiet hours
respected, switched-off journeys silent), and one round through the gateway database."""

from __future__ import annotations

import dataclasses
import sqlite3
import time as _time
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from cloud_sync import journeys as J
from cloud_sync import migrations, outbox
from cloud_sync.rules import QuietHours, quiet_end

TZ = ZoneInfo("Europe/Berlin")
QUIET = QuietHours(time(21, 0), time(8, 0))
MONDAY = datetime(2026, 3, 2, 0, 0, tzinfo=TZ)  # a week without a DST change
LANGS = {
    "tried_followup": frozenset({"en", "de"}),
    "back_in_size": frozenset({"en"}),
    "appointment_reminder": frozenset({"en"}),
}
SETTINGS = J.JourneySettings(tz=TZ, quiet=QUIET, store_name="Linea", template_languages=LANGS)


def at(day: int, hh: int, mm: int = 0) -> float:
    return (MONDAY + timedelta(days=day)).replace(hour=hh, minute=mm).timestamp()


PRODUCTS = {
    g: J.ProductInfo(g, n, s)
    for g, n, s in (
        ("04000000000011", "Linen shirt", "M"),
        ("04000000000028", "Wool coat", "38"),
        ("04000000000035", "Silk scarf", ""),
        ("04000000000042", "Chinos", "32"),
    )
}
SHIRT, COAT, SCARF, CHINOS = PRODUCTS


class World:
    """The store's week: what has happened by time t (sessions close, sales, stock, bookings)."""

    def __init__(self) -> None:
        self.customers = {
            "c1": J.Customer("c1", "491700000001", "Anna Adler", "de", marketing=True, service=True),
            "c2": J.Customer("c2", "491700000002", "Bruno Berg", "en", marketing=True, service=True),
            "c3": J.Customer("c3", "491700000003", "Cleo Conti", "en", marketing=False, service=True),
            "c4": J.Customer("c4", "491700000004", "Dora Dahl", "en", marketing=False, service=False),
        }
        self.sessions = [
            J.FittingSession(1, "c1", at(0, 15), at(0, 15, 20), (SHIRT, COAT)),  # Mon: buys the coat
            J.FittingSession(2, "c1", at(0, 17), at(0, 17, 10), (SCARF,)),  # Mon again: same day, one message
            J.FittingSession(3, "c2", at(2, 20, 30), at(2, 20, 50), (CHINOS,)),  # Wed evening
            J.FittingSession(4, "c3", at(1, 12), at(1, 12, 30), (SHIRT,)),  # no marketing consent
            J.FittingSession(5, "c1", at(3, 11), at(3, 11, 30), (COAT,)),  # Thu: buys it an hour later
            J.FittingSession(6, "c2", at(5, 10), at(5, 10, 15), (SHIRT, SCARF)),  # Sat
        ]
        self.purchases = [J.Purchase("c1", at(0, 16), (COAT,)), J.Purchase("c1", at(3, 12, 30), (COAT,))]
        self.wishlist = [
            J.WishlistItem("c1", CHINOS),
            J.WishlistItem("c2", CHINOS),
            J.WishlistItem("c3", CHINOS),
        ]
        self.stock = [
            J.StockEvent(CHINOS, at(1, 23, 15), 0, 4),  # arrives during quiet hours (Tue night)
            J.StockEvent(CHINOS, at(2, 9), 4, 3),  # a sale: not an arrival
            J.StockEvent(SCARF, at(4, 14), 0, 2),
        ]  # nobody wishes it
        self.appointments = [
            J.Appointment(1, "c3", at(4, 10), "alteration", "Trousers hemmed"),
            J.Appointment(2, "c4", at(4, 11), "appointment", "Fitting"),  # no service consent
            J.Appointment(3, "c1", at(6, 9), "appointment", "Personal shopping"),
        ]
        # c2 writes to us on Thursday 09:00: their window is open for Friday morning's follow-up
        self.inbound = {"c2": at(3, 9)}

    def snapshot(self, t: float) -> J.Snapshot:
        customers = {
            cid: dataclasses.replace(
                c, last_inbound_at=self.inbound.get(cid) if self.inbound.get(cid, 1e18) <= t else None
            )
            for cid, c in self.customers.items()
        }
        return J.Snapshot(
            customers=customers,
            sessions=[s for s in self.sessions if s.closed_at <= t],
            purchases=[p for p in self.purchases if p.at <= t],
            wishlist=self.wishlist,
            stock_events=[e for e in self.stock if e.at <= t],
            appointments=self.appointments,
            products=PRODUCTS,
        )


def simulate(
    settings: J.JourneySettings, step_s: float = 300.0
) -> tuple[list[J.Outgoing], sqlite3.Connection]:
    """Run the engine every ``step_s`` for a week; queue into a real outbox table."""
    world = World()
    conn = outbox.connect(":memory:")
    migrations.migrate(conn)
    queued: list[J.Outgoing] = []
    t = at(0, 0)
    while t < at(7, 0):
        for o in J.plan(world.snapshot(t), t, settings):
            if outbox.enqueue(conn, o.key, o.wa_id, o.body, o.purpose, o.due_at, now=t):
                queued.append(o)
        t += step_s
    return queued, conn


def test_a_simulated_week_queues_each_journey_message_once_at_good_hours() -> None:
    t0 = _time.perf_counter()
    queued, conn = simulate(SETTINGS)
    assert _time.perf_counter() - t0 < 10.0  # a week in seconds
    keys = [o.key for o in queued]
    assert len(keys) == len(set(keys)) == conn.execute("SELECT COUNT(*) FROM wa_outbox").fetchone()[0]
    by = {(o.journey, o.customer_id): [] for o in queued}
    for o in queued:
        by[(o.journey, o.customer_id)].append(o)

    # tried but not bought: c1 Monday (one message for two sessions, coat bought), c2 Wednesday and
    # Saturday; c1 Thursday bought everything; c3 has no marketing consent.
    tried = sorted((o for o in queued if o.journey == J.TRIED), key=lambda o: o.due_at)
    assert [(o.customer_id, o.key.rsplit(":", 1)[1]) for o in tried] == [
        ("c1", "2026-03-02"),
        ("c2", "2026-03-04"),
        ("c2", "2026-03-07"),
    ]
    for o in tried:
        local = datetime.fromtimestamp(o.due_at, TZ)
        assert (local.hour, local.minute) == (11, 0)  # the next day at send_at, store time
    c1 = tried[0]
    assert c1.body["type"] == "template" and c1.body["template"]["language"]["code"] == "de"
    listed = c1.body["template"]["components"][0]["parameters"][1]["text"]
    assert "Linen shirt (M)" in listed and "Silk scarf" in listed and "Wool coat" not in listed
    assert tried[1].body["type"] == "text"  # c2 wrote Thursday 09:00: the window is open at 11:00
    assert "Chinos (32)" in tried[1].body["text"]["body"]
    assert tried[2].body["type"] == "template"  # Sunday 11:00: that window closed Friday 09:00

    # back in your size: the Tuesday-night arrival reaches c1 and c2 at 08:00, not c3 (no consent)
    back = [o for o in queued if o.journey == J.BACK]
    assert sorted(o.customer_id for o in back) == ["c1", "c2"]
    for o in back:
        assert datetime.fromtimestamp(o.due_at, TZ).hour == 8 and o.due_at == at(2, 8)

    # reminders: c3's alteration and c1's appointment, each 24 h ahead; c4 has no service consent
    rem = sorted((o for o in queued if o.journey == J.REMIND), key=lambda o: o.due_at)
    assert [o.customer_id for o in rem] == ["c3", "c1"]
    assert rem[0].due_at == at(3, 10) and rem[0].purpose.value == "utility"
    assert rem[1].due_at == at(5, 9)
    for o in queued:  # nothing proactive is due in quiet hours
        assert quiet_end(o.due_at, TZ, QUIET) is None, o


def test_free_form_inside_the_window_template_outside() -> None:
    world = World()
    world.inbound = {"c2": at(5, 20)}  # c2 wrote Saturday 20:00; Saturday's tries follow up Sunday 11:00
    snap = world.snapshot(at(6, 11))
    out = {o.key: o for o in J.plan(snap, at(6, 11), SETTINGS)}
    sat = out["j:tried:c2:2026-03-07"]
    assert sat.body["type"] == "text"
    assert "Linen shirt (M)" in sat.body["text"]["body"] and "Silk scarf" in sat.body["text"]["body"]


def test_re_running_is_deterministic_and_enqueues_nothing_twice() -> None:
    world = World()
    conn = outbox.connect(":memory:")
    migrations.migrate(conn)
    t = at(2, 12)
    first = J.plan(world.snapshot(t), t, SETTINGS)
    again = J.plan(world.snapshot(t), t, SETTINGS)
    assert first == again and first
    assert sum(
        outbox.enqueue(conn, o.key, o.wa_id, o.body, o.purpose, o.due_at, now=t) for o in first
    ) == len(first)
    assert sum(outbox.enqueue(conn, o.key, o.wa_id, o.body, o.purpose, o.due_at, now=t) for o in again) == 0


@pytest.mark.parametrize("off", ["tried", "back", "remind"])
def test_a_switched_off_journey_is_silent_and_the_others_unchanged(off: str) -> None:
    spec = getattr(SETTINGS, off)
    settings = dataclasses.replace(SETTINGS, **{off: dataclasses.replace(spec, enabled=False)})
    queued, _ = simulate(settings, step_s=900.0)
    assert queued and not [o for o in queued if o.journey == off]
    full, _ = simulate(SETTINGS, step_s=900.0)
    assert sorted(o.key for o in queued) == sorted(o.key for o in full if o.journey != off)


def test_master_switch_off_sends_nothing() -> None:
    queued, _ = simulate(dataclasses.replace(SETTINGS, enabled=False), step_s=1800.0)
    assert queued == []


def test_a_follow_up_is_dropped_when_the_gateway_was_down_too_long() -> None:
    world = World()
    late = at(2, 11, 5)  # Monday's tries were due Tuesday 11:00; the engine first runs Wednesday
    keys = {o.key for o in J.plan(world.snapshot(late), late, SETTINGS)}
    assert "j:tried:c1:2026-03-02" not in keys


def test_service_round_through_the_gateway_database(tmp_path) -> None:  # noqa: ANN001
    """Fitting sessions and sales in the gateway tables -> one queued follow-up, once."""
    from tests.test_wa_inbox import make_service

    svc, core, clock = make_service(tmp_path, now=at(0, 9))
    db = core.db
    db.execute(
        "INSERT INTO fitting_sessions (id, customer_id, zone, opened_at, closed_at) VALUES "
        "(1, 'alice', 'fr1', ?, ?)",
        [at(0, 15), at(0, 15, 20)],
    )
    for g in ("04000000000011", "04000000000028"):
        db.execute(
            "INSERT INTO tried_items (session_id, customer_id, epc, gtin, at) VALUES (1, 'alice', 'e', ?, ?)",
            [g, at(0, 15, 5)],
        )
    db.execute(
        "INSERT INTO sales (id, ts, customer_id, amount_cents, currency) VALUES (1, ?, 'alice', 100, 'EUR')",
        [at(0, 16)],
    )
    db.execute("INSERT INTO sale_items (sale_id, epc, gtin) VALUES (1, 'e', '04000000000028')")
    assert svc.run_journeys(at(1, 10))["queued"] == 0  # not due before 11:00 the next day
    assert svc.run_journeys(at(1, 11, 1)) == {"planned": 1, "queued": 1}
    assert svc.run_journeys(at(1, 11, 2)) == {"planned": 1, "queued": 0}
    row = db.execute("SELECT idempotency_key, purpose, body FROM wa_outbox").fetchone()
    assert row[0] == "j:tried:alice:2026-03-02" and row[1] == "marketing"
    assert "Linen shirt" in row[2] and "Wool coat" not in row[2]
    # back in size: a wished GTIN's stock goes 0 -> 3 between two rounds
    db.execute(
        "INSERT INTO wishlist (customer_id, gtin, description, added_at) VALUES ('alice', '04000000000042', "
        "'chinos', 0)"
    )
    db.execute("UPDATE products SET backroom = 3 WHERE gtin = '04000000000042'")
    assert svc.run_journeys(at(1, 12))["queued"] == 1
    assert (
        db.execute("SELECT COUNT(*) FROM wa_outbox WHERE idempotency_key LIKE 'j:back:alice:%'").fetchone()[0]
        == 1
    )
    del clock
