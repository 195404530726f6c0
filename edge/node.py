"""The edge node process: scan, aggregate, publish. Same code on a Pi and in simulation.

The scanner is bleak's (or the simulator's backend, named by an import string in the node file),
or the kernel's management socket where the node may (`edge.mgmt_source`). Windows go through the
durable queue; config from the retained topic applies without a restart, and a refused one leaves
the one in force (docs/deploy.md, "8. Node configs and the fleet page").
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from edge import protocol
from edge.beacon_filter import ForwardPolicy, classify
from edge.config import NodeFile, NodeRuntimeConfigError, runtime_from_wire
from edge.door.link import DoorLink
from edge.iphone import is_candidate
from edge.iphone_reader import IphoneReader
from edge.mgmt_source import EventSocket, MgmtSource, MgmtSourceError, choose_source
from edge.mqtt_link import NodeLink
from edge.queue import DiskQueue
from edge.rfid_node import ReaderSpec, RfidReaderLoop
from edge.scanning import PLATFORM_BACKEND, Scanner, ScannerStarter, bluez_args, resolve_backend
from edge.timesync import read_clock_synced
from edge.window import BleWindowAggregator
from firmware_config.node_config import NodeRuntimeConfig
from firmware_config.sdnotify import Notifier

log = logging.getLogger("instore.edge")

CONFIG_KEY = "applied_config"  # queue meta key holding the last applied NodeConfig (JSON)
#: Uptime before disk rates are reported. Why: over a shorter time the start-up writes dominate.
MIN_RATE_UPTIME_S = 60.0
DAY_S = 86_400.0


def read_write_bytes(io_file: str | Path = "/proc/self/io") -> int | None:
    """Bytes this process caused to be written to storage (Linux), or None where unknown."""
    try:
        for line in Path(io_file).read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "write_bytes":
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def read_cpu_temp(thermal_dir: str | Path = "/sys/class/thermal") -> float | None:
    """CPU temperature in °C from the kernel's thermal zones, or None where there is none.

    Prefers a zone whose type names the CPU (`cpu-thermal` on a Pi, `x86_pkg_temp` on a PC),
    else the first readable zone. The files hold millidegrees.
    """
    zones = sorted(Path(thermal_dir).glob("thermal_zone*"))
    readings: list[tuple[bool, float]] = []
    for zone in zones:
        try:
            milli = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            kind = (zone / "type").read_text().strip().lower()
        except OSError:
            kind = ""
        readings.append(("cpu" in kind or "pkg" in kind or "soc" in kind, milli / 1000.0))
    for is_cpu, celsius in readings:
        if is_cpu:
            return celsius
    return readings[0][1] if readings else None


class BleNode:
    """Glue between the scanner callback, the window aggregator and the MQTT link."""

    def __init__(
        self,
        cfg: NodeFile,
        clock: Callable[[], float] = time.time,
        advert_socket: Callable[[], EventSocket | None] | None = None,
    ):
        """`advert_socket` gives the socket advertisements are read from, None for bleak's callbacks
        (default: `ble.source` decides, for the platform's backend)."""
        self.cfg, self.clock = cfg, clock
        self.advert_socket = advert_socket or self._choose_advert_socket
        self.mgmt: MgmtSource | None = None
        self.window_s = cfg.ble.window_s
        self.scan_mode = cfg.ble.scan_mode
        self.rssi_floor: float | None = None  # None: forward whatever the radio hears
        self.policy = ForwardPolicy(
            ibeacon_uuids=frozenset(u.lower() for u in cfg.ble.ibeacon_uuids),
            eddystone_namespace=cfg.ble.eddystone_namespace,
        )
        self.runtime: NodeRuntimeConfig | None = None
        self.config_version: int | None = None
        self.config_error: str | None = None
        self._config_lock = threading.Lock()
        self._rescan = threading.Event()  # scan mode changed: restart the scanner
        self.agg = BleWindowAggregator(cfg.node.store, cfg.node.id)
        qpath = cfg.queue.resolved_path(cfg.node.id)
        if qpath == ":memory:":
            log.warning("no [queue] path and no STATE_DIRECTORY: windows queue in memory only")
        self.queue = DiskQueue(qpath, cfg.queue.max_windows, first_seq=int(clock() * 1000), clock=clock)
        self.link = NodeLink(
            cfg.node.store,
            cfg.node.id,
            cfg.broker,
            clock=clock,
            status_extra=self._health,
            on_config=self.on_config,
            queue_=self.queue,
        )
        self.systemd = Notifier()  # no-op unless started by systemd with Type=notify
        self.scanner_state = "starting" if cfg.ble.enabled else "disabled"
        self.starter = ScannerStarter(self.make_scanner)
        self.adverts = 0
        self.iphones = (  # background iPhones: connect and read the app's identity (edge/iphone.py)
            IphoneReader(cfg.ble.iphone.service_uuid, cfg.ble.iphone.identity_uuid, self._forward, clock)
            if cfg.ble.iphone is not None else None
        )
        self.rfid = (
            RfidReaderLoop(
                cfg.node.store, cfg.node.id,
                [ReaderSpec(r.url, r.antenna, cfg.node.id, r.power_dbm) for r in cfg.rfid.readers],
                lambda window: self.link.send("rfid", window), window_s=cfg.rfid.window_s, clock=clock,
            )
            if cfg.rfid.readers else None
        )
        self.door = (  # crossings go out at once through the link's queue, not in windows
            DoorLink(cfg.node.store, cfg.node.id, cfg.door, self.link.send, clock) if cfg.door is not None else None
        )
        self._restore_config()  # last: the stored config goes to the scanner settings and the readers

    def _health(self) -> dict:
        scanner = self.scanner_state
        if self.mgmt is not None:  # the status schema has no field for it: the scanner state carries it
            malformed = f", {self.mgmt.malformed} malformed events" if self.mgmt.malformed else ""
            scanner += f" (mgmt{malformed})"
        return {
            "scanner": scanner,
            "reader": self.rfid.health() if self.rfid is not None else None,
            "door": self.door.health() if self.door is not None else None,
            "config_version": self.config_version,
            "config_error": self.config_error,
            "queue_depth": self.queue.depth,
            "dropped": self.queue.dropped,
            "cpu_temp_c": read_cpu_temp(self.cfg.health.thermal_dir),
            "clock_synced": read_clock_synced(),
            **self._disk_rates(),
        }

    def _disk_rates(self) -> dict:
        """The SD card's load since start, per day (absent during the first minute)."""
        uptime = self.clock() - self.link.started_at
        if uptime < MIN_RATE_UPTIME_S:
            return {}
        written = read_write_bytes()
        per_day = DAY_S / uptime
        return {
            "disk_writes_per_day": self.queue.commits * per_day,
            "disk_bytes_per_day": None if written is None else written * per_day,
        }

    # --- runtime config ------------------------------------------------------------------

    def _restore_config(self) -> None:
        raw = self.queue.get_meta(CONFIG_KEY)
        if raw is None:
            return
        try:
            self._apply(NodeRuntimeConfig.from_json(raw))
        except NodeRuntimeConfigError as exc:  # written by an older version: wait for the retained one
            log.warning("ignoring stored config: %s", exc)

    def on_config(self, msg: protocol.NodeConfig | protocol.WireError) -> None:
        """A config message from the gateway (MQTT thread): apply it, or refuse and say why."""
        if isinstance(msg, protocol.WireError):
            self.config_error = f"undecodable config: {msg}"
        else:
            try:
                runtime = runtime_from_wire(msg, self.cfg.node.store, self.cfg.node.id)
            except NodeRuntimeConfigError as exc:
                self.config_error = f"version {msg.version} refused: {exc}"
                log.warning(
                    "refused config version %s: %s (keeping version %s)",
                    msg.version,
                    exc,
                    self.config_version,
                )
            else:
                self._apply(runtime)
                try:
                    self.queue.set_meta(CONFIG_KEY, runtime.to_json())
                except sqlite3.OperationalError as exc:  # a full card: applied, but not kept for a reboot
                    log.warning("config version %s applied but not stored: %s", runtime.version, exc)
                self.config_error = None
                log.info("applied config version %s", runtime.version)
        if self.link.connected.is_set():
            self.link.publish_status()

    def _apply(self, rt: NodeRuntimeConfig) -> None:
        with self._config_lock:
            if rt.ble is not None:  # a node without a BLE section in the store keeps its file's settings
                ble = rt.ble
                self.window_s = ble.window_s
                if ble.rssi_floor_dbm != self.rssi_floor:  # an active scan's BlueZ filter holds it: rescan
                    self._rescan.set()
                self.rssi_floor = ble.rssi_floor_dbm
                self.policy = ForwardPolicy(
                    ibeacon_uuids=frozenset(u.lower() for u in ble.ibeacon_uuids),
                    eddystone_namespace=ble.eddystone_namespace,
                )
                if ble.scan_mode != self.scan_mode:
                    self.scan_mode = ble.scan_mode
                    self._rescan.set()
            if rt.rfid is not None and self.rfid is not None:  # the readers change power/region live
                self.rfid.apply(rt.rfid.power_dbm, rt.rfid.region)
            self.runtime = rt
            self.config_version = rt.version

    # --- scanning ------------------------------------------------------------------------

    def on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        """bleak's callback (the D-Bus path)."""
        self.on_advert(device.address, adv.rssi, adv.manufacturer_data, adv.service_data)

    def on_advert(self, device: str | bytes, rssi: int, mfr: dict[int, bytes], svc: dict[str, bytes]) -> None:
        """One advertisement from either path; `device` tells devices apart, never leaves the node."""
        now = self.clock()
        self.adverts += 1
        floor = self.rssi_floor
        if floor is not None and rssi < floor:  # too far to matter at zone scale: not even counted
            return
        s = classify(mfr, svc, self.policy)
        if s is not None:
            self.agg.add(s.ident, float(rssi), now, s.tx)
            return
        iphone = self.cfg.ble.iphone
        if self.iphones is not None and iphone is not None and is_candidate(mfr, iphone.overflow_bit):
            ident = self.iphones.candidate(device, rssi)
            if ident is not None:
                self.agg.add(ident, float(rssi), now)
                return
        self.agg.count_anonymous(hash(device), now)

    def _forward(self, ident: str, rssi: float, t: float) -> None:
        """An identity just read from a background iPhone: an observation like an advertised one."""
        self.agg.add(ident, rssi, t)

    def flush(self) -> None:
        if not self.cfg.ble.enabled:  # an RFID-only node (a shelf) sends no empty BLE windows
            return
        window = self.agg.flush(self.clock())
        self.link.send("ble", window)
        if self.iphones is not None:
            self.iphones.expire()

    def make_scanner(self, mode: str) -> Scanner:
        """A scanner in `mode` on the configured backend (not started); with the kernel's socket on
        BlueZ, only the scan control."""
        if self.mgmt is not None and self.cfg.ble.backend == PLATFORM_BACKEND:
            from edge.bluez_control import BlueZScanControl  # Linux only (dbus-fast)

            return BlueZScanControl(mode, self.rssi_floor)
        kwargs: dict = {}
        backend = resolve_backend(self.cfg.ble.backend)
        if backend is not None:
            kwargs = {"backend": backend, "air_url": self.cfg.ble.sim_air, "node_id": self.cfg.node.id}
        return BleakScanner(
            self.on_advertisement if self.mgmt is None else None,  # a simulated backend, fed by a socket
            scanning_mode=mode,  # type: ignore[arg-type]  # "active" or "passive": bleak wants a Literal
            bluez=bluez_args(self.rssi_floor),
            **kwargs,
        )

    def _choose_advert_socket(self) -> EventSocket | None:
        if self.cfg.ble.backend != PLATFORM_BACKEND or sys.platform != "linux":
            return None  # a simulated backend delivers its own advertisements
        return choose_source(self.cfg.ble.source)

    async def _start_scanner(self) -> Scanner:
        scanner, mode = await self.starter.start(self.scan_mode)
        refused = "" if mode == self.scan_mode else f" {mode} ({self.scan_mode} refused)"
        self.scanner_state = f"scanning{refused}"
        return scanner

    async def run(self, stop: asyncio.Event) -> None:
        self.link.start()
        self._rescan.clear()
        rfid_stop = threading.Event()
        rfid_thread = self._start_rfid(rfid_stop)
        self._scanner: Scanner | None = None  # the loop may replace it; shutdown stops the latest
        try:  # from here on, a failure (the scanner not starting) still stops the link and the readers
            if self.door is not None:  # on its own thread too: GPIO edges and I2C reads
                self.door.start()
            if self.cfg.ble.enabled:
                self._scanner = await self._start_ble()
            self.systemd.ready(f"node {self.cfg.node.id}: scanner {self.scanner_state}")
            await self._loop(stop)
        finally:
            await self._shutdown(rfid_thread, rfid_stop)

    def _start_rfid(self, rfid_stop: threading.Event) -> threading.Thread | None:
        if self.rfid is None:
            return None
        # the readers run on their own thread: serial reads block
        rfid_thread = threading.Thread(target=self.rfid.run, args=(rfid_stop,), name="rfid", daemon=True)
        rfid_thread.start()
        return rfid_thread

    async def _start_ble(self) -> Scanner:
        sock = self.advert_socket()
        if sock is not None:
            self.mgmt = MgmtSource(sock, self.on_advert)
            self.mgmt.start(asyncio.get_running_loop())
        scanner = await self._start_scanner()
        source = "mgmt" if self.mgmt is not None else "bleak callbacks"
        log.info("node %s scanning (%s backend, advertisements from %s)", self.cfg.node.id,
                 self.cfg.ble.backend, source)
        return scanner

    async def _loop(self, stop: asyncio.Event) -> None:
        """Flush a window every `window_s`, restart the scanner on a new mode, report status."""
        next_flush = self.clock() + self.window_s
        next_status = self.clock() + self.cfg.health.status_interval_s
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_flush - self.clock()))
            except TimeoutError:
                pass
            self.flush()
            self.systemd.watchdog()  # the loop is alive: systemd restarts the node if this stops
            next_flush += self.window_s  # a new window length applies from the next window
            if next_flush < self.clock():  # fell behind (suspend, overload): skip, do not burst
                next_flush = self.clock() + self.window_s
            if self._rescan.is_set() and not stop.is_set() and self._scanner is not None:
                self._rescan.clear()
                self._scanner = await self._restart_scanner(self._scanner)
            if self.clock() >= next_status:
                next_status = self.clock() + self.cfg.health.status_interval_s
                if self.link.connected.is_set():
                    self.link.publish_status()

    async def _shutdown(self, rfid_thread: threading.Thread | None, rfid_stop: threading.Event) -> None:
        self.systemd.stopping()
        self.scanner_state = "stopped"
        if self._scanner is not None:
            await self._scanner.stop()
        if self.iphones is not None:
            await self.iphones.close()
        if self.mgmt is not None:
            self.mgmt.stop()
        if rfid_thread is not None:
            rfid_stop.set()
            await asyncio.to_thread(rfid_thread.join, 10.0)
        if self.door is not None:
            await asyncio.to_thread(self.door.stop)
        self.link.stop()
        self.queue.close()

    async def _restart_scanner(self, scanner: Scanner) -> Scanner:
        """Apply a new scan mode: stop the scanner and start one with the new mode."""
        self.scanner_state = "restarting"
        try:
            await scanner.stop()
            scanner = await self._start_scanner()
        except Exception as exc:  # a BlueZ hiccup must not end the node: report it, retry next window
            log.warning("scanner restart failed: %s", exc)
            self.scanner_state = "error"
            self._rescan.set()
            return scanner
        log.info("scanner restarted (%s)", self.scanner_state)
        if self.link.connected.is_set():
            self.link.publish_status()
        return scanner


def run_node(cfg: NodeFile, advert_socket: Callable[[], EventSocket | None] | None = None) -> None:
    """Run until SIGINT/SIGTERM (`advert_socket`: see BleNode; the benchmark feeds one)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await BleNode(cfg, advert_socket=advert_socket).run(stop)

    try:
        asyncio.run(main())
    except MgmtSourceError as exc:  # asked for explicitly and impossible: say so, not a traceback
        log.error("%s", exc)
        raise SystemExit(2) from None
