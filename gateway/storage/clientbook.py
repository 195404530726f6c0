"""What the staff tablet reads beyond the live feed: the client book, a customer's whole story, the task board.

Pure functions over the database with an injected `now`; the routes are in `gateway.web.routes_tablet`.
"""

from __future__ import annotations

import sqlite_utils

from gateway.storage.customers import customer_record

CLIENT_BOOK_LIMIT = 500  # a boutique's regulars fit on one scrolling list; search narrows a bigger book
PROFILE_PURCHASES = 10  # purchases shown with their items on the customer page


def client_book(db: sqlite_utils.Database, q: str = "", *, limit: int = CLIENT_BOOK_LIMIT) -> list[dict]:
    """Customers by name (case folded), filtered by a name part or a number's digits, with their last visit."""
    args: list = []
    where = ""
    if q.strip():
        digits = "".join(ch for ch in q if ch.isdigit()).lstrip("0")  # "0170 ..." is "+49 170 ..." written at home
        where = "WHERE c.name LIKE ? ESCAPE '\\'"
        args.append("%" + q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        if len(digits) >= 3:  # three digits are a number fragment; fewer match nearly every number
            where += " OR REPLACE(c.whatsapp, '+', '') LIKE ?"
            args.append("%" + digits + "%")
    rows = db.execute(
        "SELECT c.id, c.name, c.whatsapp, (SELECT MAX(v.entered_at) FROM visits v WHERE v.customer_id = c.id) "
        f"FROM customers c {where} ORDER BY c.name COLLATE NOCASE, c.id LIMIT ?",
        [*args, limit],
    ).fetchall()
    return [{"id": r[0], "name": r[1], "whatsapp": r[2], "last_visit": r[3]} for r in rows]


def _items(db: sqlite_utils.Database, sale_id: int) -> list[dict]:
    """A sale's items with their catalogue name, brand, colour and size where the catalogue knows the GTIN."""
    return [
        {"gtin": r[0], "name": r[1], "brand": r[2], "colour": r[3], "size": r[4]}
        for r in db.execute(
            "SELECT i.gtin, p.name, p.brand, p.colour, p.size FROM sale_items i "
            "LEFT JOIN products p ON p.gtin = i.gtin WHERE i.sale_id = ? ORDER BY i.id",
            [sale_id],
        )
    ]


def profile(db: sqlite_utils.Database, customer_id: str) -> dict | None:
    """The record plus what the page shows: purchases with items, lifetime spend, open tasks, in store since."""
    rec = customer_record(db, customer_id)
    if rec is None:
        return None
    rec["purchases"] = [{**p, "items": _items(db, p["sale_id"])} for p in rec["purchases"][:PROFILE_PURCHASES]]
    rec["open_tasks"] = [
        {"id": r[0], "kind": r[1], "title": r[2], "due_at": r[3], "urgent": bool(r[4])}
        for r in db.execute(
            "SELECT id, kind, title, due_at, urgent FROM tasks WHERE customer_id = ? AND done_at IS NULL "
            "ORDER BY due_at IS NULL, due_at, id",
            [customer_id],
        )
    ]
    rec["lifetime"] = [  # lifetime spend per currency (a store sells in one; a change of currency stays apart)
        {"currency": r[0], "amount_cents": r[1]}
        for r in db.execute(
            "SELECT currency, SUM(amount_cents) FROM sales WHERE customer_id = ? GROUP BY currency ORDER BY currency",
            [customer_id],
        )
    ]
    here = db.execute("SELECT zone, entered_at FROM presence_state WHERE customer_id = ?", [customer_id]).fetchone()
    rec["in_store"] = {"zone": here[0], "entered_at": here[1]} if here else None
    return rec


def entered_at(db: sqlite_utils.Database) -> dict[str, float]:
    """When each customer now in the store came in (for "in the store for 12 min")."""
    return {r[0]: r[1] for r in db.execute("SELECT customer_id, entered_at FROM presence_state")}


def task_board(tasks: list[dict], *, now: float, end_of_today: float) -> dict[str, list[dict]]:
    """Open tasks sorted into overdue (due before now), today (due today, or undated) and upcoming."""
    board: dict[str, list[dict]] = {"overdue": [], "today": [], "upcoming": []}
    for task in tasks:
        due = task.get("due_at")
        group = "today" if due is None else "overdue" if due < now else "today" if due < end_of_today else "upcoming"
        board[group].append(task)
    return board
