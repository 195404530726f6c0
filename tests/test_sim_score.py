"""The scorer on hand-made truth and reports: known precision, recall and latency, exactly."""

from __future__ import annotations

import pytest

from sim.score import FittingReport, ReportedEvent, percentile, score, score_fitting_rooms
from sim.truth import AgentTruth, RoomItem, Truth, ZoneStay


def _visitor(
    aid: str, cid: str | None, consent: bool, t_in: float, t_out: float, kind: str = "regular"
) -> AgentTruth:
    stays = (
        ZoneStay("pavement", t_in - 5, t_in),
        ZoneStay("entrance", t_in, t_in + 5),
        ZoneStay("floor", t_in + 5, t_out - 5),
        ZoneStay("entrance", t_out - 5, t_out),
        ZoneStay("pavement", t_out, t_out + 5),
    )
    return AgentTruth(aid, kind, cid, consent, t_in, t_out, stays)


def _truth() -> Truth:
    return Truth(
        1000.0,
        [
            _visitor("v1", "c1", True, 100, 200),
            _visitor("v2", "c2", True, 300, 400),
            _visitor("v3", "c3", True, 500, 600),
            _visitor("v4", "c4", True, 700, 800),
            _visitor("v5", "c5", False, 100, 200),  # registered, recognition withdrawn
            AgentTruth("p1", "passer_by", "c6", True, None, None, (ZoneStay("pavement", 0, 60),)),
            _visitor("v6", None, False, 100, 200, kind="shopper"),
        ],
        [
            RoomItem("fr1", "aa", 10, 20),
            RoomItem("fr1", "bb", 10, 20),
            RoomItem("fr2", "aa", 50, 70),
            RoomItem("fr2", "cc", 80, 90),
        ],
    )


def ev(kind: str, cid: str | None, t: float, zone: str | None = None) -> ReportedEvent:
    return ReportedEvent(kind, cid, t, t, zone)


def test_entry_precision_recall_and_latency_are_exact() -> None:
    events = [
        ev("entered", "c1", 101.0, "entrance"),  # latency 1
        ev("entered", "c2", 303.0, "entrance"),  # latency 3
        ev("entered", "c3", 505.0, "entrance"),  # latency 5
        ev("entered", "c6", 30.0, "entrance"),  # a registered passer-by: false positive
        ev("entered", "c1", 150.0, "entrance"),  # a duplicate for the same visit: false positive
        ev("left", "c1", 210.0),
        ev("left", "c2", 420.0),  # left latencies 10 and 20
    ]
    m = score(_truth(), events, wall_s=10.0)
    assert m["entry.true_visits"] == 4
    assert m["entry.events"] == 5
    assert m["entry.precision"] == pytest.approx(3 / 5)
    assert m["entry.recall"] == pytest.approx(3 / 4)
    assert m["entry.latency_p50_s"] == pytest.approx(3.0)
    assert m["entry.latency_p95_s"] == pytest.approx(4.8)  # linear interpolation over 1, 3, 5
    assert m["left.latency_p50_s"] == pytest.approx(15.0)
    assert m["left.latency_p95_s"] == pytest.approx(19.5)
    assert m["privacy.unconsented_identifications"] == 0
    assert m["sim.speedup"] == pytest.approx(100.0)


def test_a_left_while_still_inside_is_a_false_left_not_a_latency() -> None:
    events = [
        ev("entered", "c1", 101.0, "entrance"),
        ev("left", "c1", 150.0),  # c1 is inside until 200
        ev("entered", "c1", 160.0, "entrance"),
        ev("left", "c1", 207.0),  # the true `left`: 7 s after the crossing out
        ev("entered", "c2", 303.0, "entrance"),
        ev("left", "c2", 420.0),
    ]
    m = score(_truth(), events, wall_s=10.0)
    assert m["left.while_inside"] == 1
    assert m["left.detected"] == 2
    assert m["left.latency_p50_s"] == pytest.approx(13.5)  # 7 and 20, not -50 and 20


def test_percentile_is_linear_interpolation() -> None:
    assert percentile([1, 3, 5], 95) == pytest.approx(4.8)
    assert percentile([], 50) is None


