"""Where a store's chain feeds stand: the database's generation and each feed's cursor, in the gateway database.

The event-log publisher (gateway.channels.chain_publish) and the sales and EPCIS feeds share them."""

from __future__ import annotations

import secrets
import threading

import sqlite_utils

from gateway.storage.db import GENERATION_BYTES


class Generation:
    """The gateway database's generation (made by its migration; renewed when found restored)."""

    def __init__(self, db: sqlite_utils.Database, lock: threading.RLock):
        self.db, self.lock = db, lock

    def get(self) -> str:
        with self.lock:
            return str(self.db.execute("SELECT generation FROM chain_generation WHERE id = 1").fetchone()[0])

    def renew(self) -> str:
        new = secrets.token_hex(GENERATION_BYTES)
        with self.lock:
            self.db.execute("UPDATE chain_generation SET generation = ? WHERE id = 1", [new])
        return new


class Cursor:
    """The last event id acknowledged by JetStream, persisted in the gateway database."""

    def __init__(self, db: sqlite_utils.Database, lock: threading.RLock, stream: str):
        self.db, self.lock, self.stream = db, lock, stream

    def get(self) -> int:
        with self.lock:
            row = self.db.execute("SELECT last_id FROM chain_cursor WHERE stream = ?", [self.stream]).fetchone()
        return int(row[0]) if row else 0

    def set(self, last_id: int) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO chain_cursor (stream, last_id) VALUES (?, ?) "
                "ON CONFLICT(stream) DO UPDATE SET last_id = excluded.last_id", [self.stream, last_id])
