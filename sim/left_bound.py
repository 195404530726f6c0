"""How fast could *any* engine say someone left without sending stayers out? (an oracle)

Leaving is entering backwards: per latency after a leaver's true exit it weighs their readings
along the true path against the best "still inside" explanation, and the reverse for everyone
inside (the best "walked out" explanation against the truth), with the machinery of
`sim.entry_bound`. With --door it also sees every door-sensor report (`sim.door_evidence`).
docs/scenarios.md, "How fast could any engine say someone left?".
    python -m sim.left_bound sim/scenarios/boutique.toml [--seeds 1-3] [--duration S] [--door] [--json]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_config.store import StoreFile, ZoneKind
from sim.door_evidence import DoorEvidence
from sim.emitter import Emitter, radio_params
from sim.entry_bound import (
    DOOR_FLAG,
    FALSE_ALARMS,
    WALK_IN_SPEEDS,
    Lane,
    Recording,
    _best_score,
    _Oracle,
    _Readings,
    bound_cli,
    door_oracle_run,
    lanes,
    summarise,
)
from sim.paths import FloorPlan
from sim.scenario import Scenario
from sim.world import AgentKind, World

LATENCIES_S = (2.5, 5.0, 10.0, 20.0)  # the issue's `left` target is a p95 of 10 s
LATENCY_STEP_S = 0.25  # resolution of the oracle's own latency percentiles (as the entry oracle's)
LATENCY_MAX_S = 30.0  # a leaver not separated by then counts as "later than this" (the engine's p95 is ~20 s)
STAY_STEP_M = 1.0  # spacing of the inside spots a "still inside" explanation may go to
STAY_SPEED_MPS = 1.25  # one walking pace to the spot: the stand, not the walk, is what looks like staying
STAND_HEADINGS = 8  # directions someone standing where they branched off may face (body loss)
BRANCH_BEFORE_S = 6.0  # a "still inside" explanation leaves the true path up to this long before the exit
BRANCH_STEP_S = 1.0  # spacing of those branch times
STAYER_STEP_S = 2.0  # spacing of a stayer's walk-out branch times (four speeds spread the crossing times finer)
NEAR_DOOR_M = 8.0  # a stayer may walk out only from this close to a street door's centre (fewer: a stronger oracle)
READ_BEFORE_S = 20.0  # readings weighed from this long before the first branch: 5 shadowing times, and the offset
SEGMENT_S = 30.0  # a stayer's visit is weighed in pieces of this many seconds of branch times (memory, not results)
NUDGE_M = 1e-3  # a standing leg this long gives a stand its facing (`_Oracle.means` takes headings from legs)
FAR_S = 1e6  # "for ever" on the hypotheses' clock


@dataclass(frozen=True, slots=True)
class _Paths:
    """Hypothesised paths: knot times (H, K), points (H, K, 2), crossing time (H,), door (H,), end (H,)."""

    kt: np.ndarray
    kx: np.ndarray
    cross: np.ndarray
    door: np.ndarray
    end: np.ndarray


def inside_spots(store: StoreFile) -> np.ndarray:
    """(S, 2) points STAY_STEP_M apart on every zone that is not outside, clear of walls."""
    plan = FloorPlan(store)
    out = []
    for z in store.zones:
        if z.kind == ZoneKind.OUTSIDE:
            continue
        poly = np.asarray(z.polygon, float)
        lo, hi = poly.min(axis=0), poly.max(axis=0)
        for x in np.arange(lo[0] + STAY_STEP_M / 2, hi[0], STAY_STEP_M):
            for y in np.arange(lo[1] + STAY_STEP_M / 2, hi[1], STAY_STEP_M):
                p = np.asarray([x, y])
                if plan.clear(p, z.id):
                    out.append(p)
    return np.asarray(out, float).reshape(-1, 2)


def _stack(paths: list[tuple[list[np.ndarray], list[float], float, str, float]]) -> _Paths:
    """Knot lists of differing lengths, padded with their last knot, as arrays."""
    k = max(len(p[0]) for p in paths)
    kt = np.asarray([[*t, *[t[-1]] * (k - len(t))] for _, t, *_ in paths], float)
    kx = np.asarray([[*x, *[x[-1]] * (k - len(x))] for x, *_ in paths], float)
    return _Paths(kt, kx, np.asarray([p[2] for p in paths]), np.asarray([p[3] for p in paths]),
                  np.asarray([p[4] for p in paths]))


def staying(branches: list[tuple[float, np.ndarray]], spots: np.ndarray) -> _Paths:
    """"Still inside" paths: from the true position at each branch time, stand there facing any of
    STAND_HEADINGS directions, or walk to any inside spot (along x then y, or y then x, so that
    the legs' headings stay few) and stand there facing the way they came; never crossing."""
    paths = []
    angles = 2 * np.pi * np.arange(STAND_HEADINGS) / STAND_HEADINGS
    for ts, p in branches:
        for a in angles:
            paths.append(([p, p + NUDGE_M * np.asarray([np.cos(a), np.sin(a)])], [ts, FAR_S], np.inf, "", FAR_S))
        for q in spots:
            for corner in (np.asarray([q[0], p[1]]), np.asarray([p[0], q[1]])):
                pts, t = [p], [ts]
                for x in (corner, q):
                    length = float(np.hypot(*(x - pts[-1])))
                    if length > 0:
                        t.append(t[-1] + length / STAY_SPEED_MPS)
                        pts.append(x)
                if len(pts) > 1:
                    step = pts[-1] - pts[-2]
                    face = q + NUDGE_M * step / float(np.hypot(*step))
                    paths.append(([*pts, face], [*t, FAR_S], np.inf, "", FAR_S))
    return _stack(paths)


def walking_out(branches: list[tuple[float, np.ndarray]], lanes_: list[Lane]) -> _Paths:
    """Walk-out paths (entering backwards): from the true position at each branch time along the
    door's front to in line with it, straight out through the door, out to a lane offset and along
    the lane to either end of the outside zone, at any of the walk-in speeds; then gone."""
    paths = []
    for ts, p in branches:
        for ln in lanes_:
            line = ln.centre + float((p - ln.centre) @ ln.away) * ln.away  # in line with the door
            for v in WALK_IN_SPEEDS:
                t_line = ts + float(np.hypot(*(line - p))) / v
                tc = t_line + float(np.hypot(*(ln.centre - line))) / v
                for s0 in ln.s_range:
                    for off in ln.offsets:
                        pts = [p, line, ln.centre, ln.centre + off * ln.away, ln.centre + off * ln.away + s0 * ln.along]
                        t = [ts, t_line, tc, tc + off / v, tc + (off + abs(s0)) / v]
                        paths.append((pts, t, tc, ln.door, t[-1]))
    return _stack(paths)


class _Branching:
    """An oracle whose hypotheses follow the true path until their first knot's time: the events
    before it get the true path's exact means (`_Oracle.exact`), later ones the tables'."""

    def __init__(self, orc: _Oracle, true_mean: np.ndarray):
        self.orc, self.true_mean = orc, true_mean

    def means(self, r: _Readings, knots_t: np.ndarray, knots_xy: np.ndarray, carry: int) -> np.ndarray:
        m = self.orc.means(r, knots_t, knots_xy, carry)
        before = r.t[:, None] < knots_t[None, :, 0]
        return np.where(before, self.true_mean[: len(r.t), None], m)


class _Agents:
    """Each agent's readings and misses between two times, and their true means."""

    def __init__(self, world: World, em: Emitter, rec: Recording, orc: _Oracle):
        self.em, self.rec, self.orc = em, rec, orc
        self.p = radio_params(world)
        self.limit = max([abs(a.tx_offset_db) for a in world.agents], default=0.0)  # any offset the world has
        self.by_agent = np.argsort(rec.agent, kind="stable")
        self.bounds = np.searchsorted(rec.agent[self.by_agent], np.arange(len(world.agents) + 1))
        self.sent = np.argsort(rec.sent_agent, kind="stable")
        self.sent_bounds = np.searchsorted(rec.sent_agent[self.sent], np.arange(len(world.agents) + 1))

    def readings(self, i: int, start: float, until: float, beyond: bool = False, misses: bool = True) -> _Readings:
        """Agent i's readings and misses from start to until; with `beyond`, also the adverts a
        phone still there would have sent after the agent left the world (nobody heard them)."""
        rec = self.rec
        sel = self.by_agent[self.bounds[i] : self.bounds[i + 1]]
        sel = sel[(rec.t[sel] >= start) & (rec.t[sel] <= until)]
        if not misses:
            return _Readings(rec.t[sel], rec.node[sel], rec.rssi[sel], self.p, self.limit)
        tx = rec.sent_t[self.sent[self.sent_bounds[i] : self.sent_bounds[i + 1]]]
        if beyond and len(tx):
            every = self.em.interval[i]
            tx = np.concatenate([tx, tx.max() + every * np.arange(1, (until - tx.max()) // every + 1)])
        tx = tx[(tx >= start) & (tx <= until)]
        return _Readings(rec.t[sel], rec.node[sel], rec.rssi[sel], self.p, self.limit, tx, len(self.em.nodes))

    def truth(self, r: _Readings, i: int) -> tuple[np.ndarray, _Branching]:
        """The true path's log-likelihood at every prefix of r (silent once the agent left the
        world: what a hypothesis still there would have sent costs it nothing), and an oracle
        branching off it."""
        idx = np.full(len(r.t), i)
        xy, angle = self.em.traj.positions(idx, r.t), self.em.headings(idx, r.t)
        mean = self.orc.exact(r, xy, angle, int(self.em.carry[i]))  # as `sim.entry_bound._true_ll`
        gone = np.asarray([self.em.traj.t_end[i]])
        return r.prefix_ll(mean[:, None], gone)[:, 0], _Branching(self.orc, mean)

    def branches(self, i: int, times: np.ndarray) -> list[tuple[float, np.ndarray]]:
        xy = self.em.traj.positions(np.full(len(times), i), times)
        return [(float(t), np.asarray(p, float)) for t, p in zip(times, xy, strict=True)]


def _leaver_margins(ag: _Agents, spots: np.ndarray, i: int, tx: float, lat: np.ndarray) -> np.ndarray:
    """True path minus the best "still inside" explanation, for the events up to tx + each latency."""
    first = tx - BRANCH_BEFORE_S
    r = ag.readings(i, first - READ_BEFORE_S, tx + lat[-1], beyond=True)  # staying, they would still be heard
    if not len(r.t):
        return np.zeros(len(lat))
    k = r.count(tx + lat)
    true, orc = ag.truth(r, i)
    h = staying(ag.branches(i, np.arange(first, tx + 1e-9, BRANCH_STEP_S)), spots)
    rows = np.broadcast_to(k[None, :], (len(h.kt), len(lat)))
    best = _best_score(orc, r, int(ag.em.carry[i]), (h.kt, h.kx), rows,  # type: ignore[arg-type]  # duck-typed oracle: only `means` is used
                       np.zeros(rows.shape), None, -np.inf)
    return true[k] - best


def _stayer_scores(ag: _Agents, i: int, span: tuple[float, float], lat: np.ndarray,
                   evidence: tuple[DoorEvidence | None, ...]) -> list[np.ndarray]:
    """Best walked-out explanation minus the truth, per latency after the hypothesised crossing, for
    someone inside from span[0] to span[1] (a walk-out counts only while its horizon is before
    span[1]); one row per entry of `evidence`, as `sim.entry_bound._passer_scores`."""
    out = [np.zeros(len(lat)) for _ in evidence]
    walk = max(abs(s) for ln in ag.orc.lanes for s in ln.s_range) / min(WALK_IN_SPEEDS)
    doors = np.asarray([ln.centre for ln in ag.orc.lanes])
    for s in np.arange(span[0], span[1], SEGMENT_S):
        branches = [(t, p) for t, p in ag.branches(i, np.arange(s, min(s + SEGMENT_S, span[1]), STAYER_STEP_S))
                    if np.hypot(*(doors - p).T).min() <= NEAR_DOOR_M]
        if not branches:
            continue
        # the readings alone: with the misses (each independent given the link's readings) a quiet
        # phone's true path is over-charged for runs of misses (docs/scenarios.md)
        r = ag.readings(i, branches[0][0] - READ_BEFORE_S, min(span[1], branches[-1][0] + walk + lat[-1]),
                        misses=False)
        if not len(r.t):
            continue
        true, orc = ag.truth(r, i)
        h = walking_out(branches, ag.orc.lanes)
        horizon = h.cross[:, None] + lat[None, :]
        rows = r.count(horizon)
        inside = horizon < span[1]  # the person was truly inside at the horizon
        gone = r.n_read[rows] <= r.n_read[r.count(h.end)][:, None]  # no reading after the walk ended
        for k, ev in enumerate(evidence):
            sub = np.where(inside & gone, true[rows], np.inf)
            if ev is not None:
                for d in np.unique(h.door):
                    sub[h.door == d] -= ev.log_ratio(str(d), h.cross[h.door == d], horizon[h.door == d], inward=False)
            best = _best_score(orc, r, int(ag.em.carry[i]), (h.kt, h.kx), rows, sub,  # type: ignore[arg-type]  # duck-typed oracle
                               h.end, 0.0)
            out[k] = np.maximum(out[k], best)
    return out


def all_margins(world: World, em: Emitter, rec: Recording, evidence: tuple[DoorEvidence | None, ...]
                ) -> tuple[dict, list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(leavers' exit times by agent id, leaver margins (E, L) and stayer scores (P, L) per entry of
    `evidence` (None: the radio alone), latency grid). Leavers are the consenting regulars whose
    exit and LATENCY_MAX_S after it are in the run; stayers every consenting regular inside."""
    lat = np.union1d(np.arange(0.0, LATENCY_MAX_S + 1e-9, LATENCY_STEP_S), LATENCIES_S)
    store, duration = world.store, world.scenario.scenario.duration_s
    spots = inside_spots(store)
    outline = np.concatenate([np.asarray(z.polygon, float) for z in store.zones])
    ag = _Agents(world, em, rec, _Oracle(em, lanes(store), [outline]))
    leavers, margins, scores = {}, [], []
    for i, a in enumerate(world.agents):
        if a.kind != AgentKind.REGULAR or a.customer is None or not a.customer.recognition_consent \
                or a.entered_at is None:
            continue
        end = a.left_at if a.left_at is not None else duration
        scores.append(_stayer_scores(ag, i, (a.entered_at, min(end, duration)), lat, evidence))
        if a.left_at is None or a.left_at + lat[-1] > duration:
            continue
        leavers[a.id] = a.left_at
        radio = _leaver_margins(ag, spots, i, a.left_at, lat)
        # the "still inside" explanation made no crossing: the door's evidence is the true exit's alone
        margins.append([radio if ev is None else radio + ev.log_ratio(
            ev.left_by.get((a.id, a.left_at)), np.asarray([a.left_at]), a.left_at + lat[None, :], inward=False)[0]
            for ev in evidence])
    return (leavers, [np.asarray([m[k] for m in margins]).reshape(-1, len(lat)) for k in range(len(evidence))],
            [np.asarray([s[k] for s in scores]).reshape(-1, len(lat)) for k in range(len(evidence))], lat)


def left_bound(sc: Scenario, store: StoreFile, tick_s: float = 1.0, door: bool = False) -> dict:
    """The oracle's figures for one scenario (its seed) as a JSON-ready dict; with `door`, also
    those of the oracle that weighs the door sensor's reports too (`door`)."""
    _, evidence, (leavers, margins, scores, lat) = door_oracle_run(sc, store, tick_s, door, all_margins)
    out = {"scenario": sc.scenario.name, "seed": sc.scenario.seed, "duration_s": sc.scenario.duration_s,
           "leavers": len(leavers), "stayers": len(scores[0]),
           **summarise(margins[0], scores[0], lat, LATENCIES_S, FALSE_ALARMS)}
    if evidence is not None:
        out["door"] = {"reports": len(evidence.reports), **summarise(margins[1], scores[1], lat, LATENCIES_S,
                                                                      FALSE_ALARMS)}
    return out


def summary(out: dict) -> str:
    """A seed's output as lines a person reads: leave latency p50 / p95 per false-alarm budget."""

    def row(name: str, part: dict) -> str:
        cells = [f"F={x['false_alarms']}: {x['p50_s']} / {x['p95_s']} s" for x in part["latency"]]
        return f"  {name}: p50 / p95 " + ", ".join(cells)

    lines = [f"{out['scenario']} seed {out['seed']}: {out['leavers']} leavers, {out['stayers']} stayers "
             f"(None: too many not separated within {LATENCY_MAX_S} s)", row("radio", out)]
    if "door" in out:
        lines.append(row(f"radio + door ({out['door']['reports']} reports)", out["door"]))
    return "\n".join(lines)


if __name__ == "__main__":
    bound_cli(__doc__, left_bound, DOOR_FLAG, text=summary)
