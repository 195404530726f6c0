"""Requests from a fitting room ("bring me this in L", "call staff") until staff have answered them.

A row in ``room_requests``, not the screen, holds the state (created, claimed, done), so it
survives a reload or a restart; unclaimed after ``ESCALATE_AFTER_S`` it escalates on every tablet
(docs/fitting-rooms.md, "Requests staff cannot miss"). Functions take the database and the
time; ``gateway.web.routes_room_requests`` is the HTTP shell.
"""

from __future__ import annotations

from typing import Literal

import sqlite_utils

from gateway.storage import products as catalogue
from gateway.storage.db import inserted_id

#: An unclaimed request escalates after this long. Why: a customer half-dressed behind a curtain
#: waits; a minute is as long as "someone will be right with you" stays true (issue #20).
ESCALATE_AFTER_S = 60.0
#: A request nobody claimed within this long counts as missed. Why: by then the customer has
#: come out to look for someone, or given up; a claim after that does not answer the request.
MISSED_AFTER_S = 300.0

Kind = Literal["size", "staff"]

_COLUMNS = (
    "r.id, r.room, r.kind, r.gtin, r.size, r.colour, r.created_at, r.claimed_by, s.name, s.username, "
    "r.claimed_at, r.done_at"
)


def _row(db: sqlite_utils.Database, r: tuple) -> dict:
    p = catalogue.product(db, r[3]) if r[3] else None
    name = (r[8] or r[9] or "").split()
    return {
        "id": r[0],
        "room": r[1],
        "kind": r[2],
        "gtin": r[3],
        "product": p["name"] if p else None,
        "size": r[4],
        "colour": r[5],
        "created_at": r[6],
        "claimed_by": r[9],
        "claimed_by_name": name[0] if name else None,  # first name only: the screen is in a fitting room
        "claimed_at": r[10],
        "done_at": r[11],
    }


def get(db: sqlite_utils.Database, request_id: int) -> dict | None:
    r = db.execute(
        f"SELECT {_COLUMNS} FROM room_requests r LEFT JOIN staff s ON s.id = r.claimed_by WHERE r.id = ?",
        [request_id],
    ).fetchone()
    return _row(db, r) if r else None


def open_requests(db: sqlite_utils.Database, room: str | None = None) -> list[dict]:
    """Requests not done yet (of one room, or all), oldest first."""
    sql = f"SELECT {_COLUMNS} FROM room_requests r LEFT JOIN staff s ON s.id = r.claimed_by WHERE r.done_at IS NULL"
    args: list = []
    if room is not None:
        sql += " AND r.room = ?"
        args.append(room)
    return [_row(db, r) for r in db.execute(sql + " ORDER BY r.created_at, r.id", args)]


def create(
    db: sqlite_utils.Database,
    room: str,
    kind: Kind,
    gtin: str | None,
    size: str | None,
    colour: str | None,
    now: float,
) -> tuple[dict, bool]:
    """A new request, or the same one still open (pressed twice); returns (request, created)."""
    same = db.execute(
        "SELECT id FROM room_requests WHERE done_at IS NULL AND room = ? AND kind = ? "
        "AND gtin IS ? AND size IS ? AND colour IS ?",
        [room, kind, gtin, size, colour],
    ).fetchone()
    if same is not None:
        found = get(db, int(same[0]))
        assert found is not None
        return found, False
    cur = db.execute(
        "INSERT INTO room_requests (room, kind, gtin, size, colour, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [room, kind, gtin, size, colour, now],
    )
    made = get(db, inserted_id(cur))
    assert made is not None
    return made, True


def claim(db: sqlite_utils.Database, request_id: int, staff_id: int, now: float) -> dict:
    """Staff take the request (idempotent for the holder); KeyError if not open, ValueError if taken."""
    r = db.execute(
        "SELECT r.claimed_by, s.username FROM room_requests r LEFT JOIN staff s ON s.id = r.claimed_by "
        "WHERE r.id = ? AND r.done_at IS NULL",
        [request_id],
    ).fetchone()
    if r is None:
        raise KeyError(request_id)
    if r[0] is not None and r[0] != staff_id:
        raise ValueError(f"request {request_id} is taken by {r[1]}")
    if r[0] is None:
        db.execute("UPDATE room_requests SET claimed_by = ?, claimed_at = ? WHERE id = ?", [staff_id, now, request_id])
    out = get(db, request_id)
    assert out is not None
    return out


def finish(db: sqlite_utils.Database, request_id: int, staff_id: int, now: float) -> dict:
    """Staff are done with it (claiming it first if nobody had); KeyError if not open."""
    claim(db, request_id, staff_id, now)
    db.execute("UPDATE room_requests SET done_at = ? WHERE id = ?", [now, request_id])
    out = get(db, request_id)
    assert out is not None
    return out


def kpis(db: sqlite_utils.Database, t0: float, t1: float, now: float) -> dict:
    """Requests made in [t0, t1): answered within ESCALATE_AFTER_S, answered later, missed (nobody
    claimed within MISSED_AFTER_S), still waiting; and per staff member how many they answered."""
    rows = db.execute(
        "SELECT r.claimed_at - r.created_at, r.created_at, s.username FROM room_requests r "
        "LEFT JOIN staff s ON s.id = r.claimed_by WHERE r.created_at >= ? AND r.created_at < ?",
        [t0, t1],
    ).fetchall()
    out = {"answered_within_60s": 0, "answered_late": 0, "missed": 0, "waiting": 0}
    per_staff: dict[str, dict[str, int]] = {}
    for wait, created, who in rows:
        if wait is not None and wait <= MISSED_AFTER_S:
            out["answered_within_60s" if wait <= ESCALATE_AFTER_S else "answered_late"] += 1
            mine = per_staff.setdefault(who, {"requests_answered": 0, "requests_answered_within_60s": 0})
            mine["requests_answered"] += 1
            mine["requests_answered_within_60s"] += int(wait <= ESCALATE_AFTER_S)
        elif wait is None and now - created < MISSED_AFTER_S:
            out["waiting"] += 1
        else:
            out["missed"] += 1
    return {**out, "per_staff": per_staff}
