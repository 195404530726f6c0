"""The node's durable outbox: every window the broker has not acknowledged survives a restart.

paho keeps unacknowledged messages in memory only. Here a window waits in memory for its PUBACK
and goes to SQLite (WAL) only when it cannot be delivered, with an fsync at most every
`SYNC_EVERY_S`; bounded, oldest dropped and counted. The promises: docs/deploy.md, "7. Outages:
the node's disk queue". No MQTT here; the clock is injected; thread-safe (scan loop and MQTT).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# One window per second for a day is 86,400; 100,000 rows of ~1 KiB is ~100 MB on the SD card,
# comfortably inside a Pi's storage and a day longer than any outage worth replaying.
DEFAULT_MAX_WINDOWS = 100_000
#: Seconds a window may wait for the broker's acknowledgement before it is written anyway. Why: a
#: LAN broker acknowledges in milliseconds; this long without one, the connection is as good as
#: dead (paho notices a silent one only after 1.5 keep-alives), and a crash would lose the window.
SPILL_AFTER_S = 1.0
#: Seconds between two fsyncs of the queue file at most. Why: a power cut then loses at most
#: these last seconds of an outage, while an fsync per window (one a second per kind) would cost
#: the card a flash block rewrite each.
SYNC_EVERY_S = 5.0
#: Seconds before a write the card refused is tried again. Why: each attempt on a full card
#: costs a failing transaction and a log line; the windows wait in memory meanwhile.
RETRY_AFTER_S = 5.0
#: Seconds between two deletions of acknowledged rows at most. Why: a drain acknowledges
#: thousands of windows a second; a crash before a batch only replays windows the gateway
#: recognises as duplicates.
DELETE_EVERY_S = 5.0
#: Sequence numbers reserved on disk at a time. Why: one write per 10,000 windows (hours), and
#: the gateway accepts the gap a power cut leaves (it only refuses numbers it has seen).
SEQ_BLOCK = 10_000


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
    repeating them, which the gateway would discard as duplicates. Windows awaiting the
    broker's acknowledgement, and those the card refused, live in memory (`_fresh`, always the
    newest); the others are on disk.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_windows: int = DEFAULT_MAX_WINDOWS,
        first_seq: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_windows < 1:
            raise ValueError(f"max_windows: must be at least 1, got {max_windows}")
        self.path, self.max_windows = str(path), max_windows
        self.clock = clock
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._fresh: dict[int, tuple[float, QueuedWindow]] = {}  # seq -> (put at, window), oldest first
        self._acked_on_disk: set[int] = set()  # deleted at the next write
        self.commits = 0  # transactions written: the card's wear
        self.syncs = 0  # of those, the ones that waited for an fsync
        self.rows_written = 0
        self.write_errors = 0  # writes the card refused (full, failing); the windows stayed in memory
        self.disk_full = False  # the last write was refused: windows wait in memory until one succeeds
        self._retry_at = float("-inf")  # after a refused write, none is tried before this
        self._synced_at = float("-inf")  # the last commit that waited for an fsync
        self._syncing = False  # the connection's current `synchronous` setting is FULL
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a commit is a plain write to the OS; `_write` switches to FULL for the fsyncs.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS windows (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
                " late INTEGER NOT NULL, payload BLOB NOT NULL)"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._on_disk = int(self._db.execute("SELECT COUNT(*) FROM windows").fetchone()[0])
            stored = self._meta("next_seq")
            self._next = int(stored) if stored is not None else first_seq
            top = self._db.execute("SELECT MAX(seq) FROM windows").fetchone()[0]
            if top is not None and top >= self._next:  # never reuse a number that is on disk
                self._next = int(top) + 1
            self._reserved = self._next  # numbers below this are safe to hand out
            self._dropped = int(self._meta("dropped") or 0)
            self._last_write = clock()

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
            self._set_meta(key, value)  # rare (a new config): with the next fsync is soon enough
            self.commits += 1

    # --- writing ----------------------------------------------------------------------

    def _write(self, now: float, *, spill: bool = False, next_seq: int | None = None, sync: bool = False) -> None:
        """One transaction: the windows in memory (`spill`), acknowledged deletions, the bound, the
        numbering; it waits for an fsync when asked (`sync`) or when the last is `SYNC_EVERY_S` old."""
        due = [w for _, w in self._fresh.values()] if spill else []
        if not (due or self._acked_on_disk or next_seq is not None or self._over_bound()):
            return
        sync = sync or now - self._synced_at >= SYNC_EVERY_S
        if sync != self._syncing:  # outside a transaction: SQLite ignores it inside one
            self._db.execute(f"PRAGMA synchronous={'FULL' if sync else 'NORMAL'}")
            self._syncing = sync
        self._db.execute("BEGIN IMMEDIATE")
        try:
            live, excess, from_disk = self._write_rows(due, next_seq)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite ends it itself on a full disk
                self._db.execute("ROLLBACK")
            raise
        for w in due:
            del self._fresh[w.seq]
        for s in list(self._fresh)[: excess - from_disk]:  # the bound reaches into memory: oldest first
            del self._fresh[s]
        self._acked_on_disk.clear()
        self._on_disk = live - from_disk
        self._dropped += excess
        self._last_write = now
        self.commits += 1
        self.rows_written += len(due)
        if sync:
            self._synced_at = now
            self.syncs += 1

    def _write_rows(self, due: list[QueuedWindow], next_seq: int | None) -> tuple[int, int, int]:
        """The statements inside `_write`'s transaction -> (rows live, windows over the bound, of them on disk)."""
        self._db.executemany(
            "INSERT INTO windows (seq, kind, late, payload) VALUES (?, ?, ?, ?)",
            [(w.seq, w.kind, int(w.late), w.payload) for w in due],
        )
        before = self._db.total_changes
        self._db.executemany("DELETE FROM windows WHERE seq = ?", [(s,) for s in self._acked_on_disk])
        deleted = self._db.total_changes - before
        live = self._on_disk + len(due) - deleted
        excess = max(0, live + len(self._fresh) - len(due) - self.max_windows)
        from_disk = min(excess, live)
        if from_disk:
            self._db.execute(
                "DELETE FROM windows WHERE seq IN (SELECT seq FROM windows ORDER BY seq LIMIT ?)", (from_disk,)
            )
        if excess:
            self._set_meta("dropped", str(self._dropped + excess))
        if next_seq is not None:
            self._set_meta("next_seq", str(next_seq))
        return live, excess, from_disk

    def _try_write(self, now: float, **kw: object) -> bool:
        """`_write`, except that a card refusing it leaves the windows in memory (see the module doc)."""
        if now < self._retry_at:
            return False
        try:
            self._write(now, **kw)  # type: ignore[arg-type]  # the keywords of `_write`, passed through
        except sqlite3.OperationalError as exc:
            self.write_errors += 1
            self.disk_full = True
            self._retry_at = now + RETRY_AFTER_S
            if self.write_errors == 1 or self.write_errors % 100 == 0:
                log.warning("queue write failed (%s); %d windows kept in memory", exc, len(self._fresh))
            excess = min(len(self._fresh), self._on_disk - len(self._acked_on_disk) + len(self._fresh)
                         - self.max_windows)
            for s in list(self._fresh)[: max(0, excess)]:  # the bound holds in memory too: oldest first
                del self._fresh[s]
            self._dropped += max(0, excess)
            return False
        self.disk_full = False
        return True

    def _over_bound(self) -> bool:
        return self._on_disk - len(self._acked_on_disk) + len(self._fresh) > self.max_windows

    def _tick(self, undeliverable: bool = False) -> None:
        now = self.clock()
        oldest = next(iter(self._fresh.values()), None)
        spill = oldest is not None and (undeliverable or now - oldest[0] >= SPILL_AFTER_S)
        if spill:  # every window in memory goes, in one transaction
            self._try_write(now, spill=True)
        elif self._over_bound() or (self._acked_on_disk and now - self._last_write >= DELETE_EVERY_S):
            self._try_write(now)
        elif self.disk_full and now >= self._retry_at and self._next < self._reserved:
            # nothing waits, but is the card still full? (Past the reservation, `put` asks itself.)
            self._try_write(now, next_seq=self._reserved)  # rewrites the reservation it already has

    # --- queue ------------------------------------------------------------------------

    def put(self, kind: str, late: bool, encode: Callable[[int], bytes]) -> int:
        """Assign the next sequence number, keep `encode(seq)`, return the number.

        A `late` window (the broker unreachable) is written at once, with any others in memory.
        A number is handed out only once it is reserved on disk, so a restart never reuses it.
        Drops the oldest windows beyond `max_windows` and counts them.
        """
        with self._lock:
            seq = self._next
            if seq >= self._reserved and self._try_write(self.clock(), next_seq=seq + SEQ_BLOCK, sync=True):
                self._reserved = seq + SEQ_BLOCK
            self._fresh[seq] = (self.clock(), QueuedWindow(seq, kind, late, encode(seq)))
            self._next = seq + 1
            self._tick(undeliverable=late)
            return seq

    def spill(self) -> None:
        """Write every window in memory now: the broker is gone and they cannot be delivered."""
        with self._lock:
            self._tick(undeliverable=True)

    def after(self, seq: int, limit: int) -> list[QueuedWindow]:
        """Up to `limit` unacknowledged windows with a sequence number above `seq`, oldest first."""
        with self._lock:
            out: list[QueuedWindow] = []
            if self._on_disk > len(self._acked_on_disk):
                skip = sum(1 for a in self._acked_on_disk if a > seq)  # still on disk, to be deleted
                rows = self._db.execute(
                    "SELECT seq, kind, late, payload FROM windows WHERE seq > ? ORDER BY seq LIMIT ?",
                    (seq, limit + skip),
                ).fetchall()
                out = [
                    QueuedWindow(int(r[0]), str(r[1]), bool(r[2]), bytes(r[3]))
                    for r in rows
                    if r[0] not in self._acked_on_disk
                ][:limit]
            for s, (_, w) in self._fresh.items():
                if len(out) >= limit:
                    break
                if s > seq:
                    out.append(w)
            return out

    def ack(self, seqs: Iterable[int]) -> int:
        """Forget acknowledged windows (already dropped ones are ignored); returns how many went.

        A window still in memory never reaches the disk; one on disk is deleted with the next write.
        """
        gone = 0
        with self._lock:
            for s in seqs:
                if self._fresh.pop(s, None) is not None:
                    gone += 1
                elif s not in self._acked_on_disk and s < self._next:
                    self._acked_on_disk.add(s)
                    gone += 1
            self._tick()
        return gone

    def mark_all_late(self) -> int:
        """Flag every stored window late: used at start-up, when anything on disk is a replay.

        A card refusing the write leaves them as they are (the gateway treats old news as late)."""
        with self._lock:
            try:
                return self._db.execute("UPDATE windows SET late = 1 WHERE late = 0").rowcount
            except sqlite3.OperationalError as exc:
                self.write_errors += 1
                log.warning("queue: could not mark stored windows late (%s)", exc)
                return 0

    def flush(self) -> None:
        """Write every unacknowledged window now (a clean stop)."""
        with self._lock:
            self._reserved = self._next
            self._write(self.clock(), spill=True, next_seq=self._next, sync=True)

    @property
    def depth(self) -> int:
        return max(0, self._on_disk - len(self._acked_on_disk)) + len(self._fresh)

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def held_in_memory(self) -> int:
        """Windows only in memory because the card refused them (0 while it takes writes)."""
        return len(self._fresh) if self.disk_full else 0

    @property
    def next_seq(self) -> int:
        return self._next

    def close(self) -> None:
        """Write what is unacknowledged and close: a clean stop loses nothing."""
        self.flush()
        with self._lock:
            self._db.close()
