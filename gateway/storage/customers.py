"""Customers, their consent and their beacon identities (the CRM's core tables).

Consent is data: every grant or withdrawal is a row with when, how and the wording shown,
and the current state is the latest row per purpose. Recognition needs recognition consent.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass

import sqlite_utils

from gateway.storage.db import PURPOSES

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")  # ITU-T E.164: "+", country code, at most 15 digits in all
_PHONE_SEPARATORS = re.compile(r"[\s().\-/]")  # how people write numbers; dropped before checking
CARD_PURCHASES = 3  # the last few purchases are what a sales associate can use at a glance
LANGUAGES = ("en", "de", "fr", "it", "es", "nl", "pl", "tr")  # languages the store's templates exist in


def normalise_whatsapp(number: str) -> str:
    """A WhatsApp number as E.164 (`+491701234567`), or ValueError naming the field.

    Separators people type are dropped; a leading `00` is the international prefix. A number
    without a country code is refused rather than guessed: a wrong guess messages a stranger.
    """
    n = _PHONE_SEPARATORS.sub("", number or "")
    if n.startswith("00"):
        n = "+" + n[2:]
    if not E164.fullmatch(n):
        raise ValueError("whatsapp: must be an international number in E.164 form, like +491701234567")
    return n


@dataclass(frozen=True, slots=True)
class Identity:
    customer_id: str
    kind: str  # "eid" (value = identity key hex) or "ibeacon" (value = ibeacon:<uuid>:<major>:<minor>)
    value: str
    k: int = 0
    epoch: int = 0
    carrier: str | None = None  # "android_app", "key_fob", ...; None: not recorded
    adverts_per_s: float | None = None  # its advertising rate; None: the presence engine's default


def add_customer(
    db: sqlite_utils.Database, customer_id: str, name: str, *, whatsapp: str = "", language: str = "en",
    sizes: dict | None = None, brands: list[str] | None = None, notes: str = "", now: float,
    colours: list[str] | None = None,
) -> None:
    db.table("customers").insert({
        "id": customer_id, "name": name, "whatsapp": normalise_whatsapp(whatsapp) if whatsapp else "",
        "language": language, "sizes": json.dumps(sizes or {}), "brands": json.dumps(brands or []),
        "notes": notes,
        "created_at": now, "colours": json.dumps(colours or []), "updated_at": now,
    })


_JSON_FIELDS = ("sizes", "brands", "colours")
EDITABLE = ("name", "whatsapp", "language", "sizes", "brands", "colours", "notes")


def update_customer(db: sqlite_utils.Database, customer_id: str, changes: dict, *, now: float) -> bool:
    """Apply profile edits (only `EDITABLE` fields); False if there is no such customer."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValueError(f"{sorted(unknown)[0]}: not an editable customer field")
    row = {k: (json.dumps(v) if k in _JSON_FIELDS else v) for k, v in changes.items()}
    if row.get("whatsapp"):
        row["whatsapp"] = normalise_whatsapp(row["whatsapp"])
    row["updated_at"] = now
    if row.get("whatsapp") is not None:  # keep the number being replaced: erasure reaches it too
        db.execute(
            "INSERT INTO customer_numbers (customer_id, whatsapp, until) SELECT id, whatsapp, ? FROM customers "
            "WHERE id = ? AND whatsapp != '' AND whatsapp != ?",
            [now, customer_id, row["whatsapp"]],
        )
    cur = db.execute(
        f"UPDATE customers SET {', '.join(f'{k} = ?' for k in row)} WHERE id = ?",
        [*row.values(), customer_id],
    )
    return cur.rowcount == 1


