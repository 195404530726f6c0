"""Customers, their consent and their beacon identities (the CRM's core tables).

Consent is data: every grant or withdrawal is a row with when, how and the wording shown,
and the current state is the latest row per purpose. Recognition needs recognition consent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlite_utils

from gateway.db import PURPOSES


@dataclass(frozen=True, slots=True)
class Identity:
    customer_id: str
    kind: str  # "eid" (value = identity key hex) or "ibeacon" (value = ibeacon:<uuid>:<major>:<minor>)
    value: str
    k: int = 0
    epoch: int = 0


def add_customer(
    db: sqlite_utils.Database, customer_id: str, name: str, *, whatsapp: str = "", language: str = "en",
    sizes: dict | None = None, brands: list[str] | None = None, notes: str = "", now: float,
) -> None:
    db["customers"].insert({
        "id": customer_id, "name": name, "whatsapp": whatsapp, "language": language,
        "sizes": json.dumps(sizes or {}), "brands": json.dumps(brands or []), "notes": notes, "created_at": now,
    })


def record_consent(
    db: sqlite_utils.Database, customer_id: str, purpose: str, granted: bool, *, now: float,
    method: str = "staff-tablet", wording: str = "",
) -> None:
    if purpose not in PURPOSES:
        raise ValueError(f"purpose: unknown purpose {purpose!r}, expected one of {', '.join(PURPOSES)}")
    db["consents"].insert({
        "customer_id": customer_id, "purpose": purpose, "granted": int(granted), "at": now,
        "method": method, "wording": wording,
    })


def has_consent(db: sqlite_utils.Database, customer_id: str, purpose: str) -> bool:
    row = db.execute(
        "SELECT granted FROM consents WHERE customer_id = ? AND purpose = ? ORDER BY at DESC, id DESC LIMIT 1",
        [customer_id, purpose],
    ).fetchone()
    return bool(row and row[0])


def link_identity(db: sqlite_utils.Database, ident: Identity) -> None:
    db["identities"].insert({
        "customer_id": ident.customer_id, "kind": ident.kind, "value": ident.value, "k": ident.k, "epoch": ident.epoch,
    })


def recognisable_identities(db: sqlite_utils.Database) -> list[Identity]:
    """Identities of customers whose latest recognition consent is a grant."""
    rows = db.execute(
        """
        SELECT i.customer_id, i.kind, i.value, i.k, i.epoch FROM identities i
        WHERE (SELECT c.granted FROM consents c WHERE c.customer_id = i.customer_id AND c.purpose = 'recognition'
               ORDER BY c.at DESC, c.id DESC LIMIT 1) = 1
        """
    ).fetchall()
    return [Identity(*r) for r in rows]


def customer_card(db: sqlite_utils.Database, customer_id: str) -> dict | None:
    """What staff see about a customer: name and preferences."""
    try:
        row = db["customers"].get(customer_id)
    except sqlite_utils.db.NotFoundError:
        return None
    return {
        "id": row["id"], "name": row["name"], "language": row["language"],
        "sizes": json.loads(row["sizes"] or "{}"), "brands": json.loads(row["brands"] or "[]"), "notes": row["notes"],
    }
