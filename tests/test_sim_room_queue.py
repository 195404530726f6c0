"""sim.room_queue on hand-built stays, reports and reads: the causes it gives and the levels it reads."""

from __future__ import annotations

from gateway.engines.fitting_rooms import FittingReport
from sim.room_queue import causes, room_levels
from sim.truth import RoomItem, Truth

A = "3034f7e0c80008c000000002"
B = "3034f7e0c8000c4000000003"
C = "3034f7e0c800068000000001"


def test_a_garment_shown_while_its_customer_waits_is_a_false_report_and_its_stay_is_missed() -> None:
    truth = Truth(3600.0, room_items=[RoomItem("fr1", A, 300.0, 500.0), RoomItem("fr2", B, 100.0, 200.0)])
    reports = [FittingReport("fr1", A, 120.0, 505.0), FittingReport("fr2", B, 101.0, 208.0)]
    assert causes(truth, reports) == {"false_reports": {"queued": 1}, "missed_stays": {"shown_early": 1}}


def test_a_garment_shown_in_the_wrong_room_and_one_never_shown_are_told_apart() -> None:
    truth = Truth(
        3600.0,
        room_items=[RoomItem("fr1", A, 100.0, 300.0), RoomItem("fr2", B, 100.0, 300.0), RoomItem("fr1", C, 50.0, 90.0)],
    )
    # A is shown next door for its whole stay; B waited in front of fr1, then went into fr2
    reports = [FittingReport("fr2", A, 102.0, 310.0), FittingReport("fr1", B, 20.0, 60.0)]
    assert causes(truth, reports) == {
        "false_reports": {"other_room": 1, "queued_for_other_room": 1},
        "missed_stays": {"not_shown": 2, "other_room": 1},
    }


def test_levels_of_stays_beside_the_garments_read_outside_at_the_enter_level() -> None:
    truth = Truth(3600.0, room_items=[RoomItem("fr1", A, 100.0, 200.0), RoomItem("fr1", B, 100.0, 200.0)])
    reads = [(float(t), "fr1", A, 6, -45.0) for t in range(101, 200)]  # in the middle of the room
    reads += [(float(t), "fr1", B, 6, -60.0) for t in range(101, 200)]  # in the room's front half
    reads += [(float(t), "fr1", C, 6, -59.5) for t in range(300, 310)]  # waiting at the curtain
    reads += [(float(t), "fr1", B, 6, -59.0) for t in range(20, 80)]  # B waited too, before its stay
    reads += [(float(t), "fr1", C, 2, -40.0) for t in range(400, 410)]  # too few reads to count
    reads += [(float(t), "fr2", C, 6, -50.0) for t in range(400, 410)]  # not a room here
    levels = room_levels(truth, reads, {"fr1": -67.5})
    assert levels == {
        "fr1": {
            "enter_dbm": -67.5,
            "stays": 2,
            "stay_dbm_q10_q50_q90": [-58.5, -52.5, -46.5],
            "outside_garments": 2,
            "outside_dbm": -59.2,
            "stays_at_or_below_outside": 1,
        }
    }


def test_a_split_stay_a_garment_carried_out_and_one_never_in_the_room_are_told_apart() -> None:
    truth = Truth(3600.0, room_items=[RoomItem("fr1", A, 100.0, 400.0), RoomItem("fr2", B, 100.0, 200.0)])
    reports = [
        FittingReport("fr1", A, 101.0, 250.0),  # gone while still in the room (a long body spell)...
        FittingReport("fr1", A, 258.0, 402.0),  # ...and shown again: the second report of one stay
        FittingReport("fr1", A, 409.0, 413.0),  # carried back past its curtain on the way out
        FittingReport("fr2", B, 102.0, 206.0),
        FittingReport("fr1", B, 210.0, 214.0),  # carried past fr1's curtain after leaving fr2
        FittingReport("fr2", C, 900.0, 904.0),  # C never had a stay: read from a shelf
    ]
    assert causes(truth, reports) == {
        "false_reports": {"after_stay": 1, "never_entered": 2, "split": 1},
        "missed_stays": {},
    }
