"""The staff app's working state: claims, tasks and follow-ups, notes, answered alerts.

A *claim* says "I am looking after this customer / doing this task": one staff member at a
time, so two associates do not both walk up to the same regular. Claiming a customer who
was announced a moment ago also answers that alert, which is how the dashboard measures
"alerts answered within 60 s". Pure functions over the database with an injected `now`.
"""

from __future__ import annotations

import re

import sqlite_utils

from gateway.storage.db import inserted_id

ALERT_ANSWER_WINDOW_S = 15 * 60.0  # a claim this long after an "entered" alert still answers it (late)
ANSWERED_IN_S = 60.0  # the store's target: a regular is greeted within a minute
SUBJECT = re.compile(r"^(customer|task):([A-Za-z0-9_.:-]{1,64})$")
TASK_KINDS = ("followup", "task", "pickup")


class ClaimConflict(Exception):
    """Someone else holds the claim."""

    def __init__(self, subject: str, holder: str):
        super().__init__(f"{subject} is claimed by {holder}")
        self.subject, self.holder = subject, holder


class NotFound(LookupError):
    pass


def subject_customer(db: sqlite_utils.Database, subject: str) -> str | None:
    """Validate a claim subject and return the customer it concerns (if any); NotFound if unknown."""
    m = SUBJECT.fullmatch(subject)
    if not m:
        raise ValueError("subject: must be 'customer:<id>' or 'task:<id>'")
    kind, ident = m.groups()
    if kind == "customer":
        if not db.execute("SELECT 1 FROM customers WHERE id = ?", [ident]).fetchone():
            raise NotFound(f"customer {ident!r} not found")
        return ident
    row = (
        db.execute("SELECT customer_id FROM tasks WHERE id = ?", [ident]).fetchone()
        if ident.isdigit()
        else None
    )
    if row is None:
        raise NotFound(f"task {ident!r} not found")
    return row[0]


def claim(db: sqlite_utils.Database, subject: str, staff_id: int, *, now: float) -> dict:
    """Take a claim (idempotent for the holder). Raises ClaimConflict if another staff member holds it."""
    cid = subject_customer(db, subject)
    row = db.execute(
        "SELECT c.staff_id, s.username FROM claims c JOIN staff s ON s.id = c.staff_id WHERE c.subject = ?",
        [subject],
    ).fetchone()
    if row and row[0] != staff_id:
        raise ClaimConflict(subject, row[1])
    if not row:
        db.execute(
            "INSERT INTO claims (subject, customer_id, staff_id, at) VALUES (?, ?, ?, ?)",
            [subject, cid, staff_id, now],
        )
    answered = answer_alert(db, cid, staff_id, now=now) if subject.startswith("customer:") and cid else None
    return {"subject": subject, "customer_id": cid, "staff_id": staff_id, "answered_event": answered}


def release(db: sqlite_utils.Database, subject: str, staff_id: int, *, manager: bool = False) -> bool:
    """Give a claim up; only its holder (or a manager) may. False if it was not claimed."""
    row = db.execute(
        "SELECT c.staff_id, s.username FROM claims c JOIN staff s ON s.id = c.staff_id WHERE c.subject = ?",
        [subject],
    ).fetchone()
    if row is None:
        return False
    if row[0] != staff_id and not manager:
        raise ClaimConflict(subject, row[1])
    db.execute("DELETE FROM claims WHERE subject = ?", [subject])
    return True


def claims(db: sqlite_utils.Database) -> list[dict]:
    return [
        {"subject": r[0], "customer_id": r[1], "staff_id": r[2], "staff": r[3], "at": r[4]}
        for r in db.execute(
            "SELECT c.subject, c.customer_id, c.staff_id, s.username, c.at FROM claims c "
            "JOIN staff s ON s.id = c.staff_id ORDER BY c.at"
        )
    ]


def answer_alert(db: sqlite_utils.Database, customer_id: str, staff_id: int, *, now: float) -> int | None:
    """Mark the customer's latest unanswered "entered" alert as answered by this staff member."""
    row = db.execute(
        "SELECT e.id, e.ts FROM events e LEFT JOIN alert_answers a ON a.event_id = e.id "
        "WHERE e.customer_id = ? AND e.kind = 'entered' AND a.event_id IS NULL AND e.ts >= ? "
        "ORDER BY e.id DESC LIMIT 1",
        [customer_id, now - ALERT_ANSWER_WINDOW_S],
    ).fetchone()
    if row is None:
        return None
    db.execute(
        "INSERT INTO alert_answers (event_id, customer_id, staff_id, alert_ts, answered_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [row[0], customer_id, staff_id, row[1], max(now, row[1])],
    )
    return int(row[0])


