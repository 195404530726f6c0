"""The staff inbox's storage: conversations per customer number, messages both ways, unread
counts, assignment.  Plain SQL on a connection the caller owns (and locks).

Tables ``wa_conversations`` and ``wa_inbox``, apart from the outbox's send queue: the inbox is
what staff read. docs/whatsapp.md, "Inbox".
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from .events import InboundMessage

MAX_THREAD = 200  # messages returned per conversation page: a tablet screen's worth and more


def summary(msg: InboundMessage) -> tuple[str, dict[str, Any]]:
    """What staff see for an inbound message (text) and the structured rest (data)."""
    if msg.type == "text":
        return msg.text or "", {}
    if msg.type == "button":
        return msg.button_text or msg.button_payload or "(button)", {"payload": msg.button_payload}
    if msg.type == "interactive":
        return msg.reply_title or msg.reply_id or "(reply)", {
            "reply_id": msg.reply_id,
            "reply_kind": msg.reply_kind,
        }
    if msg.type == "order":
        items = [
            {
                "gtin": i.product_retailer_id,
                "quantity": i.quantity,
                "price": i.item_price,
                "currency": i.currency,
            }
            for i in msg.order
        ]
        text = "Order: " + ", ".join(f"{i['quantity']} x {i['gtin']}" for i in items)
        return text, {"order": items}
    return f"({msg.type} message)", {}


def add_inbound(
    conn: sqlite3.Connection, msg: InboundMessage, customer_id: str | None, now: float
) -> int | None:
    """Store one inbound message; ``None`` if it was stored before (webhook redelivery)."""
    text, data = summary(msg)
    at = float(msg.timestamp)
    cur = conn.execute(
        "INSERT INTO wa_inbox (wa_id, customer_id, direction, message_id, kind, text, data, at) "
        "VALUES (?, ?, 'in', ?, ?, ?, ?, ?) ON CONFLICT(message_id) DO NOTHING",
        (msg.sender, customer_id, msg.message_id, msg.type, text, json.dumps(data), at),
    )
    if cur.rowcount != 1:
        return None
    conn.execute(
        "INSERT INTO wa_conversations (wa_id, customer_id, profile_name, unread, last_at, last_inbound_at) "
        "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT(wa_id) DO UPDATE SET unread = unread + 1, "
        "customer_id = COALESCE(excluded.customer_id, customer_id), "
        "profile_name = COALESCE(excluded.profile_name, profile_name), last_at = MAX(last_at, excluded.last_at), "
        "last_inbound_at = MAX(COALESCE(last_inbound_at, 0), excluded.last_inbound_at)",
        (msg.sender, customer_id, msg.profile_name, max(at, now), at),
    )
    return int(cur.lastrowid or 0)


def add_outbound(
    conn: sqlite3.Connection,
    wa_id: str,
    customer_id: str | None,
    key: str,
    kind: str,
    text: str,
    data: Mapping[str, Any],
    staff_id: int | None,
    now: float,
) -> int:
    cur = conn.execute(
        "INSERT INTO wa_inbox (wa_id, customer_id, direction, outbox_key, kind, text, data, staff_id, at) "
        "VALUES (?, ?, 'out', ?, ?, ?, ?, ?, ?)",
        (wa_id, customer_id, key, kind, text, json.dumps(dict(data)), staff_id, now),
    )
    conn.execute(
        "INSERT INTO wa_conversations (wa_id, customer_id, unread, last_at) VALUES (?, ?, 0, ?) "
        "ON CONFLICT(wa_id) DO UPDATE SET last_at = MAX(last_at, excluded.last_at), "
        "customer_id = COALESCE(customer_id, excluded.customer_id)",
        (wa_id, customer_id, now),
    )
    return int(cur.lastrowid or 0)


def conversations(conn: sqlite3.Connection, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first, with the last message's text, unread count and assignee."""
    rows = conn.execute(
        "SELECT c.wa_id, c.customer_id, c.profile_name, c.unread, c.last_at, c.last_inbound_at, "
        "c.assigned_staff_id, s.username, cu.name, "
        "(SELECT text FROM wa_inbox i WHERE i.wa_id = c.wa_id ORDER BY i.id DESC LIMIT 1) "
        "FROM wa_conversations c LEFT JOIN staff s ON s.id = c.assigned_staff_id "
        "LEFT JOIN customers cu ON cu.id = c.customer_id ORDER BY c.last_at DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        {
            "wa_id": r[0],
            "customer_id": r[1],
            "name": r[8] or r[2] or ("+" + r[0]),
            "unread": r[3],
            "last_at": r[4],
            "last_inbound_at": r[5],
            "assigned_staff_id": r[6],
            "assigned_to": r[7],
            "last_text": r[9] or "",
        }
        for r in rows
    ]


