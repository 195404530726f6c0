"""Shelf presence: picked up / returned, floor counts per GTIN, low stock and out of size."""

from __future__ import annotations

from gateway.engines.fitting_rooms import FittingRoomEngine, Layout, Obs, Place, RoomEvent
from gateway.engines.shelves import ShelfTracker, gtin_of_epc

# two pieces of one GTIN (serials 1 and 2) and one of another
E1, E2 = "3034f7e0c80008c000000001", "3034f7e0c80008c000000002"
F1 = "3034f7e0c8000c4000000001"


def ev(kind: str, t: float, epc: str, shelf: str = "s1") -> RoomEvent:
    return RoomEvent(kind, t, shelf, "shelf", epc)


def test_first_sighting_is_stock_then_picked_up_and_returned() -> None:
    tr = ShelfTracker()
    g = gtin_of_epc(E1)
    assert g is not None and g == gtin_of_epc(E2) and len(g) == 14
    out = tr.feed([ev("item_shown", 1, E1), ev("item_shown", 1, E2), ev("item_shown", 1, F1)])
    assert out == [] and tr.floor_counts()[g] == 2 and tr.items("s1") == sorted([E1, E2, F1])
    out = tr.feed([ev("item_gone", 5, E1)])
    assert [(e.kind, e.epc, e.count) for e in out] == [("picked_up", E1, 1), ("low_stock", None, 1)]
    out = tr.feed([ev("item_gone", 6, E2)])
    assert [(e.kind, e.count) for e in out] == [("picked_up", 0), ("out_of_size", 0)]
    assert g not in tr.floor_counts()
    out = tr.feed([ev("item_shown", 9, E2, "s2")])  # put back on another shelf
    assert [(e.kind, e.shelf, e.count) for e in out] == [("returned", "s2", 1)]
    # the dip is reported once: picking it again is low stock no more (already fired) but out of size again
    tr.feed([ev("item_shown", 10, E1)])
    out = tr.feed([ev("item_gone", 11, E1), ev("item_gone", 12, E2, "s2")])
    assert [e.kind for e in out] == ["picked_up", "low_stock", "picked_up", "out_of_size"]


def test_events_of_fitting_rooms_and_unknown_shelves_are_ignored() -> None:
    tr = ShelfTracker()
    assert tr.feed([RoomEvent("item_shown", 1, "fr1", "fitting_room", E1), ev("item_gone", 2, E1)]) == []
    assert tr.counts == {}


def test_engine_to_shelf_tracker_end_to_end() -> None:
    lay = Layout(
        (Place("s1", "shelf"), Place("fr1", "fitting_room")),
        {("s1", 1): "s1", ("s1", 2): "s1", ("fr1", 1): "fr1"},
    )
    eng, tr = FittingRoomEngine(lay), ShelfTracker()
    kinds = []
    for t in range(1, 80):
        on_shelf = t < 20 or t >= 60
        s1 = [Obs(E1, 1, 3, -62.0), Obs(E1, 2, 3, -70.0)] if on_shelf else []
        fr = [Obs(E1, 1, 8, -50.0)] if 25 <= t < 50 else []
        kinds += [
            e.kind for e in tr.feed(eng.add_window("s1", float(t), s1) + eng.add_window("fr1", float(t), fr))
        ]
    assert kinds == ["picked_up", "out_of_size", "returned"]
