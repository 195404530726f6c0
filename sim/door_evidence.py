"""What the entry oracle learns from a door counter (`python -m sim.entry_bound --door`).

The oracle sees every report the gateway gets from a door sensor, as the sensor sent it: the
crossing time and direction it reported and when it arrived, misses and false triggers
included, never the true passes. For "this person crossed in at tc" against "they did not",
the reports are everyone else's (a Poisson process at the door's own rate per direction)
plus, under the first, this person's own with probability p (detected, not hidden beside the
one before, the sensor online). So by a horizon H the likelihood ratio is

    1 - p F(H - tc) + sum over reports r arrived by H within MATCH_S of tc: p_dir / (MATCH_S x rate_dir)

F the share of reports that arrived within H - tc of their crossing, p_dir p for an inward
report and p x the direction error for an outward one. The derivation is in docs/scenarios.md.
The leave oracle (`sim.left_bound`) asks the same of an outward crossing (`inward=False`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_config.store import StoreFile
from sim.door_sensor import DOOR_STREAM, sensed_doors, simulate, true_crossings
from sim.truth import DoorReport
from sim.world import World

MATCH_S = 0.25  # a report within half of this of a hypothesised crossing is its own: the oracle's crossing-time step
MIN_RATIO = 1e-12  # a sensor that never misses makes "no report" impossible: a floor, not -inf, for the arithmetic


@dataclass(frozen=True, slots=True)
class _Door:
    """One sensed door's reports, each direction sorted by reported crossing time."""

    t: dict[bool, np.ndarray]  # inward? -> reported crossing times
    arrival: dict[bool, np.ndarray]  # inward? -> when each reached the gateway
    rate: dict[bool, float]  # inward? -> reports per second over the run (everyone else's crossings)
    pair_miss: float  # the counter's miss of the second of a side-by-side pair
    offline: tuple[tuple[float, float], ...]  # (from, to): spells the sensor reported nothing


class DoorEvidence:
    """The door reports of a run (the same draws as `sim.run.run_fast`) as evidence for crossings."""

    def __init__(self, world: World, store: StoreFile):
        cfg = world.scenario.door_sensor
        duration = world.scenario.scenario.duration_s
        doors = sensed_doors(store, cfg)
        rng = np.random.default_rng([world.scenario.scenario.seed, DOOR_STREAM])
        passes, self.reports, offline = simulate(true_crossings(world, doors), doors, cfg, duration, rng)
        # the true path's door: the oracle knows each entrant's path, so the door they went through
        self.entered_by = {(p.agent, p.t): p.door for p in passes if p.direction == "in"}
        self.left_by = {(p.agent, p.t): p.door for p in passes if p.direction == "out"}  # `sim.left_bound`
        self.detect, self.direction_error, self.pair_gap = cfg.detect_probability, cfg.direction_error, cfg.pair_gap_s
        self.delays = np.sort([r.arrival - r.t for r in self.reports])
        self.doors = {d.id: self._door(d.id, getattr(cfg.pair_miss_probability, d.kind), duration,
                                       tuple((a, b) for door, a, b in offline if door == d.id)) for d in doors}

    def _door(self, door: str, pair_miss: float, duration: float, offline: tuple[tuple[float, float], ...]) -> _Door:
        mine: list[DoorReport] = sorted((r for r in self.reports if r.door == door), key=lambda r: r.t)
        t = {w: np.asarray([r.t for r in mine if (r.direction == "in") == w]) for w in (True, False)}
        arrival = {w: np.asarray([r.arrival for r in mine if (r.direction == "in") == w]) for w in (True, False)}
        rate = {w: max(1, len(t[w])) / duration for w in (True, False)}
        return _Door(t, arrival, rate, pair_miss, offline)

    def _arrived_share(self, dt: np.ndarray) -> np.ndarray:
        """F: the share of reports that reached the gateway within dt of their crossing."""
        if not len(self.delays):
            return (dt >= 0).astype(float)
        return np.searchsorted(self.delays, dt, side="right") / len(self.delays)

    def _report_probability(self, d: _Door, tc: np.ndarray, inward: bool = True) -> np.ndarray:
        """p per hypothesised crossing time: counted, unless beside a crossing just reported or offline."""
        same = d.t[inward]
        before = np.searchsorted(same, tc - MATCH_S / 2) - np.searchsorted(same, tc - self.pair_gap)
        online = ~np.any([(a <= tc) & (tc < b) for a, b in d.offline], axis=0) if d.offline else True
        return self.detect * np.where(before > 0, 1.0 - d.pair_miss, 1.0) * online

    def log_ratio(self, door: str | None, tc: np.ndarray, horizon: np.ndarray, inward: bool = True) -> np.ndarray:
        """(H, L): log P(reports arrived by horizon[h, l] | crossed `door` at tc[h], inward or out) / P(... | not).

        A door without a sensor (or None) says nothing: 0."""
        d = self.doors.get(door or "")
        if d is None:
            return np.zeros(horizon.shape)
        p = self._report_probability(d, tc, inward)
        ratio = 1.0 - p[:, None] * self._arrived_share(horizon - tc[:, None])
        for way, share in ((inward, 1.0 - self.direction_error), (not inward, self.direction_error)):
            t, arrival = d.t[way], d.arrival[way]
            lo = np.searchsorted(t, tc - MATCH_S / 2)
            hi = np.searchsorted(t, tc + MATCH_S / 2, side="right")
            weight = p * share / (MATCH_S * d.rate[way])
            for k in range(int((hi - lo).max(initial=0))):  # the reports in each window, one at a time
                i = np.minimum(lo + k, len(t) - 1)
                mine = (lo + k < hi)[:, None] & (arrival[i][:, None] <= horizon)
                ratio = ratio + weight[:, None] * mine
        return np.log(np.maximum(ratio, MIN_RATIO))

    def entrant(self, agent: str, t0: float, lat: np.ndarray) -> np.ndarray:
        """(L,): the door's evidence for an entrant's true crossing at t0, by each latency after it."""
        return self.log_ratio(self.entered_by.get((agent, t0)), np.asarray([t0]), t0 + lat[None, :])[0]
