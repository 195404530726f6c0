"""Visit detection at the entrance: one alert per visit, passers-by ignored, exits detected."""

from __future__ import annotations

from gateway.entry import EntryDetector, EntryParams

P = EntryParams(entry_rssi_dbm=-68, absence_s=20)


def det() -> EntryDetector:
    return EntryDetector(frozenset({"entrance-1"}), P)


def test_strong_entrance_sighting_opens_one_visit() -> None:
    d = det()
    ev = d.observe("entrance-1", "c1", -60, 100.0)
    assert [(e.kind, e.customer_id, e.t, e.node) for e in ev] == [("entered", "c1", 100.0, "entrance-1")]
    assert d.observe("entrance-1", "c1", -55, 101.0) == []  # the same visit: no second alert
    assert d.present() == ["c1"]


def test_weak_or_non_entrance_or_late_sightings_do_not_open_visits() -> None:
    d = det()
    assert d.observe("entrance-1", "c1", -75, 1.0) == []  # through the shop window from the pavement
    assert d.observe("floor-east", "c1", -50, 1.0) == []  # not an entrance node
    assert d.observe("entrance-1", "c1", -50, 1.0, late=True) == []  # replayed after an outage
    assert d.present() == []


def test_visit_ends_after_absence_with_dwell_time() -> None:
    d = det()
    d.observe("entrance-1", "c1", -60, 100.0)
    d.observe("floor-east", "c1", -70, 150.0)
    assert d.tick(169.0) == []
    left = d.tick(171.0)
    assert [(e.kind, e.t, e.dwell_s) for e in left] == [("left", 150.0, 50.0)]
    assert d.observe("entrance-1", "c1", -60, 300.0)[0].kind == "entered"  # a new visit


def test_forget_drops_the_visit_at_once() -> None:
    d = det()
    d.observe("entrance-1", "c1", -60, 100.0)
    d.forget("c1")
    assert d.present() == [] and d.tick(1000.0) == []
