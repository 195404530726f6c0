"""The RFID reader loop of an edge node: reader drivers -> per-window aggregates -> publish.

One :class:`~edge.rfid.driver.ReaderDriver` per serial reader (a reader is an antenna); every
``window_s`` the window goes to the node's ``publish`` callable, empty windows too (proof the
reader is alive). The clock is injected, so tests run on ``sim.rfid_reader.VirtualReaderPty``.
docs/wire.md, "RfidWindow".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edge.protocol import MAX_OBSERVATIONS, RfidWindow
from edge.rfid import codec
from edge.rfid.codec import TagNotice
from edge.rfid.driver import ReaderDriver
from edge.window import RfidWindowAggregator

__all__ = ["ReaderSpec", "RfidReaderLoop", "readers_from_store"]

log = logging.getLogger("instore.edge.rfid")

Clock = Callable[[], float]
Publish = Callable[[RfidWindow], object]  # what it returns (a queue position) is not used

#: Window length. Why: the gateway's fitting-room engine decides on 1-s evidence; shorter
#: windows multiply messages, longer ones delay "shown in the room".
DEFAULT_WINDOW_S = 1.0
#: Shortest EPC forwarded, in bytes. Why: the wire contract needs >= 4 hex digits, and a
#: 0- or 1-byte EPC is a corrupted notice that slipped past the checks.
MIN_EPC_BYTES = 2
#: Reader health states that count as "ok" in a window's ``reader`` field.
OK_STATES = frozenset({"connected", "restarting"})


@dataclass(frozen=True, slots=True)
class ReaderSpec:
    """One serial reader: its port (``/dev/serial/by-id/...``, a pty, ``socket://``) and antenna id."""

    url: str
    antenna: int = 1
    name: str = ""
    power_dbm: float | None = 20.0


def readers_from_store(store: Any, node_id: str) -> list[ReaderSpec]:
    """The readers of ``node_id`` in a store file: its ``rfid.device`` feeding its first antenna."""
    node = store.node(node_id)
    if node.rfid is None:
        return []
    ant = node.rfid.antennas[0]
    return [ReaderSpec(node.rfid.device, ant.id, node_id, node.rfid.power_dbm)]


class RfidReaderLoop:
    """Drivers, one aggregator, and the window clock of an RFID node."""

    def __init__(
        self,
        store: str,
        node: str,
        readers: Sequence[ReaderSpec],
        publish: Publish,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        clock: Clock = time.time,
        driver_factory: Callable[..., ReaderDriver] = ReaderDriver,
        driver_options: dict[str, Any] | None = None,
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.readers = list(readers)
        self.publish, self.window_s, self.clock = publish, window_s, clock
        self.agg = RfidWindowAggregator(store, node)
        self._lock = threading.Lock()
        opts = dict(driver_options or {})
        self.drivers = [
            driver_factory(r.url, clock=clock, power_dbm=r.power_dbm, **opts) for r in self.readers
        ]
        self.notices = 0
        self.skipped_notices = 0  # EPC too short to be a tag
        self.dropped_observations = 0  # over the per-window limit
        self.publish_errors = 0
        self.windows = 0
        self._window_start: float | None = None

    def apply(self, power_dbm: float, region: str) -> None:
        """A pushed node config: every reader takes the new power and region without a restart."""
        code = codec.REGIONS[region]
        for spec, drv in zip(self.readers, self.drivers, strict=True):
            if drv.power_dbm != power_dbm or drv.region != code:
                log.info("reader %s: power %s dBm, region %s (pushed config)", spec.name or spec.url, power_dbm, region)
                drv.reconfigure(power_dbm=power_dbm, region=code)

    # ---------------------------------------------------------------------------- callbacks

    def on_notice(self, antenna: int) -> Callable[[TagNotice, float], None]:
        """The callback for one reader's driver: every notice goes into the open window."""

        def cb(notice: TagNotice, t: float) -> None:
            if len(notice.epc) < MIN_EPC_BYTES:
                self.skipped_notices += 1
                return
            with self._lock:
                self.notices += 1
                self.agg.add(notice.epc.hex(), antenna, float(notice.rssi_dbm), t)

        return cb

    # ------------------------------------------------------------------------------ windows

    def reader_state(self) -> str:
        """``ok`` when every reader is reading, else ``<name>:<state>`` of those that are not."""
        bad = []
        for spec, drv in zip(self.readers, self.drivers, strict=True):
            state = drv.health()["state"]
            if state not in OK_STATES:
                bad.append(f"{spec.name or spec.url}:{state}")
        return "ok" if not bad else ",".join(bad)[:200]

    def flush(self, now: float | None = None) -> RfidWindow:
        """Close the open window at ``now`` (default: the clock), publish it, and return it."""
        t = self.clock() if now is None else now
        state = self.reader_state()
        with self._lock:
            over = len(self.agg._tags) - MAX_OBSERVATIONS  # noqa: SLF001 - bound the window to the contract
            if over > 0:
                # keep the pairs read most often: the weakest, rarest reads matter least
                keep = sorted(self.agg._tags.items(), key=lambda kv: -kv[1].n)[:MAX_OBSERVATIONS]  # noqa: SLF001
                self.agg._tags = dict(keep)  # noqa: SLF001
                self.dropped_observations += over
            start = self._window_start if self._window_start is not None else t - self.window_s
            window = self.agg.flush(t, reader=state, t_start=min(start, t))
            self._window_start = t
            self.windows += 1
        try:
            self.publish(window)
        except Exception:  # the node's queue failing must not stop the readers
            self.publish_errors += 1
            log.exception("publishing RFID window %d failed", window.seq)
        return window

    def health(self) -> dict[str, Any]:
        """For the node's retained status (``NodeStatus.reader``)."""
        readers = []
        for spec, drv in zip(self.readers, self.drivers, strict=True):
            h = drv.health()
            readers.append(
                {
                    "name": spec.name or spec.url,
                    "antenna": spec.antenna,
                    "state": h["state"],
                    "connected": h["connected"],
                    "firmware": h["firmware"],
                    "notices": h["notices"],
                    "last_read_age_s": h["last_read_age_s"],
                    "reconnects": h["reconnects"],
                    "frames_rejected": h["frames_rejected_total"],
                    "last_error": h["last_error"],
                }
            )
        return {
            "state": self.reader_state(),
            "windows": self.windows,
            "notices": self.notices,
            "skipped_notices": self.skipped_notices,
            "dropped_observations": self.dropped_observations,
            "publish_errors": self.publish_errors,
            "readers": readers,
        }

    # -------------------------------------------------------------------------------- loop

    def run(self, stop: threading.Event) -> None:
        """Start the drivers, publish a window every ``window_s`` until ``stop`` is set. Blocks."""
        cancels = [
            drv.start(self.on_notice(spec.antenna))
            for spec, drv in zip(self.readers, self.drivers, strict=True)
        ]
        self._window_start = self.clock()
        next_flush = self._window_start + self.window_s
        try:
            while not stop.is_set():
                stop.wait(max(0.0, next_flush - self.clock()))
                if stop.is_set():
                    break
                self.flush()
                next_flush += self.window_s
                if next_flush < self.clock():  # fell behind (suspend, overload): skip, do not burst
                    next_flush = self.clock() + self.window_s
        finally:
            for cancel in cancels:
                cancel()
            self.flush()  # the last partial window is news too
