"""Where the fitting-room engine's false reports and missed stays come from, and what the rooms read.

Runs a scenario as `sim.run.run_fast` does and sorts every report the scorer does not match and
every true stay it misses by cause (a second report of a stay split by a false "gone", a garment
shown while its customer waits in front of the room, in another room, just after it left the room,
in a room it never entered, or otherwise), and gives, per room, the level its own antenna reads
the garments of true stays at beside the level of garments read outside every room at its enter
level (the queue). docs/fitting-rooms.md, "Why recall is low, and why a level does not tell the queue".
    python -m sim.room_queue sim/scenarios/mall_unit.toml [--seeds 1-3] [--duration S]
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable

import numpy as np

from firmware_config.store import StoreFile
from gateway.engines.fitting_rooms import SOLID_MIN_READS, FittingReport, FittingRoomEngine, Layout
from sim.entry_bound import bound_cli
from sim.parties import ROOM_MAX_WAIT_S
from sim.room_bound import EARLY_S
from sim.room_gone_bound import GONE_MAX_S
from sim.run import EPOCH, run_fast
from sim.scenario import Scenario
from sim.score import ROOM_EARLY_S, match_fitting_reports, report_fits_stay, score_fitting_rooms
from sim.truth import RoomItem, Truth

#: A garment read outside every room at a room's enter level in at least this many solid windows is
#: one the room could show (held by a customer waiting in front of it, or on a rail by the curtain).
OUTSIDE_MIN_WINDOWS = 5
#: A stay read within this much of the queued garments' level cannot be told from the queue by level.
QUEUE_NEAR_DB = 1.0

Read = tuple[float, str, str, int, float]  # (window end, place, epc, reads, RSSI mean)


def _open_at(rep: FittingReport, t: float) -> bool:
    return rep.shown_at <= t and (rep.gone_at is None or rep.gone_at > t)


def _false_cause(rep: FittingReport, stays: list[RoomItem]) -> str:
    """Why an unmatched report is false: a second report of a stay in that room whose first report took
    the match (the stay was split: shown, gone, shown again), its garment was waiting in front of a room
    (a stay of its own starts later, within ROOM_MAX_WAIT_S: in the room it is shown in, or another), it
    was in another room meanwhile, it had just left that room (within GONE_MAX_S: carried out past its
    curtain), it had no stay there then (carried past, read from a shelf), or something else."""
    gone = rep.gone_at if rep.gone_at is not None else np.inf
    own = [s for s in stays if s.room == rep.room]
    if any(report_fits_stay(rep, s) for s in own):
        return "split"
    later = [s for s in stays if rep.shown_at + ROOM_EARLY_S < s.start <= rep.shown_at + ROOM_MAX_WAIT_S]
    if any(s.room == rep.room for s in later):
        return "queued"
    if later:
        return "queued_for_other_room"
    if any(s.room != rep.room and s.start < gone and s.end > rep.shown_at for s in stays):
        return "other_room"
    if any(s.end <= rep.shown_at < s.end + GONE_MAX_S for s in own):
        return "after_stay"
    if not any(s.start < gone and s.end > rep.shown_at for s in own):
        return "never_entered"
    return "other"


def _missed_cause(stay: RoomItem, reports: list[FittingReport]) -> str:
    """Why a true stay is missed: its garment's report from the queue is still open when it starts,
    it is shown in another room meanwhile, or it is not shown at all."""
    if any(r.room == stay.room and r.shown_at < stay.start - ROOM_EARLY_S and _open_at(r, stay.start) for r in reports):
        return "shown_early"
    if any(r.room != stay.room and r.shown_at < stay.end and (r.gone_at is None or r.gone_at > stay.start)
           for r in reports):
        return "other_room"
    return "not_shown"


def causes(truth: Truth, reports: list[FittingReport]) -> dict[str, dict[str, int]]:
    """Unmatched reports and missed stays (the scorer's matching) counted by cause."""
    pairs = match_fitting_reports(truth, reports)
    matched_reports = {id(r) for r, _ in pairs}
    matched_stays = {id(s) for _, s in pairs}
    stays: dict[str, list[RoomItem]] = defaultdict(list)
    for s in truth.room_items:
        stays[s.epc].append(s)
    by_epc: dict[str, list[FittingReport]] = defaultdict(list)
    for r in reports:
        by_epc[r.epc].append(r)
    false = Counter(_false_cause(r, stays[r.epc]) for r in reports if id(r) not in matched_reports)
    missed = Counter(_missed_cause(s, by_epc[s.epc]) for s in truth.room_items if id(s) not in matched_stays)
    return {"false_reports": dict(sorted(false.items())), "missed_stays": dict(sorted(missed.items()))}


def room_levels(truth: Truth, reads: Iterable[Read], enter: dict[str, float]) -> dict[str, dict]:
    """Per room: the median solid read of each true stay (from EARLY_S after it starts to EARLY_S
    before it ends), and of each garment read outside its stays there (ROOM_EARLY_S before one to
    GONE_MAX_S after) at the room's enter level in OUTSIDE_MIN_WINDOWS windows or more."""
    by: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for t, place, epc, n, x in reads:
        if place in enter and n >= SOLID_MIN_READS:
            by[(epc, place)].append((t, x))
    stays: dict[tuple[str, str], list[RoomItem]] = defaultdict(list)
    for s in truth.room_items:
        stays[(s.epc, s.room)].append(s)
    inside: dict[str, list[float]] = defaultdict(list)
    for s in truth.room_items:
        xs = [x for t, x in by[(s.epc, s.room)] if s.start + EARLY_S <= t <= s.end - EARLY_S]
        if xs and s.room in enter:
            inside[s.room].append(float(np.median(xs)))
    outside: dict[str, list[float]] = defaultdict(list)
    for (epc, room), rr in by.items():
        own = stays[(epc, room)]
        xs = [x for t, x in rr if x >= enter[room] and not any(s.start - ROOM_EARLY_S <= t <= s.end + GONE_MAX_S
                                                                for s in own)]
        if len(xs) >= OUTSIDE_MIN_WINDOWS:
            outside[room].append(float(np.median(xs)))
    return {room: _level_row(inside[room], outside[room], enter[room]) for room in sorted(enter)}


def _level_row(inside: list[float], outside: list[float], enter: float) -> dict:
    a = np.asarray(inside)
    q = float(np.median(outside)) if outside else None
    return {
        "enter_dbm": round(enter, 1),
        "stays": len(a),
        "stay_dbm_q10_q50_q90": [round(float(v), 1) for v in np.quantile(a, [0.1, 0.5, 0.9])] if len(a) else None,
        "outside_garments": len(outside),
        "outside_dbm": None if q is None else round(q, 1),
        "stays_at_or_below_outside": None if q is None else int((a <= q + QUEUE_NEAR_DB).sum()),
    }


def _rfid_reads(payloads: list[bytes], layout: Layout) -> list[Read]:
    out: list[Read] = []
    for p in payloads:
        w = json.loads(p)
        if w.get("type") != "rfid" or w.get("late"):
            continue
        for o in w["observations"]:
            place = layout.antennas.get((w["node"], o["ant"]))
            if place is not None:
                out.append((w["window"][1] - EPOCH, place, o["epc"], o["n"], o["rssi_mean"]))
    return out


def room_queue(sc: Scenario, store: StoreFile) -> dict:
    """The causes and the rooms' levels for one scenario (its seed) as a JSON-ready dict."""
    r = run_fast(sc, store, keep_payloads=True)
    layout = Layout.from_store(store)
    eng = FittingRoomEngine(layout)
    enter = {p.id: float(eng.enter[i]) for i, p in enumerate(eng.places) if eng.is_room[i]}
    reports = r.fitting_reports or []
    score = score_fitting_rooms(r.truth, reports)
    return {
        "scenario": sc.scenario.name,
        "seed": sc.scenario.seed,
        "precision": score["fitting_room.item_precision"],
        "recall": score["fitting_room.item_recall"],
        **causes(r.truth, reports),
        "rooms": room_levels(r.truth, _rfid_reads(r.payloads, layout), enter),
    }


if __name__ == "__main__":
    bound_cli(__doc__, room_queue)