def add_task(
    db: sqlite_utils.Database,
    *,
    kind: str,
    title: str,
    customer_id: str | None,
    due_at: float | None,
    created_by: int | None,
    now: float,
    urgent: bool = False,
    assigned_to: int | None = None,
) -> int:
    """A task (open to anyone unless `assigned_to` a staff member); urgent ones ring on the tablets."""
    if kind not in TASK_KINDS:
        raise ValueError(f"kind: must be one of {', '.join(TASK_KINDS)}")
    if (
        customer_id is not None
        and not db.execute("SELECT 1 FROM customers WHERE id = ?", [customer_id]).fetchone()
    ):
        raise NotFound(f"customer {customer_id!r} not found")
    if assigned_to is not None and not db.execute("SELECT 1 FROM staff WHERE id = ?", [assigned_to]).fetchone():
        raise NotFound(f"staff member {assigned_to} not found")
    cur = db.execute(
        "INSERT INTO tasks (kind, customer_id, title, due_at, created_at, created_by, urgent, assigned_to) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [kind, customer_id, title, due_at, now, created_by, int(urgent), assigned_to],
    )
    return inserted_id(cur)


def staff_id(db: sqlite_utils.Database, username: str) -> int:
    """The id of an active staff account; NotFound naming the username otherwise."""
    row = db.execute("SELECT id FROM staff WHERE username = ? AND active = 1", [username]).fetchone()
    if row is None:
        raise NotFound(f"assigned_to: no staff member {username!r}")
    return int(row[0])


def complete_task(db: sqlite_utils.Database, task_id: int, staff_id: int, *, now: float) -> str | None:
    """Mark a task done and drop its claim; returns its customer id. NotFound if no such open task."""
    row = db.execute("SELECT customer_id FROM tasks WHERE id = ? AND done_at IS NULL", [task_id]).fetchone()
    if row is None:
        raise NotFound(f"task {task_id} not found or already done")
    db.execute("UPDATE tasks SET done_at = ?, done_by = ? WHERE id = ?", [now, staff_id, task_id])
    db.execute("DELETE FROM claims WHERE subject = ?", [f"task:{task_id}"])
    return row[0]


def open_tasks(db: sqlite_utils.Database, *, due_before: float | None = None) -> list[dict]:
    """Open tasks (due before `due_before`, or undated), with customer name and claim holder."""
    sql = (
        "SELECT t.id, t.kind, t.title, t.customer_id, c.name, t.due_at, s.username, t.urgent, a.username "
        "FROM tasks t LEFT JOIN customers c ON c.id = t.customer_id "
        "LEFT JOIN claims k ON k.subject = 'task:' || t.id LEFT JOIN staff s ON s.id = k.staff_id "
        "LEFT JOIN staff a ON a.id = t.assigned_to "
        "WHERE t.done_at IS NULL"
    )
    args: list = []
    if due_before is not None:
        sql += " AND (t.due_at IS NULL OR t.due_at < ?)"
        args.append(due_before)
    sql += " ORDER BY t.due_at IS NULL, t.due_at, t.id LIMIT 200"
    return [
        {
            "id": r[0],
            "kind": r[1],
            "title": r[2],
            "customer_id": r[3],
            "customer": r[4],
            "due_at": r[5],
            "claimed_by": r[6],
            "urgent": bool(r[7]),
            "assigned_to": r[8],
        }
        for r in db.execute(sql, args)
    ]


def add_note(db: sqlite_utils.Database, customer_id: str, staff_id: int, text: str, *, now: float) -> int:
    if not db.execute("SELECT 1 FROM customers WHERE id = ?", [customer_id]).fetchone():
        raise NotFound(f"customer {customer_id!r} not found")
    return inserted_id(
        db.execute(
            "INSERT INTO notes (customer_id, staff_id, at, text) VALUES (?, ?, ?, ?)",
            [customer_id, staff_id, now, text],
        )
    )


def present_now(db: sqlite_utils.Database, present: dict[str, str]) -> list[dict]:
    """The customers in the store now (from the presence engine) with name, zone and who has claimed them."""
    out = []
    for cid, zone in sorted(present.items()):
        row = db.execute(
            "SELECT c.name, s.username FROM customers c "
            "LEFT JOIN claims k ON k.subject = 'customer:' || c.id "
            "LEFT JOIN staff s ON s.id = k.staff_id WHERE c.id = ?",
            [cid],
        ).fetchone()
        if row is not None:
            out.append({"customer_id": cid, "name": row[0], "zone": zone, "claimed_by": row[1]})
    return out
