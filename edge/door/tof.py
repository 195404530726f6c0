"""A VL53L1X time-of-flight sensor over I2C counting with two zones: the thin adapter.

Two regions of interest across the door line are ranged alternately (ST UM2600, docs/door.md);
a zone is occupied while its distance is below `threshold_mm`. Register access is SparkFun's
VL53L1X driver through `SmbusLink` onto an smbus2 `SMBus` (or a test's fake bus), so bus errors
surface as `OSError`, counted in the health and retried.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from edge.door.zones import Crossing, TwoZoneCounter
from edge.protocol import DoorHealth

MODEL_ID = 0xEACC  # VL53L1X model id (0xEA) and module type (0xCC), read from 0x010F
ROI_HEIGHT = 16  # each zone spans the whole receiver along the door line
ROI_CENTRE_REGISTER = 0x007F  # the user ROI's centre SPAD (the driver's set_roi forces 199 when a side > 10)
LONG_RANGE = 2  # the driver's long distance mode: mounted above a door, people are 1-2.5 m away
VALID_STATUSES = (0, 4, 7)  # range statuses ST's people-counting example keeps; others read as empty
FILTER_READINGS = 2  # a zone is occupied when the nearest of its last readings is in range
DATA_WAIT_S = 0.5  # no result within this after a ROI switch: a bus or sensor fault
NO_DATA_S = 5.0  # no reading for this long is reported as `no_data`
RETRY_S = 2.0  # pause before re-initialising after a bus error


class Bus(Protocol):
    """The two smbus2 `SMBus` calls the driver needs (16-bit register addresses)."""

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None: ...

    def i2c_rdwr(self, *msgs: Any) -> None: ...


class SmbusLink:
    """The I2C driver interface SparkFun's module calls (`writeBlock`, `write_read_block`)."""

    def __init__(self, bus: Bus):
        self.bus = bus

    def writeBlock(self, address: int, command: int, values: list[int]) -> None:  # noqa: N802 (their name)
        self.bus.write_i2c_block_data(address, command, list(values))

    def write_read_block(self, address: int, write: list[int], n: int) -> list[int]:
        from smbus2 import i2c_msg

        w, r = i2c_msg.write(address, write), i2c_msg.read(address, n)
        self.bus.i2c_rdwr(w, r)
        return list(r)  # type: ignore[call-overload]  # smbus2's i2c_msg iterates its bytes, untyped


def fill(msg: Any, data: bytes) -> None:
    """Put `data` into an smbus2 read message (what a fake bus does for `i2c_rdwr`)."""
    ctypes.memmove(msg.buf, data, min(len(data), msg.len))


class TofSensor:
    kind = "tof"

    def __init__(
        self,
        bus: Bus,
        counter: TwoZoneCounter,
        on_crossing: Callable[[Crossing], None],
        *,
        address: int = 0x29,
        centres: tuple[int, int] = (167, 231),
        roi_width: int = 8,
        threshold_mm: int = 1600,
        min_mm: int = 0,
        timing_budget_ms: int = 33,
        clock: Callable[[], float] = time.time,
    ):
        from qwiic_vl53l1x import QwiicVL53L1X

        self.link = SmbusLink(bus)
        self.dev = QwiicVL53L1X(address=address, i2c_driver=self.link)
        self.counter, self.on_crossing, self.clock = counter, on_crossing, clock
        self.centres, self.roi_width = centres, roi_width
        self.threshold_mm, self.min_mm, self.budget_ms = threshold_mm, min_mm, timing_budget_ms
        self.zone = 0
        self.recent: list[deque[bool]] = [deque(maxlen=FILTER_READINGS) for _ in centres]
        self.occupied = [False, False]
        self.started = False
        self.last_reading: float | None = None
        self.crossings = self.errors = 0
        self.last_error = ""

    def start(self) -> None:
        """Check the sensor is there, load its defaults, long range, budget, and start ranging."""
        found = self.dev.get_sensor_id()
        if found != MODEL_ID:
            raise OSError(f"no VL53L1X at 0x{self.dev.address:02x} (model id 0x{found:04x})")
        if self.dev.sensor_init():
            raise OSError("VL53L1X did not finish its first measurement")
        self.dev.set_distance_mode(LONG_RANGE)
        self.dev.set_timing_budget_in_ms(self.budget_ms)
        self.dev.set_inter_measurement_in_ms(self.budget_ms)
        self.dev.set_roi(self.roi_width, ROI_HEIGHT)  # the size; the centre is ours, written per zone
        self._set_roi(self.zone)
        self.dev.start_ranging()
        self.started = True

    def _set_roi(self, zone: int) -> None:
        reg = ROI_CENTRE_REGISTER
        self.link.writeBlock(self.dev.address, reg >> 8, [reg & 0xFF, self.centres[zone]])

    def read_once(self) -> None:
        """One reading of the current zone, then switch the ROI to the other zone."""
        deadline = time.monotonic() + DATA_WAIT_S
        while not self.dev.check_for_data_ready():
            if time.monotonic() > deadline:
                raise OSError("VL53L1X: no measurement ready")
            time.sleep(0.001)
        distance, status = self.dev.get_distance(), self.dev.get_range_status()
        self.dev.clear_interrupt()
        zone, self.zone = self.zone, 1 - self.zone
        self._set_roi(self.zone)  # the next measurement ranges the other zone
        now = self.clock()
        self.last_reading = now
        self.recent[zone].append(status in VALID_STATUSES and self.min_mm < distance < self.threshold_mm)
        occupied = any(self.recent[zone])
        if occupied != self.occupied[zone]:
            self.occupied[zone] = occupied
            for c in self.counter.edge(zone, occupied, now):
                self.crossings += 1
                self.on_crossing(c)

    def health(self) -> DoorHealth:
        now = self.clock()
        n, e = self.crossings, self.errors
        if self.last_error:
            return DoorHealth(sensor="tof", state="error", detail=self.last_error, crossings=n, errors=e)
        if self.last_reading is None:
            return DoorHealth(sensor="tof", state="no_data" if self.started else "starting", crossings=n, errors=e)
        if now - self.last_reading > NO_DATA_S:
            detail = f"no reading for {now - self.last_reading:.0f} s"
            return DoorHealth(sensor="tof", state="no_data", detail=detail, crossings=n, errors=e)
        blocked = self.counter.blocked(now)
        if blocked:
            detail = ", ".join(f"zone {z} occupied for {s:.0f} s" for z, s in blocked)
            return DoorHealth(sensor="tof", state="blocked", detail=detail, crossings=n, errors=e)
        return DoorHealth(sensor="tof", state="ok", crossings=n, errors=e)

    def step(self) -> bool:
        """Start if needed and take one reading; a bus error is counted and reported, never raised."""
        try:
            if not self.started:
                self.start()
            self.read_once()
        except OSError as exc:
            self.errors += 1
            self.last_error = f"I2C: {exc}"
            self.started = False  # re-initialise: the sensor may have been power-cycled
            return False
        self.last_error = ""
        return True

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.step():
                stop.wait(RETRY_S)

    def close(self) -> None:
        if self.started:
            try:
                self.dev.stop_ranging()
            except OSError:
                pass
