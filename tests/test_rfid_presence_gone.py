"""Presence through the real ingest glue: a customer's zone change out of a fitting room, heard on
the staff-event bus, takes the garments of her session with her at once (issue #20, "gone")."""

from __future__ import annotations

from firmware_config.store import load_store
from gateway.ingest.core import GatewayCore
from gateway.storage.customers import add_customer, record_consent
from gateway.storage.db import open_db
from tests.conftest import BOUTIQUE
from tests.test_rfid_screen import SHIRT, TEE_M, Clock, Feed

T0 = 1_800_000_000.0


def _gone_after_walk_out(presence: bool) -> list[float]:
    """c1 tries two garments in fr2 for 20 s and walks out with them; seconds after the exit
    at which each garment is gone."""
    clock = Clock(T0)
    db = open_db(":memory:")
    add_customer(db, "c1", "Alice Adler", now=T0)
    record_consent(db, "c1", "recognition", True, now=T0)
    core = GatewayCore(load_store(BOUTIQUE), db, clock=clock)
    feed = Feed(core, T0)
    if presence:
        core.bus.publish("zone_changed", "c1", {"zone": "fr2", "from": "floor", "confidence": 0.97})
    feed.seconds(20, [TEE_M, SHIRT])
    out = clock.t
    if presence:
        core.bus.publish("zone_changed", "c1", {"zone": "floor", "from": "fr2", "confidence": 0.97})
    feed.seconds(20, [])
    return [e.ts - out for e in core.events.after(0, limit=1000) if e.kind == "item_gone"]


def test_zone_change_out_of_the_room_on_the_bus_makes_the_garments_gone_at_once() -> None:
    """Gone on the first window after the exit that is PRESENCE_OUT_S past their last read."""
    assert _gone_after_walk_out(presence=True) == [2.0, 2.0]


def test_without_presence_the_room_decides_on_its_windows_alone() -> None:
    gone = _gone_after_walk_out(presence=False)
    assert len(gone) == 2 and min(gone) > 2.0 + 3.0  # several missed windows, as before