def test_unconsented_and_unknown_identifications_are_counted() -> None:
    events = [
        ev("entered", "c5", 101.0),
        ev("zone_changed", "c5", 120.0, "floor"),
        ev("entered", "nobody", 5.0),
        ev("entered", "c1", 101.0),
    ]
    m = score(_truth(), events)
    assert m["privacy.unconsented_identifications"] == 3
    assert m["entry.precision"] == pytest.approx(1 / 3)


def test_no_events_gives_zero_recall_and_no_precision() -> None:
    m = score(_truth(), [])
    assert m["entry.recall"] == 0.0
    assert m["entry.precision"] is None
    assert m["entry.latency_p95_s"] is None
    assert m["zone.accuracy"] == 0.0


def test_zone_accuracy_slices_follow_the_events() -> None:
    truth = Truth(1000.0, [_visitor("v1", "c1", True, 100, 200)])
    # 100 one-second slices 100.5..199.5: entrance 100-105 (5), floor 105-195 (90), entrance 195-200 (5)
    events = [
        ev("entered", "c1", 100.0, "entrance"),
        ev("zone_changed", "c1", 115.0, "floor"),
        ev("left", "c1", 190.0),
    ]
    m = score(truth, events)
    assert m["zone.slices"] == 100
    # right: entrance 100.5..104.5 (5) + floor 115.5..189.5 (75) = 80; present: 100.5..189.5 = 90
    assert m["zone.accuracy"] == pytest.approx(0.80)
    assert m["zone.presence_accuracy"] == pytest.approx(0.90)


def test_changes_into_a_room_the_customer_was_not_in_are_counted_per_100_visits() -> None:
    stays = (ZoneStay("floor", 100, 150), ZoneStay("fr2", 150, 250), ZoneStay("floor", 250, 300))
    truth = Truth(1000.0, [AgentTruth("v1", "regular", "c1", True, 100, 300, stays),
                           _visitor("v2", "c2", True, 400, 500)],
                  zone_kinds={"floor": "floor", "fr1": "fitting_room", "fr2": "fitting_room"})
    events = [
        ev("zone_changed", "c1", 145.0, "fr2"),  # 5 s early: within the tolerance, right
        ev("zone_changed", "c1", 200.0, "fr1"),  # flapped into the next room: wrong
        ev("zone_changed", "c1", 210.0, "fr2"),  # back: right
        ev("zone_changed", "c2", 450.0, "fr1"),  # never in a room: wrong
        ev("zone_changed", "c2", 460.0, "floor"),  # not a room: not counted
    ]
    m = score(truth, events)
    assert m["zone.wrong_room_changes"] == 2
    assert m["zone.wrong_room_changes_per_100_visits"] == pytest.approx(100.0)


def test_fitting_room_precision_recall_latency() -> None:
    reports = [
        FittingReport("fr1", "aa", 12.0, 21.0),  # match, latency 2
        FittingReport("fr1", "bb", 14.0, None),  # match, latency 4
        FittingReport("fr1", "cc", 80.0, 90.0),  # cross-read: wrong room -> false positive
        FittingReport("fr2", "aa", 56.0, 71.0),  # match, latency 6
        FittingReport("fr2", "aa", 60.0, 71.0),  # duplicate of a matched stay -> false positive
    ]
    m = score_fitting_rooms(_truth(), reports)
    assert m["fitting_room.item_precision"] == pytest.approx(3 / 5)
    assert m["fitting_room.item_recall"] == pytest.approx(3 / 4)
    assert m["fitting_room.latency_p50_s"] == pytest.approx(4.0)
    assert m["fitting_room.latency_p95_s"] == pytest.approx(5.8)


def test_fitting_room_gone_latency_is_gone_at_minus_stay_end_of_matched_reports() -> None:
    truth = _truth()
    truth.room_items.append(RoomItem("fr3", "dd", 900, 1000))  # lasts until the end of the run
    reports = [
        FittingReport("fr1", "aa", 12.0, 21.0),  # stay ends 20: gone 1 s late
        FittingReport("fr1", "bb", 14.0, None),  # never gone: counted as gone at the run's end (980)
        FittingReport("fr1", "cc", 80.0, 90.0),  # unmatched: not counted
        FittingReport("fr2", "aa", 56.0, 66.0),  # dropped 4 s before the stay ended (70): -4
        FittingReport("fr3", "dd", 901.0, None),  # stay still open at the end: no gone latency
    ]
    m = score_fitting_rooms(truth, reports)
    assert m["fitting_room.gone_latency_p50_s"] == pytest.approx(1.0)
    assert m["fitting_room.gone_latency_p95_s"] == pytest.approx(1.0 + 0.9 * 979.0)
    m = score_fitting_rooms(truth, reports[:1])
    assert m["fitting_room.gone_latency_p95_s"] == pytest.approx(1.0)


