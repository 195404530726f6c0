"""Footfall: every door crossing stored (anonymous), visitors in and out per hour from them.

A crossing is a time, a door and a direction, never a person. Without a door sensor the
figures are estimates from the Bluetooth counts and are labelled so (`ESTIMATE`): see docs/kpi.md.
`visitors` is the one place that turns crossings into visitors, so a better estimator
(correcting for the missed second person of a side-by-side pair) can replace it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlite_utils

from edge import protocol

DOOR = "door"  # figures from the door sensor's crossings
ESTIMATE = "estimate"  # no crossings: recognised visits or the peak of anonymous devices, whichever is higher


@dataclass(frozen=True)
class Footfall:
    source: str  # DOOR or ESTIMATE
    visitors_in: list[float]  # per hour, in the order of the hours asked for
    visitors_out: list[float] | None  # None for an estimate: Bluetooth cannot tell anyone leaving


def record_crossings(db: sqlite_utils.Database, m: protocol.DoorCrossings) -> None:
    """Store a door message's crossings (call under the core's lock)."""
    db.conn.executemany(
        "INSERT INTO door_crossings (ts, node, door, direction, confidence) VALUES (?, ?, ?, ?, ?)",
        [(c.t, m.node, m.door, c.direction, c.confidence) for c in m.crossings],
    )


def visitors(db: sqlite_utils.Database, hour_starts: Sequence[float]) -> Footfall:
    """Visitors per hour in the given (open) hours: from the door sensor, else a labelled estimate."""
    if not hour_starts:
        return Footfall(DOOR, [], [])
    t0, t1 = min(hour_starts), max(hour_starts) + 3600
    index = {int(h // 3600): i for i, h in enumerate(hour_starts)}
    rows = db.execute(  # one crossing, one person: counted per hour in SQL (a day is thousands of rows)
        "SELECT CAST(ts / 3600 AS INTEGER), direction, COUNT(*) FROM door_crossings WHERE ts >= ? AND ts < ? "
        "GROUP BY 1, 2", [t0, t1]
    ).fetchall()
    if rows:
        ins, outs = [0.0] * len(hour_starts), [0.0] * len(hour_starts)
        for hour, direction, n in rows:
            if hour in index:
                (ins if direction == "in" else outs)[index[hour]] += n
        return Footfall(DOOR, ins, outs)
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
