"""Scoring: ground truth and what the system reported in, metrics out. Pure functions.

Entries, exits, zones, fitting-room items and privacy, each matched against the ground truth; the
method is in docs/scenarios.md, "Scores". Percentiles are numpy's default (linear interpolation
between order statistics).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from gateway.engines.fitting_rooms import FittingReport  # the gateway reports, the scorer reads
from sim.truth import AgentTruth, RoomItem, Truth

ENTRY_EARLY_S = 30.0  # an entrance node may hear a customer strongly just before the door
ENTRY_LATE_S = 60.0  # a detection after the exit (but within this) still belongs to the visit
ZONE_SLICE_S = 1.0
ROOM_CHANGE_TOLERANCE_S = 10.0  # a change into a fitting room is right if the customer was there this close
#: A report may be shown this long before its stay starts: a garment coming through the curtain is
#: read strongly a moment before the simulated stay begins; shown earlier, it was about something else.
ROOM_EARLY_S = 10.0


@dataclass(frozen=True, slots=True)
class ReportedEvent:
    """A staff event as the scorer sees it; times are simulation seconds."""

    kind: str  # entered | left | zone_changed | ...
    customer_id: str | None
    t_obs: float  # the observation that triggered it
    emitted_at: float  # when the gateway emitted it
    zone: str | None = None


def percentile(values: Iterable[float], q: float) -> float | None:
    v = list(values)
    return float(np.percentile(np.asarray(v, dtype=float), q)) if v else None


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(frozen=True, slots=True)
class EntryMatch:
    customer_id: str
    agent_id: str
    entered_at: float
    left_at: float | None
    emitted_at: float  # of the matched `entered` event


def match_entries(truth: Truth, events: list[ReportedEvent]) -> tuple[list[EntryMatch], int, int]:
    """(matches, number of `entered` events, number of true visits)."""
    visits: dict[str, list[AgentTruth]] = {}
    for a in truth.agents:
        if a.consent and a.customer_id is not None and a.entered_at is not None:
            visits.setdefault(a.customer_id, []).append(a)
    for vs in visits.values():
        vs.sort(key=lambda a: a.entered_at or 0.0)  # every visit here has entered
    n_true = sum(len(v) for v in visits.values())
    used: set[str] = set()
    matches = []
    entered = sorted((e for e in events if e.kind == "entered"), key=lambda e: e.emitted_at)
    for e in entered:
        if e.customer_id is None:
            continue
        for a in visits.get(e.customer_id, []):
            end = (a.left_at if a.left_at is not None else truth.duration_s) + ENTRY_LATE_S
            start = (a.entered_at or 0.0) - ENTRY_EARLY_S
            if a.id not in used and start <= e.t_obs <= end:
                used.add(a.id)
                matches.append(EntryMatch(e.customer_id, a.id, a.entered_at or 0.0, a.left_at, e.emitted_at))
                break
    return matches, len(entered), n_true


def score_party_entries(truth: Truth, matches: list[EntryMatch]) -> dict:
    """Entry recall and latency of members of parties of two or more (a door sensor and BLE are
    hardest to match when several people come in together)."""
    members = {
        a.id for a in truth.agents if a.party_size >= 2 and a.consent and a.customer_id and a.entered_at is not None
    }
    lat = [m.emitted_at - m.entered_at for m in matches if m.agent_id in members]
    return {
        "entry.party.true_visits": len(members),
        "entry.party.recall": _ratio(len(lat), len(members)),
        "entry.party.latency_p50_s": percentile(lat, 50),
        "entry.party.latency_p95_s": percentile(lat, 95),
    }


def score_window_shoppers(truth: Truth, events: list[ReportedEvent]) -> dict:
    """Registered window shoppers (passers-by who stood at the shop front and walked on) that an
    `entered` event named: each is a false positive the precision already counts; this says how
    many per hour came from someone standing at the glass."""
    shoppers = {a.customer_id for a in truth.agents if a.window_s is not None and a.consent and a.customer_id}
    named = {e.customer_id for e in events if e.kind == "entered" and e.customer_id in shoppers}
    hours = truth.duration_s / 3600.0
    return {
        "entry.window_shoppers": len(shoppers),
        "entry.window_shoppers_announced": len(named),
        "entry.window_shoppers_announced_per_h": len(named) / hours if hours > 0 else None,
    }


def lefts_while_inside(truth: Truth, events: list[ReportedEvent]) -> int:
    """Registered visitors told `left` while they were still inside: the engine's false `left`s
    (the false-alarm budget of `sim.left_bound`)."""
    inside: dict[str, list[tuple[float, float]]] = {}
    for a in truth.agents:
        if a.consent and a.customer_id and a.entered_at is not None:
            end = a.left_at if a.left_at is not None else truth.duration_s
            inside.setdefault(a.customer_id, []).append((a.entered_at, end))
    return len({
        e.customer_id for e in events
        if e.kind == "left" and e.customer_id and any(lo <= e.t_obs < hi for lo, hi in inside.get(e.customer_id, []))
    })


def score_entries(truth: Truth, events: list[ReportedEvent]) -> dict:
    matches, n_events, n_true = match_entries(truth, events)
    lat = [m.emitted_at - m.entered_at for m in matches]
    left_lat = []
    lefts: dict[str, list[ReportedEvent]] = {}
    for e in events:
        if e.kind == "left" and e.customer_id:
            lefts.setdefault(e.customer_id, []).append(e)
    for m in matches:
        if m.left_at is None:
            continue
        after = sorted(  # a `left` seen before the crossing out is a false one (`lefts_while_inside`), not a latency
            (e for e in lefts.get(m.customer_id, []) if e.emitted_at >= m.emitted_at and e.t_obs >= m.left_at),
            key=lambda e: e.emitted_at,
        )
        if after:
            left_lat.append(after[0].emitted_at - m.left_at)
    return {
        "entry.true_visits": n_true,
        "entry.events": n_events,
        "entry.detected": len(matches),
        "entry.false_positives": n_events - len(matches),
        "entry.precision": _ratio(len(matches), n_events),
        "entry.recall": _ratio(len(matches), n_true),
        "entry.latency_p50_s": percentile(lat, 50),
        "entry.latency_p95_s": percentile(lat, 95),
        "left.detected": len(left_lat),
        "left.latency_p50_s": percentile(left_lat, 50),
        "left.latency_p95_s": percentile(left_lat, 95),
        "left.while_inside": lefts_while_inside(truth, events),
    } | score_party_entries(truth, matches) | score_window_shoppers(truth, events)


def predicted_zones(events: list[ReportedEvent]) -> dict[str, tuple[np.ndarray, list[str | None]]]:
    """Per customer: (emission times, zone from then on) as the events tell it."""
    out: dict[str, tuple[list[float], list[str | None]]] = {}
    for e in sorted(events, key=lambda e: e.emitted_at):
        if not e.customer_id or e.kind not in ("entered", "zone_changed", "left"):
            continue
        ts, zs = out.setdefault(e.customer_id, ([], []))
        ts.append(e.emitted_at)
        zs.append(None if e.kind == "left" else e.zone)
    return {c: (np.asarray(ts), zs) for c, (ts, zs) in out.items()}


def score_zones(truth: Truth, events: list[ReportedEvent]) -> dict:
    pred = predicted_zones(events)
    slices = right = present_right = 0
    for a in truth.agents:
        if not (a.consent and a.customer_id and a.entered_at is not None):
            continue
        end = a.left_at if a.left_at is not None else truth.duration_s
        ts = np.arange(a.entered_at + ZONE_SLICE_S / 2, end, ZONE_SLICE_S)
        if not len(ts):
            continue
        times, zones = pred.get(a.customer_id, (np.zeros(0), []))
        k = np.searchsorted(times, ts, side="right") - 1
        for t, i in zip(ts.tolist(), k.tolist(), strict=True):
            guess = zones[i] if i >= 0 else None
            actual = a.zone_at(t)
            slices += 1
            right += guess == actual
            present_right += guess is not None
    wrong, visits = wrong_room_changes(truth, events)
    return {
        "zone.slices": slices,
        "zone.accuracy": _ratio(right, slices),
        "zone.presence_accuracy": _ratio(present_right, slices),
        "zone.wrong_room_changes": wrong,
        "zone.wrong_room_changes_per_100_visits": None if not visits else 100.0 * wrong / visits,
    }


def wrong_room_changes(truth: Truth, events: list[ReportedEvent]) -> tuple[int, int]:
    """(changes into a fitting room the customer was not in, consenting visits).

    A `zone_changed` into a fitting room is right when the customer's true zone was that room
    at some moment within ROOM_CHANGE_TOLERANCE_S of the observation that triggered it.
    """
    rooms = {z for z, kind in truth.zone_kinds.items() if kind == "fitting_room"}
    stays: dict[str, list] = {}
    visits = 0
    for a in truth.agents:
        if a.consent and a.customer_id and a.entered_at is not None:
            visits += 1
            stays.setdefault(a.customer_id, []).extend(a.stays)
    wrong = 0
    for e in events:
        if e.kind != "zone_changed" or e.zone not in rooms or not e.customer_id:
            continue
        lo, hi = e.t_obs - ROOM_CHANGE_TOLERANCE_S, e.t_obs + ROOM_CHANGE_TOLERANCE_S
        wrong += not any(s.zone == e.zone and s.start <= hi and s.end >= lo for s in stays.get(e.customer_id, []))
    return wrong, visits


def report_fits_stay(rep: FittingReport, s: RoomItem) -> bool:
    """Whether a report of the stay's garment in its room could be about that stay: shown from
    ``ROOM_EARLY_S`` before it until its end, and not gone before it started."""
    gone = rep.gone_at if rep.gone_at is not None else np.inf
    return s.start - ROOM_EARLY_S <= rep.shown_at < s.end and gone > s.start


def match_fitting_reports(truth: Truth, reports: list[FittingReport]) -> list[tuple[FittingReport, RoomItem]]:
    """(report, true stay) pairs as the module docstring defines the match, in order of showing."""
    stays: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(truth.room_items):
        stays.setdefault((r.room, r.epc), []).append(i)
    used: set[int] = set()
    out = []
    for rep in sorted(reports, key=lambda r: r.shown_at):
        for i in stays.get((rep.room, rep.epc), []):
            s = truth.room_items[i]
            if i not in used and report_fits_stay(rep, s):
                used.add(i)
                out.append((rep, s))
                break
    return out


def reports_per_stay(truth: Truth, reports: list[FittingReport]) -> list[list[FittingReport]]:
    """For each true stay, in order of showing, every report of its garment in its room that could
    be about it (`report_fits_stay`). Two or more is a split stay: the garment left the screen while
    still in the room."""
    by_key: dict[tuple[str, str], list[FittingReport]] = {}
    for rep in sorted(reports, key=lambda r: r.shown_at):
        by_key.setdefault((rep.room, rep.epc), []).append(rep)
    return [[rep for rep in by_key.get((s.room, s.epc), []) if report_fits_stay(rep, s)] for s in truth.room_items]


def _gone_latencies(truth: Truth, per_stay: list[list[FittingReport]]) -> list[float]:
    """Last report's ``gone_at`` minus the stay's end, for stays that ended before the run: a split
    stay's early "gone" is not its gone (the garment came back on the screen)."""
    out = []
    for s, reps in zip(truth.room_items, per_stay, strict=True):
        if reps and s.end < truth.duration_s:
            last = reps[-1].gone_at
            out.append(min(last if last is not None else np.inf, truth.duration_s) - s.end)
    return out


