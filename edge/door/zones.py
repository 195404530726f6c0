"""The two-zone crossing core: timestamped zone edges in, crossings out. Pure, no clock.

Zones `a` and `b` lie one behind the other across the door; each zone's edges are debounced on
their own timestamps, and a, both, b is a crossing from a to b (ST's people-counting sequence).
Paths with a pause or step back count with lower confidence; turn-backs and blocked doors count
nothing. docs/door.md, "The method: two zones, one path".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["in", "out"]
Zone = Literal["a", "b"]

CLEAN_CONFIDENCE = 0.95  # a, both, b: the one sequence the method accepts (counters' ~95 % detection)
UNSURE_CONFIDENCE = 0.7  # a pause or step back on the way, yet in by one zone and out by the other
ZONES: tuple[Zone, Zone] = ("a", "b")


@dataclass(frozen=True, slots=True)
class Crossing:
    t: float  # when the first zone was left with the other still occupied: the door line
    direction: Direction
    confidence: float


class TwoZoneCounter:
    """Feed `edge` with every raw zone change and call `tick` now and then (debounce expiry)."""

    def __init__(self, inside: Zone = "b", debounce_s: float = 0.0, blocked_after_s: float = 120.0):
        self.inside, self.debounce_s, self.blocked_after_s = inside, debounce_s, blocked_after_s
        self._raw = [False, False]
        self._state = [False, False]
        self._since = [0.0, 0.0]  # when each debounced state began
        self._burst: list[tuple[float, float] | None] = [None, None]  # (first edge, last edge) per zone
        self._path: list[tuple[int, float]] = []  # (code, time) since both zones were last free

    def reset(self, a: bool, b: bool, t: float) -> None:
        """Start from known levels (a driver's first reading); any path in progress is dropped."""
        self._raw, self._state = [a, b], [a, b]
        self._since = [t, t]
        self._burst = [None, None]
        code = a + 2 * b
        self._path = [(code, t)] if code else []

    def edge(self, zone: int, occupied: bool, t: float) -> list[Crossing]:
        """A raw level of zone 0 (a) or 1 (b) at time t; returns crossings completed by now."""
        out = self.tick(t)
        if occupied != self._raw[zone]:
            self._raw[zone] = occupied
            burst = self._burst[zone]
            self._burst[zone] = (burst[0] if burst else t, t)
        return out + self.tick(t)

    def tick(self, t: float) -> list[Crossing]:
        """Commit every zone change that has held `debounce_s` by t, oldest first."""
        out: list[Crossing] = []
        while True:
            pending = [(b[0], z) for z, b in enumerate(self._burst) if b is not None]
            if not pending:
                return out
            start, z = min(pending)
            burst = self._burst[z]
            assert burst is not None
            if t - burst[1] < self.debounce_s:
                return out  # the oldest change is still bouncing: later ones must wait for it
            self._burst[z] = None
            if self._raw[z] != self._state[z]:  # a bounce that came back to where it was is nothing
                self._state[z], self._since[z] = self._raw[z], start
                out += self._step(start)

    def blocked(self, t: float) -> list[tuple[Zone, float]]:
        """Zones occupied for longer than `blocked_after_s` at t, with how long."""
        return [
            (ZONES[z], t - self._since[z])
            for z in (0, 1)
            if self._state[z] and t - self._since[z] > self.blocked_after_s
        ]

    def _step(self, t: float) -> list[Crossing]:
        code = self._state[0] + 2 * self._state[1]
        if code:
            if not self._path or self._path[-1][0] != code:
                self._path.append((code, t))
            return []
        path, self._path = self._path, []
        if not path or t - path[0][1] > self.blocked_after_s:
            return []
        first, last = path[0][0], path[-1][0]
        if first == 3 or last == 3 or first == last:  # both at once, or turned back: no direction
            return []
        towards: Zone = "b" if first == 1 else "a"
        confidence = CLEAN_CONFIDENCE if len(path) == 3 else UNSURE_CONFIDENCE
        return [Crossing(path[-1][1], "in" if towards == self.inside else "out", confidence)]
