"""The node's durable outbox: every window is on disk before it is published.

paho-mqtt keeps unacknowledged messages in memory only, so a node that loses power while the
broker is unreachable would lose the whole outage. Here each window is written to SQLite (WAL)
first, with the node's next sequence number, and deleted only when the broker acknowledges it
(PUBACK). After a reconnect or a restart the rows are drained in sequence order. The queue is
bounded: at the bound the oldest windows are dropped (the newest are the most useful) and
counted, persistently, so the fleet view can say how much an outage cost.

No MQTT here and no clock: the link (`edge.mqtt_link.NodeLink`) decides what to publish when.
Thread-safe: the scan loop writes, the MQTT thread acknowledges.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

# One window per second for a day is 86,400; 100,000 rows of ~1 KiB is ~100 MB on the SD card,
# comfortably inside a Pi's storage and a day longer than any outage worth replaying.
DEFAULT_MAX_WINDOWS = 100_000


@dataclass(frozen=True, slots=True)
class QueuedWindow:
    """One stored window: `late` marks windows queued while the broker was unreachable."""

    seq: int
    kind: str
    late: bool
    payload: bytes


class DiskQueue:
    """A bounded FIFO of encoded windows keyed by the node's persistent sequence number.

    `path` may be ":memory:" (tests, or a node configured without a state directory), which
    keeps the same semantics for the life of the process only. `first_seq` numbers the first
    window of a fresh queue; callers pass the wall clock in milliseconds so that a node whose
    queue was lost (memory-only, re-imaged card) continues above its old numbers instead of
    repeating them, which the gateway would discard as duplicates.
    """

    def __init__(
        self, path: str | os.PathLike[str], max_windows: int = DEFAULT_MAX_WINDOWS, first_seq: int = 0
    ):
        if max_windows < 1:
            raise ValueError(f"max_windows: must be at least 1, got {max_windows}")
        self.path, self.max_windows = str(path), max_windows
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a window acknowledged to the caller survives a power cut, not only a crash;
            # at one window a second the fsync costs nothing a Pi would notice.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS windows (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
                " late INTEGER NOT NULL, payload BLOB NOT NULL)"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._depth = int(self._db.execute("SELECT COUNT(*) FROM windows").fetchone()[0])
            stored = self._meta("next_seq")
            self._next = int(stored) if stored is not None else first_seq
            top = self._db.execute("SELECT MAX(seq) FROM windows").fetchone()[0]
            if top is not None and top >= self._next:  # never reuse a number that is on disk
                self._next = int(top) + 1
            self._dropped = int(self._meta("dropped") or 0)

    # --- meta -------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
            (key, value, value),
        )

    def get_meta(self, key: str) -> str | None:
        """Small persistent node state kept with the queue (e.g. the last applied config)."""
        with self._lock:
            return self._meta(key)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._set_meta(key, value)

    # --- queue ------------------------------------------------------------------------

    def put(self, kind: str, late: bool, encode: Callable[[int], bytes]) -> int:
        """Assign the next sequence number, store `encode(seq)`, return the number.

        The number and the row are committed together, so a restart never reuses a number.
        Drops the oldest rows beyond `max_windows` and counts them.
        """
        with self._lock:
            seq = self._next
            payload = encode(seq)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO windows (seq, kind, late, payload) VALUES (?, ?, ?, ?)",
                    (seq, kind, int(late), payload),
                )
                self._set_meta("next_seq", str(seq + 1))
                excess = self._depth + 1 - self.max_windows
                if excess > 0:
                    cur = self._db.execute(
                        "DELETE FROM windows WHERE seq IN (SELECT seq FROM windows ORDER BY seq LIMIT ?)",
                        (excess,),
                    )
                    self._set_meta("dropped", str(self._dropped + cur.rowcount))
                else:
                    cur = None
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._next = seq + 1
            self._depth += 1
            if cur is not None:
                self._depth -= cur.rowcount
                self._dropped += cur.rowcount
            return seq

    def after(self, seq: int, limit: int) -> list[QueuedWindow]:
        """Up to `limit` stored windows with a sequence number above `seq`, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, late, payload FROM windows WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        return [QueuedWindow(int(r[0]), str(r[1]), bool(r[2]), bytes(r[3])) for r in rows]

    def ack(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged windows (already dropped ones are ignored); returns how many went."""
        batch = [(s,) for s in seqs]
        if not batch:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            before = self._db.total_changes
            self._db.executemany("DELETE FROM windows WHERE seq = ?", batch)
            gone = self._db.total_changes - before
            self._db.execute("COMMIT")
            self._depth -= gone
            return gone

    def mark_all_late(self) -> int:
        """Flag every stored window late: used at start-up, when anything on disk is a replay."""
        with self._lock:
            return self._db.execute("UPDATE windows SET late = 1 WHERE late = 0").rowcount

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def next_seq(self) -> int:
        return self._next

    def close(self) -> None:
        with self._lock:
            self._db.close()
