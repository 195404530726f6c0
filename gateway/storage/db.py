"""The gateway's SQLite database: customers, consent, beacon identities, the event log.

One file per store (WAL mode, so the tablet API reads while ingest writes). Schema changes
are numbered migrations applied at open, so an installed gateway upgrades in place.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

PURPOSES = ("recognition", "whatsapp_service", "whatsapp_marketing")
GENERATION_BYTES = 6  # a database generation: 48 random bits, never the same twice for one store
MAX_ROW_ID = 2**63 - 1  # SQLite's largest integer: a larger id matches no row and overflows the driver


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The rowid an INSERT just made (typed: sqlite3 declares it optional for other statements)."""
    if cur.lastrowid is None:
        raise RuntimeError("no row was inserted")
    return cur.lastrowid


def _m1(db: sqlite_utils.Database) -> None:
    db.table("customers").create(
        {"id": str, "name": str, "whatsapp": str, "language": str, "sizes": str, "brands": str,
         "notes": str, "created_at": float},
        pk="id",
    )
    db.table("consents").create(
        {"id": int, "customer_id": str, "purpose": str, "granted": int, "at": float, "method": str, "wording": str},
        pk="id", foreign_keys=[("customer_id", "customers", "id")],
    )
    db.table("consents").create_index(["customer_id", "purpose", "at"])
    db.table("identities").create(
        {"id": int, "customer_id": str, "kind": str, "value": str, "k": int, "epoch": int},
        pk="id", foreign_keys=[("customer_id", "customers", "id")],
    )
    db.table("identities").create_index(["kind", "value"], unique=True)
    db.table("events").create(
        {"id": int, "ts": float, "kind": str, "customer_id": str, "data": str},
        pk="id",
    )
    db.table("events").create_index(["customer_id"])


def _m2(db: sqlite_utils.Database) -> None:
    """Clienteling: the customer record in full, staff, sessions, claims, tasks, sales, orders, KPIs.

    Every table that can hold a customer's id has a `customer_id` column with an index, so a
    card is a handful of index look-ups even with 100,000 customers, and erasure can find
    every row (see `gateway.storage.consent.PERSONAL_COLUMNS`).
    """
    customers = db.table("customers")
    customers.add_column("colours", str)  # JSON list
    customers.add_column("updated_at", float)
    db.table("identities").create_index(["customer_id"])
    db.table("staff").create(
        {"id": int, "username": str, "name": str, "pw_hash": str, "role": str, "active": int,
         "created_at": float},
        pk="id",
    )
    db.table("staff").create_index(["username"], unique=True)
    db.table("sessions").create(
        {"token_hash": str, "staff_id": int, "created_at": float, "expires_at": float},
        pk="token_hash", foreign_keys=[("staff_id", "staff", "id")],
    )
    db.table("sessions").create_index(["expires_at"])
    db.table("visits").create(
        {"id": int, "customer_id": str, "entered_at": float, "left_at": float, "dwell_s": float,
         "event_id": int},
        pk="id",
    )
    db.table("visits").create_index(["customer_id", "entered_at"])
    db.table("visits").create_index(["entered_at"])
    db.table("fitting_sessions").create(  # filled by the RFID work: one customer in one fitting room
        {"id": int, "customer_id": str, "zone": str, "opened_at": float, "closed_at": float, "sale_id": int},
        pk="id",
    )
    db.table("fitting_sessions").create_index(["customer_id"])
    db.table("tried_items").create(
        {"id": int, "session_id": int, "customer_id": str, "epc": str, "gtin": str, "at": float},
        pk="id",
    )
    db.table("tried_items").create_index(["customer_id", "at"])
    db.table("tried_items").create_index(["session_id"])
    db.table("wishlist").create(
        {"id": int, "customer_id": str, "gtin": str, "description": str, "added_at": float}, pk="id",
    )
    db.table("wishlist").create_index(["customer_id"])
    db.table("sales").create(
        {"id": int, "ts": float, "customer_id": str, "amount_cents": int, "currency": str, "staff_id": int,
         "till": str, "order_id": int},
        pk="id",
    )
    db.table("sales").create_index(["customer_id", "ts"])
    db.table("sales").create_index(["ts"])
    db.table("sale_items").create({"id": int, "sale_id": int, "epc": str, "gtin": str}, pk="id",
                            foreign_keys=[("sale_id", "sales", "id")])
    db.table("sale_items").create_index(["sale_id"])
    db.table("orders").create(
        {"id": int, "customer_id": str, "status": str, "location": str, "items": str, "amount_cents": int,
         "created_at": float, "collected_at": float, "sale_id": int},
        pk="id",
    )
    db.table("orders").create_index(["customer_id", "status"])
    db.table("tasks").create(
        {"id": int, "kind": str, "customer_id": str, "title": str, "due_at": float, "created_at": float,
         "created_by": int, "done_at": float, "done_by": int},
        pk="id",
    )
    db.table("tasks").create_index(["customer_id", "done_at"])
    db.table("tasks").create_index(["due_at"])
    db.table("notes").create(
        {"id": int, "customer_id": str, "staff_id": int, "at": float, "text": str}, pk="id",
    )
    db.table("notes").create_index(["customer_id", "at"])
    db.table("claims").create(  # who is looking after a customer or a task right now: one at a time
        {"subject": str, "customer_id": str, "staff_id": int, "at": float}, pk="subject",
    )
    db.table("claims").create_index(["customer_id"])
    db.table("alert_answers").create(  # an "entered" alert is answered when a staff member claims the customer
        {"event_id": int, "customer_id": str, "staff_id": int, "alert_ts": float, "answered_at": float},
        pk="event_id",
    )
    db.table("alert_answers").create_index(["customer_id"])
    db.table("footfall").create(  # anonymous: per hour and node, never an identifier
        {"hour": int, "node": str, "adverts": int, "devices_max": int, "windows": int}, pk=("hour", "node"),
    )
    db.table("maintenance").create({"key": str, "value": float}, pk="key")


