"""Click & collect: orders waiting in the back room for a customer.

An open order is part of the customer's card, so the "regular customer entered" alert says
"pickup order 1042 ready, back room shelf B" and nobody has to look it up. The order is
closed at the till (`POST /pos/sales` with its `order_id`) or by hand.
"""

from __future__ import annotations

import json

import sqlite_utils

STATUSES = ("ready", "collected", "cancelled")


def create_order(
    db: sqlite_utils.Database,
    *,
    order_id: int,
    customer_id: str,
    location: str,
    items: list[str],
    amount_cents: int,
    now: float,
) -> None:
    """Register an order ready for pickup.

    LookupError for an unknown customer, ValueError for a duplicate order number.
    """
    if not db.execute("SELECT 1 FROM customers WHERE id = ?", [customer_id]).fetchone():
        raise LookupError(f"customer_id: no customer {customer_id!r}")
    if db.execute("SELECT 1 FROM orders WHERE id = ?", [order_id]).fetchone():
        raise ValueError(f"order_id: order {order_id} already exists")
    db.execute(
        "INSERT INTO orders (id, customer_id, status, location, items, amount_cents, created_at) "
        "VALUES (?, ?, 'ready', ?, ?, ?, ?)",
        [order_id, customer_id, location, json.dumps(items), amount_cents, now],
    )


def get_order(db: sqlite_utils.Database, order_id: int) -> dict | None:
    cur = db.execute("SELECT * FROM orders WHERE id = ?", [order_id])
    row = cur.fetchone()
    if row is None:
        return None
    out = dict(zip([c[0] for c in cur.description], row, strict=True))
    out["items"] = json.loads(out["items"] or "[]")
    return out


def existing_order(db: sqlite_utils.Database, order_id: int) -> dict:
    """An order that must exist (just written or listed)."""
    order = get_order(db, order_id)
    if order is None:
        raise LookupError(f"order {order_id} not found")
    return order


def set_status(db: sqlite_utils.Database, order_id: int, status: str, *, now: float) -> dict:
    """Close an order (collected/cancelled). LookupError if unknown, ValueError if it is not open."""
    if status not in STATUSES[1:]:
        raise ValueError(f"status: must be one of {', '.join(STATUSES[1:])}")
    order = get_order(db, order_id)
    if order is None:
        raise LookupError(f"order_id: no order {order_id}")
    if order["status"] != "ready":
        raise ValueError(f"order_id: order {order_id} is already {order['status']}")
    db.execute(
        "UPDATE orders SET status = ?, collected_at = ? WHERE id = ?",
        [status, now if status == "collected" else None, order_id],
    )
    return existing_order(db, order_id)


def list_orders(db: sqlite_utils.Database, status: str | None = None) -> list[dict]:
    sql, args = "SELECT id FROM orders", []
    if status:
        sql, args = sql + " WHERE status = ?", [status]
    return [existing_order(db, r[0]) for r in db.execute(sql + " ORDER BY id DESC LIMIT 500", args)]
