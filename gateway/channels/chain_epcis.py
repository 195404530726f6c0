"""The store's EPCIS events for HQ (docs/chain.md, "EPCIS capture").

Exactly the ``ObjectEvent``s the store's own ``/epcis/events`` export makes (gateway.storage.epcis):
EPCs, bizStep, disposition, readPoint, bizLocation and time, never the raw RFID windows and never a
customer. `epcis_messages` is pure; `EpcisFeed` reads the observation log (`rfid_log`) after its cursor
and is published by `ChainPublisher` on the same connection as the event log.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

import sqlite_utils

from gateway.channels.chain_cursor import Cursor, Generation
from gateway.channels.chain_sales import _message
from gateway.storage.epcis import LogRow, epcis_events

log = logging.getLogger("instore.chain")

EPCIS_CURSOR = "epcis"  # chain_cursor row: the last rfid_log id sent
KIND = "epcis"
BATCH = 500  # rfid_log rows read per round (a round of the item engine writes tens)


def epcis_messages(store_id: str, generation: str, rows: list[LogRow],
                   timezone: str) -> tuple[list[tuple[str, str, bytes]], int]:
    """(subject, message id, payload) of each ObjectEvent the rows make, as the store exports it, and
    how many EPCs had no pure-identity URI (not sent). The message id carries the event's id
    (a uuid of the store and its first log row), so a repeat is recognised."""
    doc, skipped = epcis_events(rows, store=store_id, timezone=timezone, created=rows[-1].t if rows else 0.0)
    out = []
    for event in doc["epcisBody"]["eventList"]:
        ts = datetime.fromisoformat(event["eventTime"]).timestamp()
        out.append(_message(store_id, generation, KIND, event["eventID"].removeprefix("urn:uuid:"),
                            {"ts": ts, "customer_id": None, "data": event}))
    return out, skipped


def whole_times(rows: list[LogRow], full: bool) -> list[LogRow]:
    """The rows of a read, without the last time's when the read was `full` (more of that time may follow
    past the limit): the decisions of one time and place make one event, never split over two rounds."""
    if not full or rows[0].t == rows[-1].t:
        return rows
    return [r for r in rows if r.t != rows[-1].t]


class EpcisFeed:
    """The observation log after its cursor (a row of `chain_cursor`), as EPCIS chain messages."""

    def __init__(self, store_id: str, db: sqlite_utils.Database, lock: threading.RLock, timezone: str):
        self.store_id, self.db, self.lock, self.timezone = store_id, db, lock, timezone
        self.cursor = Cursor(db, lock, EPCIS_CURSOR)
        self.generation = Generation(db, lock)
        self.skipped = 0  # EPCs without a pure-identity URI (neither SGTIN nor SSCC), not sent
        with lock:  # the database as opened (`restored`)
            self.opened_at = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM rfid_log").fetchone()[0])

    def restored(self) -> None:
        """The database is a restored backup: what it held was sent before the disk was lost."""
        self.cursor.set(max(self.cursor.get(), self.opened_at))

    def pending(self) -> tuple[int, list[tuple[str, str, bytes]]]:
        """(the last log row id read, the messages its rows make) of the next round; (0, []) when none wait."""
        with self.lock:
            rows = [LogRow(*r) for r in self.db.execute(
                "SELECT id, t, kind, epc, place, place_kind FROM rfid_log WHERE id > ? ORDER BY id LIMIT ?",
                [self.cursor.get(), BATCH])]
        if not rows:
            return 0, []
        rows = whole_times(rows, len(rows) == BATCH)
        messages, skipped = epcis_messages(self.store_id, self.generation.get(), rows, self.timezone)
        if skipped:
            self.skipped += skipped
            log.info("chain epcis: %d observations without a pure-identity EPC not sent", skipped)
        return max(r.id for r in rows), messages

    async def publish_pending(self, js, timeout_s: float) -> int:  # noqa: ANN001 (nats.js.JetStreamContext)
        """Publish what waits; the cursor moves after JetStream's ack of a round's last message (a crash
        before it sends the round again under the same message ids, which JetStream and HQ drop)."""
        done = 0
        while True:
            last, messages = self.pending()
            if not last:
                return done
            for subject, msg_id, payload in messages:
                await js.publish(subject, payload, timeout=timeout_s, headers={"Nats-Msg-Id": msg_id})
            self.cursor.set(last)
            done += len(messages)