def conversation(conn: sqlite3.Connection, wa_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT c.wa_id, c.customer_id, c.profile_name, c.unread, c.last_at, c.last_inbound_at, "
        "c.assigned_staff_id, s.username, cu.name FROM wa_conversations c "
        "LEFT JOIN staff s ON s.id = c.assigned_staff_id LEFT JOIN customers cu ON cu.id = c.customer_id "
        "WHERE c.wa_id = ?",
        (wa_id,),
    ).fetchone()
    if row is None:
        return None
    return {
        "wa_id": row[0],
        "customer_id": row[1],
        "name": row[8] or row[2] or ("+" + row[0]),
        "unread": row[3],
        "last_at": row[4],
        "last_inbound_at": row[5],
        "assigned_staff_id": row[6],
        "assigned_to": row[7],
    }


def thread(conn: sqlite3.Connection, wa_id: str, limit: int = MAX_THREAD) -> list[dict[str, Any]]:
    """Messages of one conversation, oldest first; outbound ones with their delivery status."""
    rows = conn.execute(
        "SELECT * FROM (SELECT i.id, i.direction, i.kind, i.text, i.data, i.at, i.message_id, i.outbox_key, "
        "o.status, o.error_detail, s.username FROM wa_inbox i "
        "LEFT JOIN wa_outbox o ON o.idempotency_key = i.outbox_key LEFT JOIN staff s ON s.id = i.staff_id "
        "WHERE i.wa_id = ? ORDER BY i.id DESC LIMIT ?) ORDER BY id",
        (wa_id, limit),
    ).fetchall()
    return [
        {
            "id": r[0],
            "direction": r[1],
            "kind": r[2],
            "text": r[3],
            "data": json.loads(r[4] or "{}"),
            "at": r[5],
            "message_id": r[6],
            "key": r[7],
            "status": r[8] if r[1] == "out" else "received",
            "error": r[9],
            "staff": r[10],
        }
        for r in rows
    ]


def mark_read(conn: sqlite3.Connection, wa_id: str) -> list[str]:
    """Zero the unread count; returns the inbound message ids not yet marked read on WhatsApp."""
    conn.execute("UPDATE wa_conversations SET unread = 0 WHERE wa_id = ?", (wa_id,))
    last = conn.execute(
        "SELECT message_id FROM wa_inbox WHERE wa_id = ? AND direction = 'in' ORDER BY id DESC LIMIT 1",
        (wa_id,),
    ).fetchone()
    return [last[0]] if last else []


def assign(conn: sqlite3.Connection, wa_id: str, staff_id: int | None, now: float) -> bool:
    cur = conn.execute(
        "UPDATE wa_conversations SET assigned_staff_id = ?, assigned_at = ? WHERE wa_id = ?",
        (staff_id, now if staff_id is not None else None, wa_id),
    )
    return cur.rowcount == 1


def erase_number(conn: sqlite3.Connection, wa_id: str, customer_id: str | None) -> int:
    """Delete a customer's WhatsApp rows everywhere (outbox, statuses, window, inbox); rows removed."""
    n = 0
    keys = [r[0] for r in conn.execute("SELECT idempotency_key FROM wa_outbox WHERE customer = ?", (wa_id,))]
    for k in keys:
        n += conn.execute("DELETE FROM wa_status_events WHERE callback_data = ?", (k,)).rowcount
    n += conn.execute("DELETE FROM wa_status_events WHERE recipient_id = ?", (wa_id,)).rowcount
    n += conn.execute("DELETE FROM wa_outbox WHERE customer = ?", (wa_id,)).rowcount
    n += conn.execute("DELETE FROM wa_contacts WHERE customer = ?", (wa_id,)).rowcount
    n += conn.execute(
        "DELETE FROM wa_inbox WHERE wa_id = ? OR customer_id = ?", (wa_id, customer_id)
    ).rowcount
    n += conn.execute(
        "DELETE FROM wa_conversations WHERE wa_id = ? OR customer_id = ?", (wa_id, customer_id)
    ).rowcount
    return n