def _m3_rfid(db: sqlite_utils.Database) -> None:
    """RFID: products catalogue and the observation log (idempotent; defined in gateway.storage.products)."""
    from gateway.storage.products import migrate_rfid

    migrate_rfid(db)


def _m4_node_configs(db: sqlite_utils.Database) -> None:
    """The node configs last published, so versions survive gateway restarts and only grow."""
    db.execute("CREATE TABLE IF NOT EXISTS node_configs (node TEXT PRIMARY KEY, version INTEGER NOT NULL,"
               " body TEXT NOT NULL)")  # IF NOT EXISTS: gateways before this migration made it themselves


def _m5_identity_carrier(db: sqlite_utils.Database) -> None:
    """What carries an identity (the store app, a key fob) and how often it advertises: the
    presence engine weighs "not heard" by it. NULL for identities enrolled before: the default rate."""
    db.table("identities").add_column("carrier", str)
    db.table("identities").add_column("adverts_per_s", float)


def _m6_customer_numbers(db: sqlite_utils.Database) -> None:
    """A customer's previous WhatsApp numbers: erasure and export must reach every number they had."""
    db.table("customer_numbers").create(
        {"customer_id": str, "whatsapp": str, "until": float}, foreign_keys=[("customer_id", "customers", "id")]
    )
    db.table("customer_numbers").create_index(["customer_id"])


def _m7_screens(db: sqlite_utils.Database) -> None:
    """Fitting-room screens (gateway.web.screens): a device bound to one room, valid until revoked."""
    db.table("screens").create(
        {"id": int, "token_hash": str, "room": str, "created_at": float, "created_by": int, "revoked_at": float},
        pk="id",
    )
    db.table("screens").create_index(["token_hash"], unique=True)


def _m8_presence_state(db: sqlite_utils.Database) -> None:
    """Who is in the store, written as it changes, so a restart announces nobody again
    (gateway.storage.presence_store); and each identity's phone as learned over its visits (NULL: not yet)."""
    db.table("presence_state").create(
        {"customer_id": str, "zone": str, "entered_at": float, "zone_since": float, "alert_event": int},
        pk="customer_id",
    )
    db.table("identities").add_column("offset_db", float)
    db.table("identities").add_column("offset_var_db2", float)
    db.table("identities").add_column("offset_visits", int)


def _m9_consent_language(db: sqlite_utils.Database) -> None:
    """Which language's consent wording was shown ("de", "en"; "" for staff's own words)."""
    db.table("consents").add_column("language", str, not_null_default="")


def _m10_tasks(db: sqlite_utils.Database) -> None:
    """Tasks for the tablet's board: urgent ones ring; one may be assigned to a staff member (NULL: open)."""
    db.table("tasks").add_column("urgent", int, not_null_default=0)
    db.table("tasks").add_column("assigned_to", int)


def _m11_door_crossings(db: sqlite_utils.Database) -> None:
    """Every door crossing the sensors report, for footfall (gateway.storage.door_counts): anonymous, no person."""
    db.table("door_crossings").create(
        {"id": int, "ts": float, "node": str, "door": str, "direction": str, "confidence": float}, pk="id",
    )
    db.table("door_crossings").create_index(["ts", "direction"])  # covers the per-hour counts