def score_fitting_rooms(truth: Truth, reports: list[FittingReport] | None) -> dict:
    if reports is None:
        return {
            "fitting_room.true_stays": len(truth.room_items),
            "fitting_room.reports": None,
            "fitting_room.item_precision": None,
            "fitting_room.item_recall": None,
            "fitting_room.latency_p50_s": None,
            "fitting_room.latency_p95_s": None,
            "fitting_room.gone_latency_p50_s": None,
            "fitting_room.gone_latency_p95_s": None,
            "fitting_room.split_stays_per_100": None,
        }
    pairs = match_fitting_reports(truth, reports)
    lat = [rep.shown_at - s.start for rep, s in pairs]
    per_stay = reports_per_stay(truth, reports)
    gone_lat = _gone_latencies(truth, per_stay)
    split = sum(1 for reps in per_stay if len(reps) > 1)
    matched = len(pairs)
    return {
        "fitting_room.true_stays": len(truth.room_items),
        "fitting_room.reports": len(reports),
        "fitting_room.item_precision": _ratio(matched, len(reports)),
        "fitting_room.item_recall": _ratio(matched, len(truth.room_items)),
        "fitting_room.latency_p50_s": percentile(lat, 50),
        "fitting_room.latency_p95_s": percentile(lat, 95),
        "fitting_room.gone_latency_p50_s": percentile(gone_lat, 50),
        "fitting_room.gone_latency_p95_s": percentile(gone_lat, 95),
        "fitting_room.split_stays_per_100": _ratio(100 * split, len(truth.room_items)),
    }


def score_privacy(truth: Truth, events: list[ReportedEvent]) -> dict:
    consent = {a.customer_id: a.consent for a in truth.agents if a.customer_id}
    bad = sum(1 for e in events if e.customer_id is not None and not consent.get(e.customer_id, False))
    return {"privacy.unconsented_identifications": bad}


def score(
    truth: Truth,
    events: list[ReportedEvent],
    fitting_reports: list[FittingReport] | None = None,
    wall_s: float | None = None,
) -> dict:
    """Every metric of a run as one flat dict (None where there is nothing to measure)."""
    out: dict = {}
    out |= score_entries(truth, events)
    out |= score_zones(truth, events)
    out |= score_fitting_rooms(truth, fitting_reports)
    out |= score_privacy(truth, events)
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    for k, n in sorted(kinds.items()):
        out[f"events.{k}"] = n
    by_kind: dict[str, int] = {}
    for a in truth.agents:
        by_kind[a.kind] = by_kind.get(a.kind, 0) + 1
    for k, n in sorted(by_kind.items()):
        out[f"agents.{k}"] = n
    out["sim.duration_s"] = truth.duration_s
    out["sim.wall_s"] = wall_s
    out["sim.speedup"] = truth.duration_s / wall_s if wall_s else None
    return out
