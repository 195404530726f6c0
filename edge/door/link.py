"""The node's door sensor: open the configured driver, send each crossing at once.

Crossings do not wait for the 1-s windows: each becomes a `door` message handed to the
node's link (`send`), which stores it in the disk queue and publishes it with QoS 1 at once.
The drivers' libraries (gpiozero, smbus2, SparkFun's VL53L1X) are imported here only when
the node file has a `[door]` section of that kind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from edge import protocol
from edge.door.zones import Crossing, TwoZoneCounter

if TYPE_CHECKING:
    from edge.config import DoorSection
    from edge.door.beam import BeamSensor
    from edge.door.tof import TofSensor

log = logging.getLogger("instore.edge.door")


class DoorLink:
    def __init__(
        self,
        store: str,
        node: str,
        cfg: DoorSection,
        send: Callable[[str, protocol.DoorCrossings], object],
        clock: Callable[[], float] = time.time,
    ):
        self.store, self.node, self.cfg, self.send, self.clock = store, node, cfg, send, clock
        self.sensor: BeamSensor | TofSensor | None = None
        self.error = ""  # the sensor could not be opened (no GPIO, no I2C bus)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Create the driver; a sensor that cannot be opened is reported in the health, not raised."""
        cfg = self.cfg
        counter = TwoZoneCounter(cfg.inside, cfg.debounce_s, cfg.blocked_after_s)
        try:
            if cfg.kind == "beam":
                from edge.door.beam import BeamSensor

                assert cfg.pin_a is not None and cfg.pin_b is not None  # the config's validator
                self.sensor = BeamSensor(
                    (cfg.pin_a, cfg.pin_b), counter, self.on_crossing,
                    broken_when_low=cfg.beam_broken == "low", clock=self.clock,
                )
            else:
                from smbus2 import SMBus

                from edge.door.tof import TofSensor

                self.sensor = TofSensor(
                    SMBus(cfg.bus), counter, self.on_crossing, address=cfg.address,
                    centres=(cfg.roi_centre_a, cfg.roi_centre_b), roi_width=cfg.roi_width,
                    threshold_mm=cfg.threshold_mm, min_mm=cfg.min_mm, timing_budget_ms=cfg.timing_budget_ms,
                    clock=self.clock,
                )
        except Exception as exc:  # noqa: BLE001 (gpiozero and smbus2 raise many kinds): the node runs on without it
            self.error = f"cannot open the {cfg.kind} sensor: {exc}"
            log.error("door sensor: %s", self.error)

    def on_crossing(self, c: Crossing) -> None:
        msg = protocol.DoorCrossings(
            v=protocol.VERSION, store=self.store, node=self.node, seq=0, ts=max(self.clock(), c.t),
            door=self.cfg.door, sensor=self.cfg.kind,
            crossings=[protocol.DoorCrossing(t=c.t, direction=c.direction, confidence=c.confidence)],
        )
        self.send("door", msg)

    def health(self) -> protocol.DoorHealth:
        if self.sensor is None:
            return protocol.DoorHealth(sensor=self.cfg.kind, state="error" if self.error else "starting",
                                       detail=self.error)
        return self.sensor.health()

    def start(self) -> None:
        self.open()
        if self.sensor is not None:
            self._stop.clear()
            self._thread = threading.Thread(target=self.sensor.run, args=(self._stop,), name="door", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.sensor is not None:
            self.sensor.close()
