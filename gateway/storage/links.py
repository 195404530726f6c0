"""Short links in WhatsApp messages: the gateway counts the click and redirects, no third party.

A link is a random token (128 bits: unguessable, so nobody can count clicks for a link they were
not sent) naming a URL the gateway itself stored when it wrote the message. The redirect only
ever goes to such a stored URL, never to one taken from the request, so it cannot be used as an
open redirect. A click is stored as a time, without address or device. Online orders placed
through a checkout link are reported by the shop with the link's `ref` and counted per link.
"""

from __future__ import annotations

import re
import secrets

import sqlite_utils

TOKEN_BYTES = 16  # 128 random bits
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
PATH = "/r/"


def shorten(db: sqlite_utils.Database, url: str, customer_id: str | None, ref: str, now: float, base: str) -> str:
    """A new short link to `url` under `base` (the gateway's public address)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    db.execute(
        "INSERT INTO links (token, url, customer_id, ref, created_at) VALUES (?, ?, ?, ?, ?)",
        [token, url, customer_id, ref, now],
    )
    return base.rstrip("/") + PATH + token


def token_of(url: str) -> str | None:
    """The token of a short link in a stored message, if it is one."""
    _, sep, tail = url.rpartition(PATH)
    return tail if sep and TOKEN.match(tail) else None


def follow(db: sqlite_utils.Database, token: str, now: float) -> str | None:
    """Count a click and return the link's URL; None for an unknown token (nothing counted)."""
    if not TOKEN.match(token):
        return None
    row = db.execute("SELECT url FROM links WHERE token = ?", [token]).fetchone()
    if row is None:
        return None
    db.execute("INSERT INTO link_clicks (token, at) VALUES (?, ?)", [token, now])
    return row[0]


def record_order(db: sqlite_utils.Database, ref: str, order_ref: str, amount_cents: int, currency: str,
                 now: float) -> bool | None:
    """An online order through the checkout link with `ref`: True if new, False if already known,
    None if no link has that ref."""
    row = db.execute("SELECT token FROM links WHERE ref = ? ORDER BY created_at DESC", [ref]).fetchone()
    if row is None:
        return None
    cur = db.execute(
        "INSERT INTO link_orders (token, order_ref, ts, amount_cents, currency) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT(order_ref) DO NOTHING",
        [row[0], order_ref, now, amount_cents, currency],
    )
    return cur.rowcount == 1
