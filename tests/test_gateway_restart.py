"""A gateway restarted (or SIGKILLed and restarted) while a customer is in the store does not
announce them a second time; someone who left, or came back later, is announced as before."""

from __future__ import annotations

from gateway.ingest.core import GatewayCore
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

