"""Footfall: every door crossing stored (anonymous), visitors in and out per hour from them.

A crossing is a time, a door and a direction, never a person. Counters miss people (the second
of a side-by-side pair above all) and count a few false triggers, so visitors in are estimated
from the inward crossings by gateway.footfall, per door with its counter's figures; visitors out
are the outward crossings as counted. Without a door sensor the figures are estimates from the
Bluetooth counts and are labelled so (`ESTIMATE`): see docs/kpi.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlite_utils

from edge import protocol
from gateway import footfall

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


# Crossings per hour, door, counter kind and direction, and how many came less than a pair gap behind the
# one before through the same door and the same way: counted in SQL (a day is thousands of rows).
COUNTS_SQL = (
    "SELECT CAST(ts / 3600 AS INTEGER), door, COALESCE(sensor, 'beam'), direction, COUNT(*), SUM(gap < ?) "
    "FROM (SELECT ts, door, sensor, direction, ts - LAG(ts) OVER (PARTITION BY door, direction ORDER BY ts) AS gap "
    "FROM door_crossings WHERE ts >= ? AND ts < ?) GROUP BY 1, 2, 3, 4"
)


def _from_crossings(rows: Sequence[tuple[int, str, str, str, int, int | None]], index: dict[int, int]) -> Footfall:
    """Visitors per hour from the counted crossings: each door's inward count over the hours asked for is
    corrected by gateway.footfall, and spread over the hours as its crossings were."""
    ins, outs, counted = [0.0] * len(index), [0.0] * len(index), [0.0] * len(index)
    doors: dict[tuple[str, str], list[int]] = {}  # (door, kind) -> [crossings in, close behind another]
    for hour, door, kind, direction, n, close in rows:
        i = index.get(hour)
        if i is None:
            continue
        (counted if direction == "in" else outs)[i] += n
        if direction == "in":
            acc = doors.setdefault((door, kind), [0, 0])
            acc[0], acc[1] = acc[0] + n, acc[1] + (close or 0)
    for (door, kind), (n, close) in doors.items():
        share = footfall.visitors_from_counts(n, close, len(index), footfall.FIGURES[kind]) / n
        for hour, d, k, direction, hour_n, _ in rows:
            if (d, k, direction) == (door, kind, "in") and hour in index:
                ins[index[hour]] += hour_n * share
    return Footfall(DOOR, ins, outs, counted)


def visitors(db: sqlite_utils.Database, hour_starts: Sequence[float]) -> Footfall:
    """Visitors per hour in the given (open) hours: from the door sensor, else a labelled estimate."""
    if not hour_starts:
        return Footfall(DOOR, [], [])
    t0, t1 = min(hour_starts), max(hour_starts) + 3600
    index = {int(h // 3600): i for i, h in enumerate(hour_starts)}
    rows = db.execute(COUNTS_SQL, [footfall.PAIR_GAP_S, t0, t1]).fetchall()
    if rows:
        return _from_crossings(rows, index)
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
