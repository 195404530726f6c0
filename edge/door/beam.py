"""Infrared break-beam pair on two GPIO inputs (gpiozero): the thin adapter of the counter.

One `DigitalInputDevice` per receiver, "active" meaning the beam is broken (docs/door.md:
receivers differ in polarity). gpiozero calls the handlers on its own thread with each edge;
debouncing is the core's, on timestamps (gpiozero's `bounce_time` drops edges and is not
implemented by its mock pins, so the tests could not cover it). `poll` lets a debounced
change that had no later edge complete; `run` calls it every POLL_S.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gpiozero import DigitalInputDevice
from gpiozero.pins import Factory

from edge.door.zones import Crossing, TwoZoneCounter
from edge.protocol import DoorHealth

POLL_S = 0.02  # how often a settled change is looked for: well under a person's 0.3 s in the door


class BeamSensor:
    kind = "beam"

    def __init__(
        self,
        pins: tuple[int, int],
        counter: TwoZoneCounter,
        on_crossing: Callable[[Crossing], None],
        *,
        broken_when_low: bool = True,
        clock: Callable[[], float] = time.time,
        pin_factory: Factory | None = None,
    ):
        self.counter, self.on_crossing, self.clock = counter, on_crossing, clock
        self.crossings = 0
        self._lock = threading.Lock()
        # pull-up with active-low for receivers that pull the line LOW when the beam is broken,
        # else floating with active-high (the receiver drives the line both ways)
        kw: dict = {"pull_up": True} if broken_when_low else {"pull_up": None, "active_state": True}
        self.beams = [DigitalInputDevice(pin, pin_factory=pin_factory, **kw) for pin in pins]
        self.counter.reset(self.beams[0].is_active, self.beams[1].is_active, clock())
        for zone, beam in enumerate(self.beams):
            beam.when_activated = lambda z=zone: self._edge(z, True)
            beam.when_deactivated = lambda z=zone: self._edge(z, False)

    def _edge(self, zone: int, broken: bool) -> None:
        with self._lock:
            self._emit(self.counter.edge(zone, broken, self.clock()))

    def poll(self) -> None:
        with self._lock:
            self._emit(self.counter.tick(self.clock()))

    def _emit(self, crossings: list[Crossing]) -> None:
        for c in crossings:
            self.crossings += 1
            self.on_crossing(c)

    def health(self) -> DoorHealth:
        blocked = self.counter.blocked(self.clock())
        if blocked:
            detail = ", ".join(f"beam {z} blocked for {s:.0f} s" for z, s in blocked)
            return DoorHealth(sensor="beam", state="blocked", detail=detail, crossings=self.crossings)
        return DoorHealth(sensor="beam", state="ok", crossings=self.crossings)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(POLL_S):
            self.poll()

    def close(self) -> None:
        for beam in self.beams:
            beam.close()
