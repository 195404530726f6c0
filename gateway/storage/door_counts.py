"""Footfall: every door crossing stored (anonymous), visitors in and out per hour from them.

A crossing is a time, a door and a direction, never a person. Counters miss people (the second
of a side-by-side pair above all) and count a few false triggers, so visitors in are estimated
from the inward crossings by gateway.engines.footfall, per door with its counter's figures; visitors out
are the outward crossings as counted. Without a door sensor the figures are estimates from the
Bluetooth counts and are labelled so (`ESTIMATE`): see docs/kpi.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sqlite_utils

from edge import protocol
from gateway.engines import footfall

DOOR = "door"  # figures from the door sensor's crossings
ESTIMATE = "estimate"  # no crossings: recognised visits or the peak of anonymous devices, whichever is higher


@dataclass(frozen=True)
class Footfall:
    source: str  # DOOR or ESTIMATE
    visitors_in: list[float]  # per hour, in the order of the hours asked for
    visitors_out: list[float] | None  # None for an estimate: Bluetooth cannot tell anyone leaving
    counted_in: list[float] | None = None  # the inward crossings as counted, per hour (None for an estimate)


def record_crossings(db: sqlite_utils.Database, m: protocol.DoorCrossings) -> None:
    """Store a door message's crossings (call under the core's lock)."""
    db.conn.executemany(
        "INSERT INTO door_crossings (ts, node, door, direction, confidence, sensor) VALUES (?, ?, ?, ?, ?, ?)",
        [(c.t, m.node, m.door, c.direction, c.confidence, m.sensor) for c in m.crossings],
    )


def _from_crossings(
    inward: Sequence[tuple[float, str, str]], outward: Sequence[tuple[int, int]], index: dict[int, int]
) -> Footfall:
    """Visitors per hour: each door's inward crossings (time, door, counter kind) in the hours asked for are
    corrected by gateway.engines.footfall over those hours together, and spread over the hours as they came;
    outward crossings (hour, count) are counted as they are."""
    ins, outs, counted = [0.0] * len(index), [0.0] * len(index), [0.0] * len(index)
    for hour, n in outward:
        if hour in index:
            outs[index[hour]] += n
    doors: dict[tuple[str, str], list[float]] = defaultdict(list)
    for t, door, kind in inward:
        if int(t // 3600) in index:
            doors[(door, kind)].append(t)
    for (_, kind), times in doors.items():
        each = footfall.visitors_in(times, len(index), footfall.FIGURES[kind]) / len(times)
        hours, counts = np.unique(np.floor_divide(times, 3600).astype(np.int64), return_counts=True)
        for hour, k in zip(hours.tolist(), counts.tolist(), strict=True):
            counted[index[hour]] += k
            ins[index[hour]] += k * each
    return Footfall(DOOR, ins, outs, counted)


def visitors(db: sqlite_utils.Database, hour_starts: Sequence[float]) -> Footfall:
    """Visitors per hour in the given (open) hours: from the door sensor, else a labelled estimate."""
    if not hour_starts:
        return Footfall(DOOR, [], [])
    t0, t1 = min(hour_starts), max(hour_starts) + 3600
    index = {int(h // 3600): i for i, h in enumerate(hour_starts)}
    inward = db.execute(  # a week is some ten thousand rows, read from a covering index in time order
        "SELECT ts, door, COALESCE(sensor, 'beam') FROM door_crossings WHERE direction = 'in' AND ts >= ? AND ts < ? "
        "ORDER BY ts", [t0, t1]
    ).fetchall()
    outward = db.execute(
        "SELECT CAST(ts / 3600 AS INTEGER), COUNT(*) FROM door_crossings WHERE direction = 'out' AND ts >= ? "
        "AND ts < ? GROUP BY 1", [t0, t1]
    ).fetchall()
    if inward or outward:
        return _from_crossings(inward, outward, index)
    devices, visits = [0.0] * len(hour_starts), [0.0] * len(hour_starts)
    for hour, peak in db.execute(
        "SELECT hour, MAX(devices_max) FROM footfall WHERE hour >= ? AND hour < ? GROUP BY hour",
        [int(t0 // 3600), int(t1 // 3600)],
    ):
        if hour in index:
            devices[index[hour]] = float(peak)
    for (entered,) in db.execute("SELECT entered_at FROM visits WHERE entered_at >= ? AND entered_at < ?", [t0, t1]):
        i = index.get(int(entered // 3600))
        if i is not None:
            visits[i] += 1
    return Footfall(ESTIMATE, [max(d, v) for d, v in zip(devices, visits, strict=True)], None)
