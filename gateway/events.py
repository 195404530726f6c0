"""The staff-facing event log, its live fan-out, and the one bus that publishes to both.

`StaffBus.publish` is the only way an event is made: checked against its kind's model
(`gateway.staff_events`), stamped with the injected clock, stored with an increasing id, counted
and fanned out. A client reconnecting with `Last-Event-ID` gets every later row replayed, so a
tablet off Wi-Fi for a minute misses nothing and sees nothing twice (docs/events.md).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlite_utils
from prometheus_client import Counter

from gateway import staff_events
from gateway.storage.db import inserted_id


@dataclass(frozen=True, slots=True)
class StaffEvent:
    id: int
    ts: float
    kind: str
    customer_id: str | None
    data: dict

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "ts": self.ts, "kind": self.kind, "customer_id": self.customer_id,
                           "data": self.data})


class EventLog:
    """Append-only event rows; thread-safe."""

    def __init__(self, db: sqlite_utils.Database, lock: threading.RLock):
        self.db, self.lock = db, lock

    def append(self, ts: float, kind: str, customer_id: str | None, data: dict) -> StaffEvent:
        with self.lock:
            cur = self.db.execute(
                "INSERT INTO events (ts, kind, customer_id, data) VALUES (?, ?, ?, ?)",
                [ts, kind, customer_id, json.dumps(data)],
            )
            return StaffEvent(inserted_id(cur), ts, kind, customer_id, data)

    def after(self, last_id: int, limit: int = 1000) -> list[StaffEvent]:
        with self.lock:
            rows = self.db.execute(
                "SELECT id, ts, kind, customer_id, data FROM events WHERE id > ? ORDER BY id LIMIT ?", [last_id, limit]
            ).fetchall()
        return [StaffEvent(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def last_id(self) -> int:
        with self.lock:
            return int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])


class Broadcaster:
    """Pushes new events to every connected live client (one asyncio queue each)."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[StaffEvent | None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self) -> tuple[asyncio.Queue[StaffEvent | None], Callable[[], None]]:
        q: asyncio.Queue[StaffEvent | None] = asyncio.Queue(maxsize=10_000)
        self._queues.add(q)
        return q, lambda: self._queues.discard(q)

    def publish(self, ev: StaffEvent) -> None:
        """Call from any thread."""
        if self.loop is None or self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self._fanout, ev)

    def _fanout(self, ev: StaffEvent) -> None:
        for q in list(self._queues):
            if q.full():  # a stuck client: end its stream; it catches up by replay on reconnect
                self._queues.discard(q)
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(None)
            else:
                q.put_nowait(ev)

    @property
    def clients(self) -> int:
        return len(self._queues)


class StaffBus:
    """Check, stamp, store, count, fan out: every staff event goes through `publish`.

    Subscribers (engines, channels) run in the publishing thread after the event is stored
    and pushed, so an event they publish in turn follows the one that caused it.
    """

    def __init__(self, log: EventLog, broadcaster: Broadcaster, clock: Callable[[], float], counter: Counter):
        self.log, self.broadcaster, self.clock, self.counter = log, broadcaster, clock, counter
        self._subscribers: list[Callable[[StaffEvent], None]] = []

    def subscribe(self, fn: Callable[[StaffEvent], None]) -> Callable[[], None]:
        """Call `fn` with every published event; returns the unsubscribe function."""
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn)

    def publish(
        self, kind: str, customer_id: str | None, data: Mapping[str, Any], *, at: float | None = None
    ) -> StaffEvent:
        """`at`: when it happened, if not now (an observation's time); `emitted_at` is always now."""
        now = self.clock()
        stamped = {**data, "emitted_at": now}
        staff_events.check(kind, stamped)
        ev = self.log.append(now if at is None else at, kind, customer_id, stamped)
        self.counter.labels(kind).inc()
        self.broadcaster.publish(ev)
        for fn in list(self._subscribers):
            fn(ev)
        return ev