def _m12_links(db: sqlite_utils.Database) -> None:
    """Short links in WhatsApp messages (gateway.storage.links): the target, its clicks, online orders through it."""
    db.table("links").create(
        {"token": str, "url": str, "customer_id": str, "ref": str, "created_at": float}, pk="token",
    )
    db.table("links").create_index(["customer_id"])
    db.table("links").create_index(["ref"])
    db.table("link_clicks").create({"token": str, "at": float})  # no address, no device: a count
    db.table("link_clicks").create_index(["token"])
    db.table("link_orders").create(  # the shop's order id, once; no person (the link's row says whose)
        {"id": int, "token": str, "order_ref": str, "ts": float, "amount_cents": int, "currency": str}, pk="id",
    )
    db.table("link_orders").create_index(["order_ref"], unique=True)
    db.table("link_orders").create_index(["token"])


def _m13_customers_whatsapp(db: sqlite_utils.Database) -> None:
    """Customers by WhatsApp number: every inbound message looks its sender up (IF NOT EXISTS: the
    WhatsApp channel made this index itself before it moved into the numbered migrations)."""
    db.execute("CREATE INDEX IF NOT EXISTS wa_customers_whatsapp ON customers(whatsapp)")


def _m14_chain_cursor(db: sqlite_utils.Database) -> None:
    """The last event id the store's JetStream acknowledged (gateway.channels.chain_publish): resume there."""
    db.execute("CREATE TABLE chain_cursor (stream TEXT PRIMARY KEY, last_id INTEGER NOT NULL)")


def _m15_room_requests(db: sqlite_utils.Database) -> None:
    """Requests from fitting-room screens until staff answer them (gateway.storage.room_requests)."""
    db.table("room_requests").create(
        {
            "id": int, "room": str, "kind": str, "gtin": str, "size": str, "colour": str, "created_at": float,
            "claimed_by": int, "claimed_at": float, "done_at": float,
        },
        pk="id", foreign_keys=[("claimed_by", "staff", "id")],
    )
    db.table("room_requests").create_index(["done_at", "room"])
    db.table("room_requests").create_index(["created_at"])


def _m16_door_sensor_kind(db: sqlite_utils.Database) -> None:
    """The kind of counter behind each crossing: footfall corrects a beam's misses unlike a 3-D counter's
    (gateway.engines.footfall); NULL for crossings stored before, read as a beam. The index covers the footfall
    estimate's read of inward crossings in time order (gateway.storage.door_counts)."""
    db.table("door_crossings").add_column("sensor", str)
    db.table("door_crossings").create_index(["direction", "ts", "door", "sensor"])


def _m17_chain_generation(db: sqlite_utils.Database) -> None:
    """A random id of this database, in the chain's message ids (gateway.channels.chain_publish): a database
    made anew (or found restored from an older backup, which then gets a new one) never reuses the
    message ids HQ has already seen."""
    db.execute("CREATE TABLE chain_generation (id INTEGER PRIMARY KEY CHECK (id = 1), generation TEXT NOT NULL)")
    db.execute("INSERT INTO chain_generation (id, generation) VALUES (1, ?)", [secrets.token_hex(GENERATION_BYTES)])


def _m18_chain_erasures(db: sqlite_utils.Database) -> None:
    """Customers erased in this store, until HQ's erasure of them comes back (gateway.channels.chain_customers).
    Not `customer_id`: erasing the customer must not delete the note that the erasure is to be sent."""
    db.execute("CREATE TABLE chain_erasures (seq INTEGER PRIMARY KEY AUTOINCREMENT, erased TEXT NOT NULL, "
               "at REAL NOT NULL)")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m1, _m2, _m3_rfid, _m4_node_configs, _m5_identity_carrier, _m6_customer_numbers, _m7_screens,
    _m8_presence_state, _m9_consent_language, _m10_tasks, _m11_door_crossings, _m12_links, _m13_customers_whatsapp,
    _m14_chain_cursor, _m15_room_requests, _m16_door_sensor_kind, _m17_chain_generation, _m18_chain_erasures,
]


def open_db(path: str | Path) -> sqlite_utils.Database:
    """Open (creating if needed) and migrate the gateway database; safe across threads with `LOCK`."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db = sqlite_utils.Database(conn)
    if str(path) != ":memory:":
        db.enable_wal()
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA secure_delete = ON")  # erased rows are overwritten, not left readable in free pages
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for i, migrate in enumerate(MIGRATIONS[version:], start=version + 1):
        with conn:
            migrate(db)
            db.execute(f"PRAGMA user_version = {i}")
    return db


class Locked:
    """A database with a lock: ingest runs on the MQTT thread, the API on the event loop."""

    def __init__(self, db: sqlite_utils.Database):
        self.db = db
        self.lock = threading.RLock()
