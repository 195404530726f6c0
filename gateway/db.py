"""The gateway's SQLite database: customers, consent, beacon identities, the event log.

One file per store (WAL mode, so the tablet API reads while ingest writes). Schema changes
are numbered migrations applied at open, so an installed gateway upgrades in place.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

PURPOSES = ("recognition", "whatsapp_service", "whatsapp_marketing")


def _m1(db: sqlite_utils.Database) -> None:
    db["customers"].create(
        {"id": str, "name": str, "whatsapp": str, "language": str, "sizes": str, "brands": str,
         "notes": str, "created_at": float},
        pk="id",
    )
    db["consents"].create(
        {"id": int, "customer_id": str, "purpose": str, "granted": int, "at": float, "method": str, "wording": str},
        pk="id", foreign_keys=[("customer_id", "customers", "id")],
    )
    db["consents"].create_index(["customer_id", "purpose", "at"])
    db["identities"].create(
        {"id": int, "customer_id": str, "kind": str, "value": str, "k": int, "epoch": int},
        pk="id", foreign_keys=[("customer_id", "customers", "id")],
    )
    db["identities"].create_index(["kind", "value"], unique=True)
    db["events"].create(
        {"id": int, "ts": float, "kind": str, "customer_id": str, "data": str},
        pk="id",
    )
    db["events"].create_index(["customer_id"])


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_m1]


def open_db(path: str | Path) -> sqlite_utils.Database:
    """Open (creating if needed) and migrate the gateway database; safe across threads with `LOCK`."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db = sqlite_utils.Database(conn)
    if str(path) != ":memory:":
        db.enable_wal()
    db.execute("PRAGMA foreign_keys = ON")
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
