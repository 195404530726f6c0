"""The edge node process: scan, aggregate, publish. Same code on a Pi and in simulation.

The scanner is bleak's `BleakScanner`; in simulation its backend is the simulator's
`SimScanner` (a `BaseBleakScanner` subclass), so nothing here knows which it is talking to.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from edge.beacon_filter import ForwardPolicy, classify
from edge.config import NodeFile
from edge.mqtt_link import NodeLink
from edge.window import BleWindowAggregator

log = logging.getLogger("instore.edge")


class BleNode:
    """Glue between the scanner callback, the window aggregator and the MQTT link."""

    def __init__(self, cfg: NodeFile, clock: Callable[[], float] = time.time):
        self.cfg, self.clock = cfg, clock
        self.policy = ForwardPolicy(
            ibeacon_uuids=frozenset(u.lower() for u in cfg.ble.ibeacon_uuids),
            eddystone_namespace=cfg.ble.eddystone_namespace,
        )
        self.agg = BleWindowAggregator(cfg.node.store, cfg.node.id)
        self.link = NodeLink(cfg.node.store, cfg.node.id, cfg.broker, clock=clock, status_extra=self._health)
        self.scanner_state = "starting"
        self.adverts = 0

    def _health(self) -> dict:
        return {"scanner": self.scanner_state}

    def on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        now = self.clock()
        self.adverts += 1
        s = classify(adv.manufacturer_data, adv.service_data, self.policy)
        if s is None:
            self.agg.count_anonymous(hash(device.address), now)
        else:
            self.agg.add(s.ident, float(adv.rssi), now, s.tx)

    def flush(self) -> None:
        window = self.agg.flush(self.clock())
        self.link.send("ble", window)

    def make_scanner(self) -> BleakScanner:
        kwargs: dict = {}
        if self.cfg.ble.backend == "sim":
            from sim.bleak_backend import SimScanner

            kwargs = {"backend": SimScanner, "air_url": self.cfg.ble.sim_air, "node_id": self.cfg.node.id}
        return BleakScanner(self.on_advertisement, scanning_mode=self.cfg.ble.scan_mode, **kwargs)

    async def run(self, stop: asyncio.Event) -> None:
        self.link.start()
        scanner = self.make_scanner()
        await scanner.start()
        self.scanner_state = "scanning"
        log.info("node %s scanning (%s backend)", self.cfg.node.id, self.cfg.ble.backend)
        window = self.cfg.ble.window_s
        next_flush = self.clock() + window
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_flush - self.clock()))
                except TimeoutError:
                    pass
                self.flush()
                next_flush += window
                if next_flush < self.clock():  # fell behind (suspend, overload): skip, do not burst
                    next_flush = self.clock() + window
        finally:
            self.scanner_state = "stopped"
            await scanner.stop()
            self.link.stop()


def run_node(cfg: NodeFile) -> None:
    """Run until SIGINT/SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await BleNode(cfg).run(stop)

    asyncio.run(main())
