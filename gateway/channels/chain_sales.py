"""Sales and hourly footfall for HQ (docs/chain.md, "What leaves a store").

A sale leaves as the time, amount and currency, with the customer's id only while they consent to
recognition (the consent that covers HQ's record of them); never the basket. Footfall leaves as one
message per closed hour: visitors in (estimated from the door counter's crossings by
gateway.engines.footfall) and out (counted), anonymous. `sale_message` and `footfall_message`
are pure; `SalesFeed` reads them from the gateway's database after its cursors and is published
by `ChainPublisher` on the same connection as the event log.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import sqlite_utils

from firmware_config.nats import subject_prefix
from gateway.channels.chain_cursor import Cursor, Generation
from gateway.storage import door_counts
from gateway.storage.customers import has_consent

SALES_CURSOR = "sales"  # chain_cursor rows: the last sale id and the last footfall hour (epoch hour) sent
FOOTFALL_CURSOR = "footfall"
SHARING_PURPOSE = "recognition"  # the consent under which a customer's id travels to HQ (docs/chain.md)
# A door node buffers its crossings while the broker is away, so an hour is sent this long after it
# ends: later crossings of it stay in the store's own figures only.
FOOTFALL_SETTLE_S = 900.0
BATCH = 200  # sales or footfall hours read per round


def _message(store_id: str, generation: str, kind: str, key: str, body: dict) -> tuple[str, str, bytes]:
    payload = {"store": store_id, "generation": generation, "kind": kind, **body}
    return (f"{subject_prefix(store_id)}.events.{kind}", f"{store_id}:{generation}:{kind}:{key}",
            json.dumps(payload, separators=(",", ":")).encode())


def sale_message(store_id: str, generation: str, sale_id: int, ts: float, amount_cents: int, currency: str,
                 customer_id: str | None) -> tuple[str, str, bytes]:
    """(subject, message id, payload) of one sale; `customer_id` only if the caller found them consenting."""
    return _message(store_id, generation, "sale", str(sale_id), {
        "ts": ts, "customer_id": customer_id, "data": {"amount_cents": amount_cents, "currency": currency}})


def footfall_message(store_id: str, generation: str, hour: int, visitors_in: float,
                     visitors_out: float) -> tuple[str, str, bytes]:
    """(subject, message id, payload) of one closed hour (`hour`: epoch hours) of the door counter."""
    return _message(store_id, generation, "footfall", str(hour), {
        "ts": hour * 3600.0, "customer_id": None,
        "data": {"hour": hour * 3600.0, "in": round(visitors_in, 2), "out": round(visitors_out, 2)}})


def last_closed(now: float) -> int:
    """The last hour (epoch hours) that ended FOOTFALL_SETTLE_S or more before `now`."""
    return int((now - FOOTFALL_SETTLE_S) // 3600) - 1


def closed_hours(crossing_hours: list[int], after: int, now: float) -> list[int]:
    """The hours with crossings past the cursor `after` that ended FOOTFALL_SETTLE_S before `now`."""
    return sorted(h for h in set(crossing_hours) if after < h <= last_closed(now))


class SalesFeed:
    """Sales and closed footfall hours after their cursors (rows of `chain_cursor`), as chain messages."""

    def __init__(self, store_id: str, db: sqlite_utils.Database, lock: threading.RLock,
                 clock: Callable[[], float]):
        self.store_id, self.db, self.lock, self.clock = store_id, db, lock, clock
        self.sales = Cursor(db, lock, SALES_CURSOR)
        self.footfall = Cursor(db, lock, FOOTFALL_CURSOR)
        self.generation = Generation(db, lock)
        self.examined = 0  # the last closed hour found without crossings to send: the table is not read again
        with lock:  # the database as opened (`restored`)
            self.opened_at_sale = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM sales").fetchone()[0])

    def restored(self) -> None:
        """The database is a restored backup (`ChainPublisher._check_restored`): every sale it held was sent
        before the disk was lost, so the cursor moves past them (under a new generation they would count twice)."""
        self.sales.set(max(self.sales.get(), self.opened_at_sale))

    def pending_sales(self) -> list[tuple[int, tuple[str, str, bytes]]]:
        """(sale id, message) of the next sales after the cursor."""
        with self.lock:
            rows = self.db.execute("SELECT id, ts, amount_cents, currency, customer_id FROM sales WHERE id > ? "
                                   "ORDER BY id LIMIT ?", [self.sales.get(), BATCH]).fetchall()
            shared = {r[4] for r in rows if r[4] is not None and has_consent(self.db, r[4], SHARING_PURPOSE)}
        gen = self.generation.get()
        return [(sid, sale_message(self.store_id, gen, sid, ts, cents, cur, cid if cid in shared else None))
                for sid, ts, cents, cur, cid in rows]

    def pending_footfall(self) -> list[tuple[int, tuple[str, str, bytes]]]:
        """(hour, message) of the next closed hours with door crossings after the cursor (read once an hour
        closes, not on every poll; at most BATCH hours a round, so a long history never holds the lock long)."""
        after, now = self.footfall.get(), self.clock()
        last = last_closed(now)
        if last <= max(after, self.examined):
            return []
        with self.lock:
            found = [r[0] for r in self.db.execute(
                "SELECT DISTINCT CAST(ts / 3600 AS INTEGER) FROM door_crossings WHERE ts >= ? AND ts < ?",
                [(after + 1) * 3600.0, (last + 1) * 3600.0]).fetchall()]
            hours = closed_hours(found, after, now)[:BATCH]
            figures = [door_counts.visitors(self.db, [h * 3600.0]) for h in hours]
        if not hours:
            self.examined = last
        gen = self.generation.get()
        return [(h, footfall_message(self.store_id, gen, h, f.visitors_in[0], (f.visitors_out or [0.0])[0]))
                for h, f in zip(hours, figures, strict=True)]

    async def publish_pending(self, js, timeout_s: float) -> int:  # noqa: ANN001 (nats.js.JetStreamContext)
        """Publish what waits; each cursor moves after JetStream's ack of its message."""
        done = 0
        for cursor, pending in ((self.sales, self.pending_sales), (self.footfall, self.pending_footfall)):
            while batch := pending():
                for key, (subject, msg_id, payload) in batch:
                    await js.publish(subject, payload, timeout=timeout_s, headers={"Nats-Msg-Id": msg_id})
                    cursor.set(key)
                    done += 1
        return done
