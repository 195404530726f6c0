"""Consent, withdrawal, erasure, export and retention: the customer's rights as code.

Consent is data (`gateway.storage.customers.record_consent`); here a withdrawal takes effect at once: parts
acting on a purpose (the WhatsApp outbox) register a callback and are told synchronously. Erasure
deletes from every table with a `customer_id` column, so later tables are covered unlisted;
`find_traces` scans every text column for the customer's id, numbers and keys to verify it.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import sqlite_utils

from gateway.storage.customers import has_consent, record_consent
from gateway.storage.db import PURPOSES

RETENTION_DAYS = (
    30  # identified presence (visits, "entered"/"left" rows): long enough for a month's follow-ups
)
PRESENCE_KINDS = ("entered", "left", "zone_changed")  # staff events that say where an identified person was
# Kept after erasure with the link to the person removed: the till's takings must still add up.
ANONYMISE_ON_ERASE = ("sales", "orders")

# The wording shown on the enrolment page, per purpose and language. The page shows exactly
# this text and posts it back; the consent row records it verbatim with its language. Change the
# text, and the version key changes with it, so old rows keep saying what was actually agreed to.
WORDING: dict[str, dict[str, str]] = {
    "recognition": {
        "en": "Recognise me when I visit: the store app sends a rotating Bluetooth signal from my phone. "
        "The store's sensors link it to my profile so staff know I am here and what sizes and brands "
        "I like. The store records when I came, how long I stayed and which areas I visited, and "
        "deletes these visit records after 30 days. I can withdraw at any time; recognition stops at once.",
        "de": "Mich bei meinen Besuchen erkennen: Die Store-App sendet von meinem Smartphone ein wechselndes "
        "Bluetooth-Signal. Die Sensoren des Geschäfts ordnen es meinem Profil zu, damit das Personal weiß, dass "
        "ich da bin und welche Größen und Marken ich mag. Das Geschäft speichert, wann ich kam, wie lange ich "
        "blieb und welche Bereiche ich besucht habe, und löscht diese Besuchsdaten nach 30 Tagen. Ich kann "
        "jederzeit widerrufen; die Erkennung endet sofort.",
    },
    "whatsapp_service": {
        "en": "Send me service messages on WhatsApp: pickup orders ready, appointments and replies to my "
        "questions. I can withdraw at any time; queued messages are cancelled at once.",
        "de": "Mir Servicenachrichten per WhatsApp senden: abholbereite Bestellungen, Termine und Antworten auf "
        "meine Fragen. Ich kann jederzeit widerrufen; wartende Nachrichten werden sofort gestrichen.",
    },
    "whatsapp_marketing": {
        "en": "Send me news and offers on WhatsApp (at most one message a week). I can withdraw at any time; "
        "queued messages are cancelled at once.",
        "de": "Mir Neuigkeiten und Angebote per WhatsApp senden (höchstens eine Nachricht pro Woche). Ich kann "
        "jederzeit widerrufen; wartende Nachrichten werden sofort gestrichen.",
    },
}


def wording_for(purpose: str, language: str = "en") -> str:
    texts = WORDING[purpose]
    return texts.get(language, texts["en"])


def wording_language(purpose: str, wording: str) -> str:
    """Which language's wording this is ("" for words of staff's own): the record keeps what was shown."""
    return next((lang for lang, text in WORDING.get(purpose, {}).items() if text == wording), "")


@dataclass
class ConsentHooks:
    """Callbacks run synchronously when consent is withdrawn or a customer is erased.

    The WhatsApp work registers its `cancel_for_customer(customer_id)` for the WhatsApp
    purposes and for erasure; each `register_*` returns its cancel function.
    """

    on_withdraw: dict[str, list[Callable[[str], None]]] = field(
        default_factory=lambda: {p: [] for p in PURPOSES}
    )
    on_erase: list[Callable[[str], None]] = field(default_factory=list)

    def register_withdraw(self, purpose: str, fn: Callable[[str], None]) -> Callable[[], None]:
        if purpose not in PURPOSES:
            raise ValueError(f"purpose: unknown purpose {purpose!r}")
        self.on_withdraw[purpose].append(fn)
        return lambda: self.on_withdraw[purpose].remove(fn)

    def register_erase(self, fn: Callable[[str], None]) -> Callable[[], None]:
        self.on_erase.append(fn)
        return lambda: self.on_erase.remove(fn)


class Forgetter(Protocol):
    """What a withdrawal needs from the gateway: `GatewayCore` has exactly this method."""

    def forget_customer(self, customer_id: str) -> None: ...  # pragma: no cover


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[None]:
    """A savepoint: atomic on an autocommit connection, and nests inside an outer transaction."""
    db.execute("SAVEPOINT clienteling")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK TO clienteling")
        db.execute("RELEASE clienteling")
        raise
    db.execute("RELEASE clienteling")


def set_consent(
    db: sqlite_utils.Database,
    core: Forgetter,
    hooks: ConsentHooks,
    customer_id: str,
    purpose: str,
    granted: bool,
    *,
    now: float,
    method: str,
    wording: str,
) -> None:
    """Record a grant or withdrawal; a withdrawal stops the purpose everywhere before returning."""
    record_consent(
        db, customer_id, purpose, granted, now=now, method=method, wording=wording,
        language=wording_language(purpose, wording),
    )
    if granted:
        return
    if purpose == "recognition":
        core.forget_customer(customer_id)
        close_open_visits(db, customer_id, now)
    for fn in list(hooks.on_withdraw[purpose]):
        fn(customer_id)


def close_open_visits(db: sqlite_utils.Database, customer_id: str, now: float) -> None:
    """No "left" event will come for someone we stopped tracking: end their visit now."""
    db.execute(
        "UPDATE visits SET left_at = ?, dwell_s = ? - entered_at WHERE customer_id = ? AND left_at IS NULL",
        [now, now, customer_id],
    )


def tables_with_customer_id(db: sqlite_utils.Database) -> list[str]:
    return [t for t in db.table_names() if "customer_id" in db[t].columns_dict]


def personal_columns(db: sqlite_utils.Database) -> list[tuple[str, str]]:
    """Every (table, column) that could hold a customer's id, number or keys: all text columns.

    Found by looking at the schema, not from a list, so a table another module adds later
    is included without anyone remembering to add it.
    """
    out = []
    for table in db.table_names():
        for col in db[table].columns:
            if col.type.upper() in ("TEXT", "") or "CHAR" in col.type.upper():
                out.append((table, col.name))
    return out


def customer_numbers(db: sqlite_utils.Database, customer_id: str) -> list[str]:
    """Every WhatsApp number the customer ever gave (E.164 with +): the current one first."""
    current = db.execute("SELECT whatsapp FROM customers WHERE id = ?", [customer_id]).fetchone()
    numbers = [current[0]] if current and current[0] else []
    for (number,) in db.execute(
        "SELECT whatsapp FROM customer_numbers WHERE customer_id = ? ORDER BY until DESC", [customer_id]
    ):
        if number and number not in numbers:
            numbers.append(number)
    return numbers


def customer_needles(db: sqlite_utils.Database, customer_id: str) -> list[str]:
    """The strings that identify a customer: id, every WhatsApp number (with and without +), beacon values."""
    needles = [customer_id]
    for number in customer_numbers(db, customer_id):
        needles += [number, number.lstrip("+")]
    for (value,) in db.execute("SELECT value FROM identities WHERE customer_id = ?", [customer_id]):
        needles.append(value)
    return needles


def _whole(needle: str) -> re.Pattern[str]:
    """The needle not inside a longer word: customer "c1" is no trace in "c12" or in a random hex token."""
    return re.compile(rf"(?<![0-9a-z]){re.escape(needle.lower())}(?![0-9a-z])")


def find_traces(db: sqlite_utils.Database, needles: list[str]) -> list[tuple[str, str, str]]:
    """(table, column, needle) for every text column anywhere that holds one of the needles as a whole word."""
    found = []
    for table, col in personal_columns(db):
        for needle in needles:
            whole = _whole(needle)
            text = f'lower(CAST("{col}" AS TEXT))'
            rows = db.execute(f'SELECT {text} FROM "{table}" WHERE instr({text}, lower(?)) > 0', [needle])
            if any(whole.search(text) for (text,) in rows):
                found.append((table, col, needle))
    return found


def erase_customer(db: sqlite_utils.Database, core: Forgetter, hooks: ConsentHooks, customer_id: str) -> bool:
    """Remove the customer and every row referencing them; False if there is no such customer.

    Order matters: first stop recognising them and cancel anything queued (so nothing new
    about them is written while we delete), then delete in one transaction.
    """
    if db.execute("SELECT 1 FROM customers WHERE id = ?", [customer_id]).fetchone() is None:
        return False
    core.forget_customer(customer_id)
    for purpose in PURPOSES:
        for fn in list(hooks.on_withdraw[purpose]):
            fn(customer_id)
    for fn in list(hooks.on_erase):
        fn(customer_id)
    with transaction(db):
        max_event = db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
        for table in tables_with_customer_id(db):
            if table in ANONYMISE_ON_ERASE:
                db.execute(f'UPDATE "{table}" SET customer_id = NULL WHERE customer_id = ?', [customer_id])
            elif table != "customers":
                db.execute(f'DELETE FROM "{table}" WHERE customer_id = ?', [customer_id])
        db.execute("DELETE FROM customers WHERE id = ?", [customer_id])
        if db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0] < max_event:
            # the stream's ids must never be reused (a tablet would skip the new event as seen)
            db.execute(
                "INSERT INTO events (id, ts, kind, customer_id, data) VALUES (?, 0, 'erased', NULL, '{}')",
                [max_event],
            )
    if not db.conn.in_transaction:  # the old page versions in the WAL go too (secure_delete zeroed the rest)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return True


def export_customer(db: sqlite_utils.Database, customer_id: str) -> dict | None:
    """Everything stored about the customer, as JSON-ready data (the right of access)."""
    cur = db.execute("SELECT * FROM customers WHERE id = ?", [customer_id])
    row = cur.fetchone()
    if row is None:
        return None
    cols = [c[0] for c in cur.description]
    customer = dict(zip(cols, row, strict=True))
    for k in ("sizes", "brands", "colours"):
        customer[k] = json.loads(customer[k] or "null")
    out: dict = {"customer": customer, "consent_now": {p: has_consent(db, customer_id, p) for p in PURPOSES}}
    for table in tables_with_customer_id(db):
        cur = db.execute(f'SELECT * FROM "{table}" WHERE customer_id = ? ORDER BY rowid', [customer_id])
        cols = [c[0] for c in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        for r in rows:
            if table == "events":
                r["data"] = json.loads(r["data"])
        out[table] = rows
    # tables keyed by a WhatsApp number rather than the customer id (the outbox, its statuses, ...)
    numbers = [v for n in customer_numbers(db, customer_id) for v in (n, n.lstrip("+"))]
    marks = ",".join("?" * len(numbers))
    by_table: dict[str, list[str]] = {}
    for table, col in personal_columns(db):
        by_table.setdefault(table, []).append(col)
    for table, cols in by_table.items():
        if not numbers or table in ("customers", "customer_numbers"):
            continue
        where = " OR ".join(f'"{c}" IN ({marks})' for c in cols)
        cur = db.execute(f'SELECT * FROM "{table}" WHERE {where} ORDER BY rowid', numbers * len(cols))
        names = [c[0] for c in cur.description]
        seen = {json.dumps(r, sort_keys=True, default=str) for r in out.get(table, [])}
        extra = [r for r in (dict(zip(names, row, strict=True)) for row in cur.fetchall())
                 if json.dumps(r, sort_keys=True, default=str) not in seen]
        if extra or table in out:
            out[table] = out.get(table, []) + extra
    sale_ids = [s["id"] for s in out.get("sales", [])]
    out["sale_items"] = [
        {"sale_id": r[0], "epc": r[1], "gtin": r[2]}
        for sid in sale_ids
        for r in db.execute("SELECT sale_id, epc, gtin FROM sale_items WHERE sale_id = ?", [sid])
    ]
    return out


def purge_identified_presence(
    db: sqlite_utils.Database, now: float, retention_s: float = RETENTION_DAYS * 86400.0
) -> int:
    """Drop identified presence older than the retention; keep anonymous footfall. Returns rows touched.

    Old presence rows in the event log are anonymised rather than deleted, so the stream's ids
    never go backwards and the dashboard can still count alerts by hour.
    """
    cutoff = now - retention_s
    n = 0
    with transaction(db):
        n += db.execute("DELETE FROM visits WHERE entered_at < ?", [cutoff]).rowcount
        marks = ",".join("?" * len(PRESENCE_KINDS))
        n += db.execute(
            f"UPDATE events SET customer_id = NULL, data = '{{\"anonymised\": true}}' "
            f"WHERE ts < ? AND customer_id IS NOT NULL AND kind IN ({marks})",
            [cutoff, *PRESENCE_KINDS],
        ).rowcount
        n += db.execute(
            "UPDATE alert_answers SET customer_id = NULL WHERE alert_ts < ? AND customer_id IS NOT NULL",
            [cutoff],
        ).rowcount
    return n


def sync_visits(db: sqlite_utils.Database) -> int:
    """Fold new "entered"/"left" events into the visits table (incremental; returns events read).

    Visits are derived from the event log rather than written by the ingest core, so the
    core stays one append per event and a rebuilt visits table is always consistent with it.
    """
    row = db.execute("SELECT value FROM maintenance WHERE key = 'visits_event_id'").fetchone()
    last = int(row[0]) if row else 0
    rows = db.execute(
        "SELECT id, ts, kind, customer_id, data FROM events WHERE id > ? AND kind IN ('entered', 'left') "
        "AND customer_id IS NOT NULL ORDER BY id",
        [last],
    ).fetchall()
    with transaction(db):
        for eid, ts, kind, cid, data in rows:
            if kind == "entered":
                close_open_visits(db, cid, ts)
                db.execute(
                    "INSERT INTO visits (customer_id, entered_at, event_id) VALUES (?, ?, ?)", [cid, ts, eid]
                )
            else:
                dwell = json.loads(data).get("dwell_s")
                db.execute(
                    "UPDATE visits SET left_at = ?, dwell_s = COALESCE(?, ? - entered_at) "
                    "WHERE customer_id = ? AND left_at IS NULL",
                    [ts, dwell, ts, cid],
                )
        db.execute(
            "INSERT OR REPLACE INTO maintenance (key, value) VALUES ('visits_event_id', ?)",
            [rows[-1][0] if rows else last],
        )
    return len(rows)