def test_without_reports_fitting_room_metrics_are_none() -> None:
    m = score_fitting_rooms(_truth(), None)
    assert m["fitting_room.item_precision"] is None and m["fitting_room.true_stays"] == 4
    assert m["fitting_room.gone_latency_p95_s"] is None


def test_truth_round_trips_through_json() -> None:
    t = _truth()
    assert Truth.from_dict(t.to_dict()) == t


def test_party_members_are_scored_apart() -> None:
    t = _truth()
    # c2 and c3 came in together (a party of two with the anonymous shopper v6 making three)
    for aid in ("v2", "v3", "v6"):
        i = next(k for k, a in enumerate(t.agents) if a.id == aid)
        a = t.agents[i]
        t.agents[i] = AgentTruth(
            a.id, a.kind, a.customer_id, a.consent, a.entered_at, a.left_at, a.stays, party="g1", party_size=3
        )
    events = [
        ev("entered", "c1", 101.0, "entrance"),  # alone: latency 1
        ev("entered", "c2", 303.0, "entrance"),  # in the party: latency 3
        ev("entered", "c4", 709.0, "entrance"),  # alone: latency 9
    ]
    m = score(t, events)
    assert m["entry.party.true_visits"] == 2  # c2 and c3: the anonymous member is not a visit to detect
    assert m["entry.party.recall"] == pytest.approx(0.5)
    assert m["entry.party.latency_p50_s"] == pytest.approx(3.0)
    assert m["entry.recall"] == pytest.approx(0.75)


def test_fitting_room_report_long_before_a_stay_is_a_false_positive_not_that_stays_report() -> None:
    """A garment carried past a room early is shown there; the report, still open when the garment
    is really taken into the room much later, must not count for that stay (nor give it a
    negative latency)."""
    truth = _truth()
    truth.room_items[:] = [RoomItem("fr1", "aa", 300.0, 400.0)]
    early = FittingReport("fr1", "aa", 100.0, 350.0)  # shown 200 s before the stay, gone during it
    m = score_fitting_rooms(truth, [early])
    assert m["fitting_room.item_precision"] == 0.0 and m["fitting_room.item_recall"] == 0.0
    assert m["fitting_room.latency_p50_s"] is None
    on_time = FittingReport("fr1", "aa", 301.5, 405.0)
    m = score_fitting_rooms(truth, [early, on_time])
    assert m["fitting_room.item_precision"] == pytest.approx(0.5) and m["fitting_room.item_recall"] == 1.0
    assert m["fitting_room.latency_p50_s"] == pytest.approx(1.5)
    # shown a few seconds early (carried through the curtain) still counts, as an early show
    m = score_fitting_rooms(truth, [FittingReport("fr1", "aa", 295.0, 405.0)])
    assert m["fitting_room.item_precision"] == 1.0 and m["fitting_room.latency_p50_s"] == pytest.approx(-5.0)


def test_a_split_stay_is_gone_when_its_last_report_is_and_counts_as_split() -> None:
    reports = [
        FittingReport("fr1", "aa", 12.0, 15.0),  # gone while still in the room (stay 10-20)...
        FittingReport("fr1", "aa", 16.0, 23.0),  # ...shown again: the stay's gone is 23, 3 s late
        FittingReport("fr1", "bb", 11.0, 22.0),  # one report: 2 s late
    ]
    m = score_fitting_rooms(_truth(), reports)
    assert m["fitting_room.gone_latency_p50_s"] == pytest.approx(2.5)
    assert m["fitting_room.split_stays_per_100"] == pytest.approx(100 / 4)
    assert m["fitting_room.item_precision"] == pytest.approx(2 / 3)  # the second report is still a false one
    m = score_fitting_rooms(_truth(), reports[1:])
    assert m["fitting_room.split_stays_per_100"] == 0