def record_consent(
    db: sqlite_utils.Database, customer_id: str, purpose: str, granted: bool, *, now: float,
    method: str = "staff-tablet", wording: str = "", language: str = "",
) -> None:
    """One consent row; `language` is the language of `wording` as shown ("" if not one of the store's texts)."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose: unknown purpose {purpose!r}, expected one of {', '.join(PURPOSES)}")
    db.table("consents").insert({
        "customer_id": customer_id, "purpose": purpose, "granted": int(granted), "at": now,
        "method": method, "wording": wording, "language": language,
    })


def has_consent(db: sqlite_utils.Database | sqlite3.Connection, customer_id: str, purpose: str) -> bool:
    row = db.execute(
        "SELECT granted FROM consents WHERE customer_id = ? AND purpose = ? ORDER BY at DESC, id DESC LIMIT 1",
        [customer_id, purpose],
    ).fetchone()
    return bool(row and row[0])


def link_identity(db: sqlite_utils.Database, ident: Identity) -> None:
    db.table("identities").insert({
        "customer_id": ident.customer_id, "kind": ident.kind, "value": ident.value, "k": ident.k, "epoch": ident.epoch,
        "carrier": ident.carrier, "adverts_per_s": ident.adverts_per_s,
    })


def recognisable_identities(db: sqlite_utils.Database) -> list[Identity]:
    """Identities of customers whose latest recognition consent is a grant."""
    rows = db.execute(
        """
        SELECT i.customer_id, i.kind, i.value, i.k, i.epoch, i.carrier, i.adverts_per_s FROM identities i
        WHERE (SELECT c.granted FROM consents c WHERE c.customer_id = i.customer_id AND c.purpose = 'recognition'
               ORDER BY c.at DESC, c.id DESC LIMIT 1) = 1
        """
    ).fetchall()
    return [Identity(*r) for r in rows]


def customer_card(db: sqlite_utils.Database, customer_id: str) -> dict | None:
    """What staff see when a customer walks in: preferences, last purchases, open follow-ups, pickups.

    Built from index look-ups only (every table here is indexed on `customer_id`), so it stays
    fast with 100,000 customers; it is computed at emit time and travels inside the alert.
    """
    row = db.execute(
        "SELECT id, name, language, sizes, brands, colours, notes FROM customers WHERE id = ?", [customer_id]
    ).fetchone()
    if row is None:
        return None
    purchases = []
    for sid, ts, amount, currency in db.execute(
        "SELECT id, ts, amount_cents, currency FROM sales WHERE customer_id = ? ORDER BY ts DESC LIMIT ?",
        [customer_id, CARD_PURCHASES],
    ).fetchall():
        gtins = [r[0] for r in db.execute("SELECT gtin FROM sale_items WHERE sale_id = ? ORDER BY id", [sid])]
        purchases.append(
            {"sale_id": sid, "ts": ts, "amount_cents": amount, "currency": currency, "gtins": gtins}
        )
    followups = [
        {"id": r[0], "title": r[1], "due_at": r[2]} for r in db.execute(
            "SELECT id, title, due_at FROM tasks WHERE customer_id = ? AND done_at IS NULL "
            "ORDER BY due_at LIMIT 5",
            [customer_id],
        )
    ]
    pickups = [
        {"id": r[0], "location": r[1], "items": json.loads(r[2] or "[]")} for r in db.execute(
            "SELECT id, location, items FROM orders WHERE customer_id = ? AND status = 'ready' ORDER BY id",
            [customer_id],
        )
    ]
    return {
        "id": row[0], "name": row[1], "language": row[2],
        "sizes": json.loads(row[3] or "{}"), "brands": json.loads(row[4] or "[]"),
        "colours": json.loads(row[5] or "[]"), "notes": row[6],
        "last_purchases": purchases, "open_followups": followups, "pickup_orders": pickups,
    }


def customer_record(db: sqlite_utils.Database, customer_id: str) -> dict | None:
    """The full profile for the staff app: the card plus history (visits, tried items, wishlist, notes)."""
    card = customer_card(db, customer_id)
    if card is None:
        return None
    row = db.execute("SELECT whatsapp, created_at FROM customers WHERE id = ?", [customer_id]).fetchone()

    def rows(sql: str) -> list[dict]:
        cur = db.execute(sql, [customer_id])
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    card.update({
        "whatsapp": row[0], "created_at": row[1],
        "consent": {p: has_consent(db, customer_id, p) for p in PURPOSES},
        "visits": rows("SELECT entered_at, left_at, dwell_s FROM visits WHERE customer_id = ? "
                       "ORDER BY entered_at DESC LIMIT 20"),
        "tried_items": rows("SELECT epc, gtin, at FROM tried_items WHERE customer_id = ? "
                            "ORDER BY at DESC LIMIT 50"),
        "wishlist": rows("SELECT id, gtin, description, added_at FROM wishlist WHERE customer_id = ? "
                         "ORDER BY added_at"),
        "staff_notes": rows("SELECT n.at, n.text, s.username AS staff FROM notes n LEFT JOIN staff s "
                            "ON s.id = n.staff_id WHERE n.customer_id = ? ORDER BY n.at DESC LIMIT 50"),
        "purchases": rows("SELECT id AS sale_id, ts, amount_cents, currency FROM sales WHERE customer_id = ? "
                          "ORDER BY ts DESC LIMIT 50"),
    })
    return card
