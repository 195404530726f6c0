"""A gateway restarted (or SIGKILLed and restarted) while a customer is in the store does not
announce them a second time; someone who left, or came back later, is announced as before."""

from __future__ import annotations

from gateway.carryover import RESUME_WITHIN_S, CarriedOver
from gateway.core import GatewayCore
from gateway.presence import PresenceEvent
from tests.test_clienteling_consent import IBEACON, STORE, _setup
from tests.test_time_trust import WireFeeder

BEACON = IBEACON.format(7)


def entered(db) -> int:  # noqa: ANN001
    return db.execute("SELECT COUNT(*) FROM events WHERE kind = 'entered'").fetchone()[0]


def test_a_customer_inside_across_a_restart_is_announced_once() -> None:
    db, clock, core, _ = _setup(True)
    WireFeeder(core, clock).seconds(10, BEACON)
    assert entered(db) == 1
    restarted = GatewayCore(STORE, db, clock=clock)  # same database, the engine knows nobody
    WireFeeder(restarted, clock).seconds(10, BEACON)  # (a node's new sequence numbers: its restart)
    assert restarted.presence.present() == {"c1": "floor"}  # tracked again
    assert entered(db) == 1  # but not announced again


def test_a_customer_who_had_left_is_announced_after_a_restart() -> None:
    db, clock, core, _ = _setup(True)
    core.events.append(clock.t, "entered", "c1", {})
    core.events.append(clock.t + 5, "left", "c1", {})
    restarted = GatewayCore(STORE, db, clock=clock)
    WireFeeder(restarted, clock).seconds(10, BEACON)
    assert entered(db) == 2


def test_only_an_entry_soon_after_the_restart_continues_the_visit() -> None:
    carried = CarriedOver({"c1", "c2"}, started_at=1000.0)
    late = PresenceEvent("entered", "c2", 1000.0 + RESUME_WITHIN_S + 1, "floor", "away", 0.95)
    assert not carried.continues(late)  # not heard for longer than the engine forgets: a new visit
    soon = PresenceEvent("entered", "c1", 1030.0, "floor", "away", 0.95)
    assert carried.continues(soon)
    assert not carried.continues(soon)  # once: a later entry of the same customer is a new visit
    assert not carried.continues(PresenceEvent("zone_changed", "c9", 1030.0, "fr1", "floor", 0.97))
