"""How fast could *any* engine announce an entry without announcing passers-by? (an oracle)

Per latency it weighs an entrant's readings along the true path against the best walk-past (and
the reverse for passers-by) with the radio model's own likelihood: by Neyman-Pearson no engine
does better. Walking past may stop at the shop window, as the scenario's window shoppers do.
With --door it also sees every door-sensor report (`sim.door_evidence`).
docs/scenarios.md, "How fast could any engine announce an entry?".
    python -m sim.entry_bound sim/scenarios/boutique.toml [--seeds 1-3] [--duration S] [--door]
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import dataclass

import numpy as np
from scipy.special import log_expit

from firmware_config.geometry import door_opening, point_in_polygon
from firmware_config.store import StoreFile, ZoneKind
from sim.door_evidence import DoorEvidence
from sim.emitter import Emitter, Reception, radio_params
from sim.lanes import FRONT_END_M, Lanes, project
from sim.lanes import LANE_EDGE_M as PASSER_EDGE_M
from sim.paths import FloorPlan
from sim.radio import RadioParams, body_loss, mean_rssi
from sim.scenario import Population, Scenario, ScenarioError, load_scenario
from sim.world import PASSER_BY_SPEED_MPS, WINDOW_GAP_M, AgentKind, World, build_world

LATENCIES_S = (1.2, 2.5, 3.0, 4.0, 5.0, 10.0)  # the latencies the issues' targets are stated at
FALSE_ALARMS = (0, 1, 2, 5)  # passers-by the oracle may announce
LATENCY_STEP_S = 0.25  # resolution of the oracle's own latency percentiles
LATENCY_MAX_S = 20.0  # an entrant not separated by then counts as "later than this"
PASSER_SPEEDS = np.linspace(0.9, 1.6, 8)  # walking past: the simulator's passer-by speeds
WALK_IN_SPEEDS = np.linspace(0.9, 1.6, 4)  # walking in: a coarser grid of the same range
WALK_IN_DEPTHS_M = (2.0, 5.0)  # a walker turning in goes straight in this far, then stops
LANE_STEP_M = 0.5  # spacing of the lane offsets tried (passers-by spread over the pavement)
LANE_EDGE_M = 0.2  # nobody walks closer than this to the shop front or the kerb
TIME_STEP_S = 0.25  # spacing of the passing / crossing times tried (half an advert interval)
ROUNDING_VAR_DB2 = 1.0 / 12.0  # radios report whole dBm: rounding adds this variance
CHUNK_POSITIONS = 150_000  # hypothesised positions evaluated at once (memory, not results)
MEANS_CACHE_POSITIONS = 40_000_000  # hypothesised means kept between the two passes (320 MB at most)
GRID_STEP_M = 0.05  # mean tables for hypotheses: far below the 2 dB fading, a few cm off at walls
OFFSET_STEP_DB = 2.0  # transmit offsets where the misses are weighed; far finer than their ~5-dB edge
COARSE_OFFSETS = 5  # offsets the misses are weighed at to bound a hypothesis before weighing it fully
TOP_FIRST = 4  # hypotheses per horizon fully weighed first, to prune the rest (speed only)
WINDOW_PLACE_STEP_M = 2.5  # stop places along the shop front this far apart, from in front of each street door out
DOOR_ON_FRONT_M = 0.3  # a door's centre this close to a stretch of shop front is on it (walls are thinner)
WINDOW_GAPS = 3  # stop distances from the front tried, spread over the simulator's WINDOW_GAP_M
WINDOW_DWELLS = 3  # dwells tried, spread over the scenario's window_dwell_s (a long stand explains any shorter one)
WINDOW_SPEED_MPS = float(np.mean(PASSER_BY_SPEED_MPS))  # one walking pace to and from the stop: the stand dominates
WINDOW_TIME_STEP_S = 0.5  # spacing of a stopping walk's start times: coarser than walking past, to stay tractable
PROBIT_SCALE = np.pi / 8  # E[logistic(x)], x ~ N(m, v) ~= logistic(m / sqrt(1 + v pi / 8)) (probit match)


def extra_terms_db(tx_xy: np.ndarray, heading: np.ndarray, rx_xy: np.ndarray, carry: int, body_db: float) -> np.ndarray:
    """Deterministic per-(advertisement, node) terms beyond `mean_rssi`, shape (T, R): the
    wearer's body (`sim.radio.body_loss`) for the agent's own carry position.

    `heading` holds unit walking directions; standing still (0) is taken as facing +x, where the
    simulator keeps the last direction walked (a small misfit of the hypotheses, not of true paths,
    which `_true_ll` evaluates with the emitter's own headings).
    """
    angle = np.arctan2(heading[:, 1], heading[:, 0])
    return -body_loss(tx_xy, angle, np.full(len(tx_xy), carry), rx_xy, body_db)


@dataclass(frozen=True, slots=True)
class Lane:
    """A street door seen from the pavement: where walkers turn in (passers-by: `passer_lanes`)."""

    centre: np.ndarray  # middle of the door opening
    along: np.ndarray  # unit vector along the front
    away: np.ndarray  # unit normal into the outside zone
    s_range: tuple[float, float]  # the outside zone's extent along the front, from the centre
    offsets: np.ndarray  # lane offsets tried, metres from the front
    door: str  # the street door's id


def lanes(store: StoreFile) -> list[Lane]:
    """One lane family per declared street door, spanning its outside zone."""
    kinds = {z.id: z.kind for z in store.zones}
    out = []
    for d in store.street_doors():
        outside = next((z for z in d.zones if kinds.get(z) == ZoneKind.OUTSIDE), None)
        if outside is None:
            continue
        other = d.zones[1] if d.zones[0] == outside else d.zones[0]
        opoly = list(store.zone(outside).polygon)
        j1, j2 = door_opening(d.position, d.width_m, opoly, list(store.zone(other).polygon))
        a, b = np.asarray(j1, float), np.asarray(j2, float)
        centre = (a + b) / 2
        along = (b - a) / max(float(np.hypot(*(b - a))), 1e-9)
        away = np.asarray([-along[1], along[0]])
        if not point_in_polygon(tuple(centre + 0.2 * away), opoly):
            away = -away
        rel = np.asarray(opoly, float) - centre
        s, depth = rel @ along, float((rel @ away).max())
        offsets = np.arange(LANE_EDGE_M, max(LANE_EDGE_M, depth - LANE_EDGE_M) + 1e-9, LANE_STEP_M)
        out.append(Lane(centre, along, away, (float(s.min()), float(s.max())), offsets, d.id))
    return out


def passer_lanes(store: StoreFile) -> list[np.ndarray]:
    """Every lane a passer-by may walk (`sim.lanes`, as the simulator plans them): along each
    outside zone, with or without a door, LANE_STEP_M apart across it; (K, 2) points each."""
    ln = Lanes(store, FloorPlan(store))
    return [ln.lane(z, float(off)) for z in ln.zones
            for off in np.arange(PASSER_EDGE_M, max(PASSER_EDGE_M, ln.width(z) - PASSER_EDGE_M) + 1e-9, LANE_STEP_M)]


def window_walks(store: StoreFile, lane_m: float) -> list[tuple[np.ndarray, int]]:
    """Walks that stop at the shop front as the simulator's window shoppers do (`sim.world._walk_past`):
    along the scenario's lane of an outside zone, either way, out to a spot WINDOW_PLACE_STEP_M apart
    along the front at one of WINDOW_GAPS distances from it, back into the lane and on. Each is its
    points (K, 2) and the index of the first of its two knots at the spot (where it stands)."""
    ln = Lanes(store, FloorPlan(store))
    doors = [ld.centre for ld in lanes(store)]
    out = []
    for z in ln.zones:
        lane = ln.lane(z, lane_m)
        for spot in _front_spots(ln, z, doors):
            for pts in (lane, lane[::-1]):
                k, q = project(pts, spot)
                out.append((np.asarray([*pts[: k + 1], q, spot, spot, q, *pts[k + 1 :]], float), k + 2))
    return out


def _front_spots(ln: Lanes, zone: str, doors: list[np.ndarray]) -> list[np.ndarray]:
    """Where a window shopper may stand in front of the zone's shop front (`Lanes.window_spot`'s
    spots, on a grid instead of drawn): the grid runs from in front of a street door on that
    stretch of front (the spot most like walking in), else from the stretch's middle."""
    out = []
    for front_a, front_b in ln.front[zone]:
        a, b = np.asarray(front_a, float), np.asarray(front_b, float)
        length = float(np.hypot(*(b - a)))
        if length <= 0:
            continue
        end = min(FRONT_END_M, length / 2)
        along = (b - a) / length
        normal = np.asarray([-along[1], along[0]])
        if not point_in_polygon(tuple((a + b) / 2 + 0.1 * normal), ln.plan.polys[zone]):
            normal = -normal
        on = [float((c - a) @ along) for c in doors if abs(float((c - a) @ normal)) < DOOR_ON_FRONT_M]
        anchor = next((u for u in on if end <= u <= length - end), length / 2)
        us = anchor + WINDOW_PLACE_STEP_M * np.arange(-np.floor((anchor - end) / WINDOW_PLACE_STEP_M),
                                                      np.floor((length - end - anchor) / WINDOW_PLACE_STEP_M) + 1)
        for u in us:
            for gap in np.linspace(*WINDOW_GAP_M, WINDOW_GAPS):
                p = a + u * along + gap * normal
                if ln.plan.clear(p, zone):
                    out.append(p)
    return out


@dataclass(frozen=True, slots=True)
class Recording(Reception):
    """Every reception of a run, and every advertisement sent (heard or not), in time order."""

    sent_t: np.ndarray
    sent_agent: np.ndarray


def record_radio(world: World, seed: int, tick_s: float = 1.0) -> tuple[Emitter, Recording]:
    """Every reception of a run, stepped as `sim.run.run_fast` steps it (same seed, same tick)."""
    em = Emitter(world, seed=seed)
    duration = world.scenario.scenario.duration_s
    parts, sent = [], []
    for i in range(int(np.ceil(duration / tick_s - 1e-9))):
        parts.append(em.step_arrays(i * tick_s, min((i + 1) * tick_s, duration)))
        sent.append(em.sent)
    parts = [p for p in parts if len(p)]
    cat = [np.concatenate([getattr(p, f) for p in parts]) if parts else np.zeros(0, dt)
           for f, dt in (("t", float), ("agent", np.int64), ("node", np.int64), ("rssi", np.int16))]
    return em, Recording(
        t=cat[0], agent=cat[1], node=cat[2], rssi=cat[3],
        sent_t=np.concatenate([s[0] for s in sent] or [np.zeros(0)]),
        sent_agent=np.concatenate([s[1] for s in sent] or [np.zeros(0, np.int64)]),
    )


class _Readings:
    """One agent's readings and misses, and their log-likelihood under any hypothesised mean.

    Events are the readings and, from the first reading on, every (advertisement, node) pair
    that was not heard. Each link (agent, node) is slow AR(1) shadowing plus per-packet fading:
    a Kalman filter per link turns its readings into independent innovations whose gains do not
    depend on the hypothesised mean, so one pass, vectorised over hypotheses, whitens them all,
    and prefix sums in time order give the likelihood at every horizon. A miss costs
    log(1 - P(heard)), with the link's shadowing predicted from its earlier readings (a reading's
    own chance of being heard depends only on its level, the same under every hypothesis).
    """

    def __init__(self, t: np.ndarray, node: np.ndarray, rssi: np.ndarray, p: RadioParams, offset_limit: float,
                 sent: np.ndarray | None = None, n_nodes: int = 0):
        self.p = p
        t, node, y = np.asarray(t, float), np.asarray(node, np.int64), np.asarray(rssi, float)
        read = np.ones(len(t), bool)
        if sent is not None and len(t):
            tx = np.unique(sent[sent >= t.min()])
            heard = np.zeros((len(tx), n_nodes), bool)
            heard[np.searchsorted(tx, t), node] = True
            i, j = np.nonzero(~heard)
            t, node = np.concatenate([t, tx[i]]), np.concatenate([node, j])
            y, read = np.concatenate([y, np.full(len(i), np.nan)]), np.concatenate([read, np.zeros(len(i), bool)])
        order = np.lexsort((node, t))
        self.t, self.node, self.read = t[order], node[order], read[order]
        self.ri, self.mi = np.flatnonzero(self.read), np.flatnonzero(~self.read)
        self.y = y[order][self.ri]
        self.n_read = np.concatenate([[0], np.cumsum(self.read)])  # readings among the first k events
        n = len(self.ri)
        noise = p.fading_sigma_db**2 + ROUNDING_VAR_DB2
        var_s = p.shadowing_sigma_db**2
        self.link = self.node[self.ri]
        self.a, self.gain, self.scale, post = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
        last_t: dict[int, float] = {}
        last_p: dict[int, float] = {}
        for k, (j, tk) in enumerate(zip(self.link.tolist(), self.t[self.ri].tolist(), strict=True)):
            a: float
            if j in last_t:
                a = float(self._decay(tk - last_t[j]))
                pred = a * a * last_p[j] + var_s * (1 - a * a)
            else:
                a, pred = 0.0, var_s
            total = pred + noise
            self.a[k], self.gain[k], self.scale[k] = a, pred / total, 1 / np.sqrt(total)
            last_t[j], last_p[j] = tk, (1 - pred / total) * pred
            post[k] = last_p[j]
        # a miss: the link's last reading before it (-1: none), the decay since, the spread of its level
        tm, nm = self.t[self.mi], self.node[self.mi]
        self.m_last = np.full(len(self.mi), -1)
        for j in np.unique(nm):
            at = np.flatnonzero(self.link == j)
            if not len(at):
                continue  # a node that never heard them: nothing to predict its shadowing from
            sel = nm == j
            k = np.searchsorted(self.t[self.ri][at], tm[sel], side="right") - 1
            self.m_last[sel] = np.where(k >= 0, at[np.maximum(k, 0)], -1)
        has = self.m_last >= 0
        self.m_a = np.where(has, self._decay(tm - self.t[self.ri][np.maximum(self.m_last, 0)]), 0.0) * has
        var = np.where(has, self.m_a**2 * post[np.maximum(self.m_last, 0)] if n else 0.0, 0.0)
        var = var + var_s * (1 - self.m_a**2) + p.fading_sigma_db**2
        self.m_sd = np.sqrt(p.loss_width_db**2 + PROBIT_SCALE * var)  # the logistic edge widened by it
        rank = np.zeros(n, np.int64)  # how many earlier readings the same link has
        for j in np.unique(self.link):
            at = np.flatnonzero(self.link == j)
            rank[at] = np.arange(len(at))
        self._rounds = [(k, self.link[k]) for k in (np.flatnonzero(rank == i) for i in range(rank.max(initial=-1) + 1))]
        self.u, filt_u = self._whiten(np.ones((n, 1)))
        self.u, self.m_u = self.u[:, 0], self._predict(filt_u)[:, 0]
        self.u2 = np.concatenate([[0.0], np.cumsum(self._spread(self.u**2))])
        self.limit = offset_limit  # the best transmit offset is searched within +/- this
        steps = int(np.ceil(2 * offset_limit / OFFSET_STEP_DB)) if offset_limit > 0 else 0
        self.offsets = np.linspace(-offset_limit, offset_limit, steps + 1) if steps else np.zeros(1)

    def head(self, k: int) -> _Readings:
        """The same readings cut after the first k events: every term is causal, so the
        likelihood of any prefix up to k is unchanged, and cheaper."""
        nr = int(self.n_read[k])
        nm = k - nr
        out = copy.copy(self)
        out.t, out.node, out.read, out.n_read, out.u2 = self.t[:k], self.node[:k], self.read[:k], \
            self.n_read[: k + 1], self.u2[: k + 1]
        out.ri, out.y, out.link, out.a, out.gain, out.scale, out.u = (  # type: ignore[assignment]  # slices alike
            x[:nr] for x in (self.ri, self.y, self.link, self.a, self.gain, self.scale, self.u))
        out.mi, out.m_last, out.m_a, out.m_sd, out.m_u = (
            x[:nm] for x in (self.mi, self.m_last, self.m_a, self.m_sd, self.m_u))
        out._rounds = [(i[i < nr], j[i < nr]) for i, j in self._rounds if i[0] < nr]
        return out

    def _decay(self, dt: np.ndarray | float) -> np.ndarray:
        tau = self.p.shadowing_tau_s
        return np.exp(-np.asarray(dt) / tau) if tau > 0 else np.zeros_like(np.asarray(dt, float))

    def _spread(self, x: np.ndarray) -> np.ndarray:
        """Values per reading (n, ...) -> per event, zero at misses."""
        out = np.zeros((len(self.t), *x.shape[1:]))
        out[self.ri] = x
        return out

    def _predict(self, filt: np.ndarray) -> np.ndarray:
        """The shadowing each miss's link is expected to have, from its filtered states (n, H)."""
        if not len(filt):
            return np.zeros((len(self.mi), filt.shape[1]))
        return self.m_a[:, None] * filt[np.maximum(self.m_last, 0)]

    def _whiten(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Innovations / their sd of residuals x (n, H), link by link in time order, and the
        filtered shadowing after each reading. Links are independent, so the i-th readings of
        all links are filtered in one step (`_rounds`)."""
        state = np.zeros((int(self.link.max()) + 1 if len(self.link) else 0, x.shape[1]))
        out, filt = np.empty_like(x), np.empty_like(x)
        for k, j in self._rounds:
            a = self.a[k, None]
            e = x[k] - a * state[j]
            out[k] = e * self.scale[k, None]
            state[j] = filt[k] = a * state[j] + self.gain[k, None] * e
        return out, filt

    def prefix_ll(self, mean: np.ndarray, until: np.ndarray | None = None) -> np.ndarray:
        """(events + 1, H): log-likelihood (up to a shared constant) of the first k events under
        each of H means (events, H), at the best transmit offset for that prefix."""
        rows = np.broadcast_to(np.arange(len(self.t) + 1)[:, None], (len(self.t) + 1, mean.shape[1]))
        return self.ll_at(mean, rows, until)

    def ll_at(self, mean: np.ndarray, rows: np.ndarray, until: np.ndarray | None = None,
              upper: bool = False) -> np.ndarray:
        """(S, H): log-likelihood of the first rows[s, h] events under mean[:, h]. Misses after
        `until` (H,) cost nothing: the hypothesised person has gone and sends nothing. With
        `upper`, a cheaper upper limit of it: the misses weighed at COARSE_OFFSETS offsets only,
        each standing for the offsets above it (a louder phone is missed less)."""
        e, filt = self._whiten(self.y[:, None] - mean[self.ri])
        z = np.zeros((1, e.shape[1]))
        reads = self.n_read[rows]  # prefix sums over the readings alone: misses add nothing here
        e2 = np.take_along_axis(np.concatenate([z, np.cumsum(e * e, axis=0)]), reads, axis=0)
        ue = np.take_along_axis(np.concatenate([z, np.cumsum(self.u[:, None] * e, axis=0)]), reads, 0)
        u2 = self.u2[rows]
        if not len(self.mi):
            with np.errstate(invalid="ignore", divide="ignore"):
                o = np.clip(np.where(u2 > 0, ue / u2, 0.0), -self.limit, self.limit)
            return -0.5 * (e2 - 2 * o * ue + o * o * u2)
        p = self.p
        o = np.linspace(self.offsets[0], self.offsets[-1], min(COARSE_OFFSETS, len(self.offsets))) if upper \
            else self.offsets
        base = (mean[self.mi] + self._predict(filt) - p.sensitivity_dbm) / self.m_sd[:, None]
        slope = ((1 - self.m_u) / self.m_sd)[:, None] * o  # (M, offsets): how the offset moves each miss
        if p.packet_loss > 0:  # log P(missed) = log(1 - (1 - loss) expit(x)), exp(-x) as a product: one exp per (M, H)
            with np.errstate(over="ignore"):
                z = np.exp(-base)[..., None] * np.exp(-slope)[:, None, :]  # (M, H, offsets)
            miss = np.log1p(-(1 - p.packet_loss) / (1 + z))
        else:
            miss = log_expit(-(base[..., None] + slope[:, None, :]))
        if until is not None:
            miss *= (self.t[self.mi][:, None] <= until[None, :])[..., None]
        d = np.concatenate([np.zeros((1, *miss.shape[1:])), np.cumsum(miss, axis=0)])
        d = np.take_along_axis(d, (rows - self.n_read[rows])[..., None], axis=0)  # misses among the first rows
        return self._best_offset(e2[..., None], ue[..., None], u2[..., None], d, o, upper)

    @staticmethod
    def _best_offset(e2: np.ndarray, ue: np.ndarray, u2: np.ndarray, d: np.ndarray, o: np.ndarray,
                     upper: bool) -> np.ndarray:
        """Max over the offset of the Gaussian part (quadratic in it) plus the misses' part, known
        on the offset grid o and taken as linear between its points (it is smooth and concave);
        `upper`: the misses' part taken as its value at each grid point's lower end instead."""

        def total(x: np.ndarray, dx: np.ndarray) -> np.ndarray:
            return -0.5 * (e2 - 2 * x * ue + x * x * u2) + dx

        best = total(o, d).max(axis=2)
        if len(o) > 1 and upper:
            with np.errstate(invalid="ignore", divide="ignore"):
                x = np.clip(np.where(u2 > 0, ue / u2, 0.0), o[:-1], o[1:])
            best = np.maximum(best, total(x, d[..., :-1]).max(axis=2))
        elif len(o) > 1:
            slope = np.diff(d, axis=2) / np.diff(o)
            with np.errstate(invalid="ignore", divide="ignore"):
                top = np.where(u2 > 0, (ue + slope) / u2, np.where(ue + slope > 0, np.inf, -np.inf))
            x = np.clip(top, o[:-1], o[1:])
            best = np.maximum(best, total(x, d[..., :-1] + slope * (x - o[:-1])).max(axis=2))
        return best

    def count(self, horizon: np.ndarray) -> np.ndarray:
        """Events at or before each horizon time."""
        return np.searchsorted(self.t, horizon, side="right")


class _Oracle:
    """Means of hypothesised paths at one agent's reading times and nodes.

    Hypotheses are evaluated by the thousand, so their means come from tables of `mean_rssi`
    (plus `extra_terms_db`) on a GRID_STEP_M grid over the pavement and the door's surroundings,
    interpolated bilinearly; true paths use `mean_rssi` directly.
    """

    def __init__(self, em: Emitter, lanes_: list[Lane], paths: list[np.ndarray],
                 stops: list[tuple[np.ndarray, int]] | None = None, window: Population | None = None):
        self.em, self.lanes, self.paths, self.stops = em, lanes_, paths, stops or []
        share = window.window_shopper_fraction if window is not None else 0.0
        self.share, self.dwells = share, np.linspace(*window.window_dwell_s, WINDOW_DWELLS) if window else np.zeros(0)
        self.params = em.params
        pts = [ln.centre + s * ln.along + o * ln.away for ln in lanes_ for s in ln.s_range
               for o in (ln.offsets[-1] + LANE_EDGE_M, -max(WALK_IN_DEPTHS_M))] + \
            [p for path in [*paths, *(w for w, _ in self.stops)] for p in path]
        lo = np.min(pts, axis=0) - 2 * GRID_STEP_M if pts else np.zeros(2)
        hi = np.max(pts, axis=0) + 2 * GRID_STEP_M if pts else np.ones(2)
        self.origin = lo
        self.shape = np.ceil((hi - lo) / GRID_STEP_M).astype(int) + 1
        gx, gy = (lo[i] + GRID_STEP_M * np.arange(self.shape[i]) for i in range(2))
        self.grid = np.stack(np.meshgrid(gx, gy, indexing="ij"), axis=-1).reshape(-1, 2)
        self.flat = np.zeros(0)  # every mean table built so far, flattened one after the other
        self.base: dict[tuple[float, float, int], int] = {}  # (heading, carry) -> its table's start in `flat`
        self.plain: np.ndarray | None = None  # `mean_rssi` on the grid, before the body's terms

    def _table(self, heading: tuple[float, float], carry: int) -> int:
        """Where the mean table for this walking direction and carry position starts in `flat`."""
        key = (*heading, carry)
        base = self.base.get(key)
        if base is None:
            em, g = self.em, self.grid
            head = np.broadcast_to(np.asarray(heading), g.shape)
            if self.plain is None:  # the same for every heading and carry: walls are slow to trace
                self.plain = mean_rssi(g, em.node_xy, np.zeros(len(g)), em.walls, em.wall_db, self.params,
                                       em.node_offset)
            tab = self.plain + extra_terms_db(g, head, em.node_xy, carry, self.params.body_loss_db)
            base = self.base[key] = len(self.flat)
            self.flat = np.concatenate([self.flat, tab.reshape(-1)])
        return base

    def means(self, r: _Readings, knots_t: np.ndarray, knots_xy: np.ndarray, carry: int,
              rows: np.ndarray | None = None) -> np.ndarray:
        """(n, H) mean RSSI at r's events (or those in `rows`) along H piecewise-linear paths (knot
        times (H, K), points (H, K, 2))."""
        ev_t, ev_node = (r.t, r.node) if rows is None else (r.t[rows], r.node[rows])
        t = ev_t[None, :, None]
        seg_t0, seg_t1 = knots_t[:, None, :-1], knots_t[:, None, 1:]
        f = np.clip((t - seg_t0) / np.maximum(seg_t1 - seg_t0, 1e-9), 0.0, 1.0)  # (H, n, K-1)
        step = knots_xy[:, 1:] - knots_xy[:, :-1]  # (H, K-1, 2)
        x, y = knots_xy[:, None, 0, 0], knots_xy[:, None, 0, 1]
        for k in range(step.shape[1]):
            x, y = x + f[..., k] * step[:, None, k, 0], y + f[..., k] * step[:, None, k, 1]
        length = np.maximum(np.hypot(step[..., 0], step[..., 1]), 1e-9)[..., None]
        unit = np.round(step / length, 3)  # (H, K-1, 2) walking direction of each leg
        codes, leg = np.unique(np.concatenate([[[0.0, 0.0]], unit.reshape(-1, 2)]), axis=0, return_inverse=True)
        leg = leg.reshape(-1)[1:].reshape(unit.shape[:2]) + 1  # 0 is reserved for standing still
        which = (((f > 0) & (f < 1)) * leg[:, None, :]).max(axis=2)  # (H, n): the leg walked, 0 if none
        bases = np.asarray([self._table((float(c[0]), float(c[1])), carry) for c in codes])
        still = bases[int(np.flatnonzero((codes == 0).all(axis=1))[0])]
        base = np.where(which > 0, bases[np.maximum(which - 1, 0)], still)
        return self._lookup(base, x, y, ev_node[None, :]).T

    def _lookup(self, base: np.ndarray, x: np.ndarray, y: np.ndarray, node: np.ndarray) -> np.ndarray:
        """Bilinear interpolation in the tables starting at `base`, at points (x, y), for `node`."""
        nx, ny, nr = int(self.shape[0]), int(self.shape[1]), len(self.em.node_xy)
        gx = np.clip((x - self.origin[0]) / GRID_STEP_M, 0, nx - 1.000001)
        gy = np.clip((y - self.origin[1]) / GRID_STEP_M, 0, ny - 1.000001)
        x0, y0 = np.floor(gx), np.floor(gy)
        fx, fy = gx - x0, gy - y0
        i = base + (x0.astype(np.int64) * ny + y0.astype(np.int64)) * nr + node
        tab = self.flat
        return ((1 - fx) * (1 - fy) * tab.take(i) + fx * (1 - fy) * tab.take(i + ny * nr)
                + (1 - fx) * fy * tab.take(i + nr) + fx * fy * tab.take(i + ny * nr + nr))

    def exact(self, r: _Readings, xy: np.ndarray, angle: np.ndarray, carry: int) -> np.ndarray:
        """Mean RSSI at each reading's own node for true positions (n, 2) and headings (radians)."""
        em = self.em
        out = np.empty(len(xy))
        for j in np.unique(r.node):
            sel = r.node == j
            rx = em.node_xy[j : j + 1]
            out[sel] = (mean_rssi(xy[sel], rx, np.zeros(sel.sum()), em.walls, em.wall_db, self.params,
                                  em.node_offset[j : j + 1])
                       - body_loss(xy[sel], angle[sel], np.full(sel.sum(), carry), rx, self.params.body_loss_db))[:, 0]
        return out

    def passing(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Walk-past paths there at time t: along every passer-by lane, either way, at every speed,
        starting every TIME_STEP_S; knots (shorter lanes end standing still) and (start, end)."""
        k = max(len(p) for p in self.paths)
        kt, kx, life = [], [], []
        for path in self.paths:
            for pts in (path, path[::-1]):
                pts = np.concatenate([pts, np.repeat(pts[-1:], k - len(pts), axis=0)])
                s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
                for v in PASSER_SPEEDS:
                    t0 = _grid(t - s[-1] / v, t)
                    kt.append(t0[:, None] + s[None, :] / v)
                    kx.append(np.broadcast_to(pts, (len(t0), k, 2)))
                    life.append(np.stack([t0, t0 + s[-1] / v], axis=1))
        return np.concatenate(kt), np.concatenate(kx), np.concatenate(life)

    def prior(self, stopped: bool) -> float:
        """log P(a passer-by stops at the window) or log P(walks straight past): the scenario's share."""
        p = self.share if stopped else 1.0 - self.share
        return float(np.log(p)) if p > 0 else -np.inf

    def stopping(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Window-shopper walks (`window_walks`) there at time t, for each dwell, starting every
        WINDOW_TIME_STEP_S; knots and (start, end) as `passing`."""
        kt, kx, life = [], [], []
        if not self.stops or not len(self.dwells) or self.share <= 0:
            return np.zeros((0, 1)), np.zeros((0, 1, 2)), np.zeros((0, 2))
        k = max(len(p) for p, _ in self.stops)
        for pts, stand in self.stops:
            pts = np.concatenate([pts, np.repeat(pts[-1:], k - len(pts), axis=0)])
            walked = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))]) / WINDOW_SPEED_MPS
            for dwell in self.dwells:
                rel = walked + dwell * (np.arange(k) > stand)
                t0 = np.arange(t - rel[-1], t + 1e-9, WINDOW_TIME_STEP_S)
                kt.append(t0[:, None] + rel[None, :])
                kx.append(np.broadcast_to(pts, (len(t0), k, 2)))
                life.append(np.stack([t0, t0 + rel[-1]], axis=1))
        return np.concatenate(kt), np.concatenate(kx), np.concatenate(life)

    def walking_past(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`passing` and `stopping` together (knots padded to one count) and each one's log prior."""
        parts = [(*self.passing(t), self.prior(False)), (*self.stopping(t), self.prior(True))]
        parts = [x for x in parts if len(x[0]) and np.isfinite(x[3])]
        k = max(x[0].shape[1] for x in parts)
        kt = np.concatenate([np.pad(x[0], ((0, 0), (0, k - x[0].shape[1])), mode="edge") for x in parts])
        kx = np.concatenate([np.pad(x[1], ((0, 0), (0, k - x[1].shape[1]), (0, 0)), mode="edge") for x in parts])
        prior = np.concatenate([np.full(len(x[0]), x[3]) for x in parts])
        return kt, kx, np.concatenate([x[2] for x in parts]), prior

    def walking_in(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Walk-in paths crossing the door at `times`: along a lane, through the door, straight in;
        knots, crossing times and the door's id."""
        kt, kx, cross, door = [], [], [], []
        for ln in self.lanes:
            for s0 in ln.s_range:
                for off in ln.offsets:
                    for v in WALK_IN_SPEEDS:
                        for depth in WALK_IN_DEPTHS_M:
                            pts = [ln.centre + s0 * ln.along + off * ln.away, ln.centre + off * ln.away,
                                   ln.centre, ln.centre - depth * ln.away]
                            rel = np.asarray([-(abs(s0) + off), -off, 0.0, depth]) / v  # knot times - crossing
                            kt.append(times[:, None] + rel[None, :])
                            kx.append(np.broadcast_to(np.stack(pts), (len(times), 4, 2)))
                            cross.append(times)
                            door.append(np.full(len(times), ln.door))
        return np.concatenate(kt), np.concatenate(kx), np.concatenate(cross), np.concatenate(door)


def _grid(lo: float, hi: float) -> np.ndarray:
    return np.arange(lo, hi + 1e-9, TIME_STEP_S)


def _true_ll(orc: _Oracle, r: _Readings, agent: int) -> np.ndarray:
    traj = orc.em.traj
    idx = np.full(len(r.t), agent)
    xy = traj.positions(idx, r.t)
    angle = orc.em.headings(idx, r.t)
    return r.prefix_ll(orc.exact(r, xy, angle, int(orc.em.carry[agent]))[:, None])[:, 0]


def _best_score(orc: _Oracle, r: _Readings, carry: int, hyp: tuple, rows: np.ndarray, sub: np.ndarray,
                until: np.ndarray | None, initial: float) -> np.ndarray:
    """max over hypotheses h of ll(first rows[h, s] events | h) - sub[h, s], per column s.

    Every hypothesis is first bounded from above cheaply (`ll_at(upper=True)`), then weighed in
    full: the TOP_FIRST best bounds of each column first, then only hypotheses whose bound still
    beats the best so far (the same result as weighing all, far cheaper). The hypotheses' means
    are computed once for both passes while they fit in MEANS_CACHE_POSITIONS.
    """
    best = np.full(rows.shape[1], initial)
    # a hypothesis only needs the events of the columns it can win (sub < inf): none, or a prefix
    ok = np.isfinite(sub)
    rows = np.where(ok, rows, 0)
    need = rows.max(axis=1, initial=0)
    live = np.flatnonzero(ok.any(axis=1))
    live = live[np.argsort(need[live], kind="stable")]  # chunks of similar prefixes
    if not len(live):
        return best
    kt, kx, rows, sub, need = hyp[0][live], hyp[1][live], rows[live], sub[live], need[live]
    until = None if until is None else until[live]
    chunks, i = [], 0
    while i < len(kt):
        j = min(len(kt), i + max(1, CHUNK_POSITIONS // max(1, int(need[i]))))
        while j - i > 1 and (j - i) * need[j - 1] > CHUNK_POSITIONS:
            j = i + max(1, CHUNK_POSITIONS // int(need[j - 1]))
        chunks.append(np.arange(i, j))
        i = j
    heads = [r.head(int(need[c[-1]])) for c in chunks]
    keep = sum(len(c) * int(need[c[-1]]) for c in chunks) <= MEANS_CACHE_POSITIONS
    cache: dict[int, np.ndarray] = {}

    def means(c: int) -> np.ndarray:
        m = cache.get(c)
        if m is None:
            m = orc.means(heads[c], kt[chunks[c]], kx[chunks[c]], carry)
            if keep:
                cache[c] = m
        return m

    def scores(idx: np.ndarray, upper: bool, wanted: np.ndarray) -> np.ndarray:
        """Scores of hypotheses idx (sorted), chunk by chunk, in the columns some of them may win
        (`wanted`); -inf elsewhere."""
        out = np.full((len(idx), rows.shape[1]), -np.inf)
        at = np.searchsorted(idx, [c[0] for c in chunks] + [len(kt)])
        for c in range(len(chunks)):
            i = idx[at[c] : at[c + 1]]
            cols = np.flatnonzero(wanted[i].any(axis=0))
            if not len(cols):
                continue
            m = means(c)[:, i - chunks[c][0]]
            ll = heads[c].ll_at(m, rows[i][:, cols].T, None if until is None else until[i], upper)
            out[at[c] : at[c + 1], cols] = ll.T - sub[i][:, cols]
        return out

    ok = np.isfinite(sub)
    upper = scores(np.arange(len(kt)), True, ok)
    top = np.unique(np.argsort(-upper, axis=0)[:TOP_FIRST].reshape(-1))
    best = np.maximum(best, scores(top, False, ok).max(axis=0))
    beats = upper > best[None, :]  # where a hypothesis may still beat the best so far
    rest = np.setdiff1d(np.flatnonzero(beats.any(axis=1)), top)
    return np.maximum(best, scores(rest, False, beats).max(axis=0, initial=-np.inf))


def _entrant_margins(orc: _Oracle, r: _Readings, agent: int, t0: float, lat: np.ndarray) -> np.ndarray:
    """True path minus best walk-past explanation, for the events up to t0 + each latency."""
    k = r.count(t0 + lat)
    true = _true_ll(orc, r, agent)[k]
    if not len(r.t):
        return np.zeros(len(lat))
    kt, kx, life, prior = orc.walking_past(r.t[0])  # there from the first reading on, stopping or not
    end = life[:, 1]
    valid = r.n_read[k][None, :] <= r.n_read[r.count(end)][:, None]  # no reading after the walk ended
    rows = np.broadcast_to(k[None, :], valid.shape)
    sub = np.where(valid, -prior[:, None], np.inf)
    best = _best_score(orc, r, int(orc.em.carry[agent]), (kt, kx), rows, sub, end, -np.inf)
    return true - best


def _passer_scores(orc: _Oracle, r: _Readings, agent: int, lat: np.ndarray,
                   evidence: tuple[DoorEvidence | None, ...]) -> list[np.ndarray]:
    """Best walked-in explanation minus the true walk, per latency after the hypothesised crossing:
    one row per entry of `evidence` (None: the radio alone; else with that door's reports too)."""
    if not len(r.t):
        return [np.zeros(len(lat)) for _ in evidence]
    true = _true_ll(orc, r, agent)
    kt, kx, cross, door = orc.walking_in(_grid(r.t[0] - 10.0, r.t[r.ri[-1]]))  # crossings up to the last reading
    ok = kt[:, 0] <= r.t[0]
    kt, kx, cross, door = kt[ok], kx[ok], cross[ok], door[ok]
    horizon = cross[:, None] + lat[None, :]
    rows = r.count(horizon)  # (h, L)
    out = []
    for ev in evidence:
        sub = true[rows]
        if ev is not None:
            for d in np.unique(door):
                sub[door == d] -= ev.log_ratio(str(d), cross[door == d], horizon[door == d])
        # announcing before anything is heard proves nothing either way: the score starts at 0
        out.append(_best_score(orc, r, int(orc.em.carry[agent]), (kt, kx), rows, sub, None, 0.0))
    return out


def oracle_margins(world: World, em: Emitter, rec: Recording,
                   door: DoorEvidence | None = None) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """(entrant crossing times by agent id, entrant margins (E, L), passer scores (P, L), latency grid);
    with `door`, its reports are evidence too."""
    entrants, margins, scores, lat = all_margins(world, em, rec, (door,))
    return entrants, margins[0], scores[0], lat


def all_margins(world: World, em: Emitter, rec: Recording, evidence: tuple[DoorEvidence | None, ...]
                ) -> tuple[dict, list[np.ndarray], list[np.ndarray], np.ndarray]:
    """`oracle_margins` once per entry of `evidence` (None: the radio alone), the radio weighed once."""
    lat = np.union1d(np.arange(0.0, LATENCY_MAX_S + 1e-9, LATENCY_STEP_S), LATENCIES_S)
    pop = world.scenario.population
    orc = _Oracle(em, lanes(world.store), passer_lanes(world.store), window_walks(world.store, pop.passer_by_lane_m),
                  pop)
    offset_limit = max([abs(a.tx_offset_db) for a in world.agents], default=0.0)  # any offset the world has
    p = radio_params(world)
    by_agent = np.argsort(rec.agent, kind="stable")
    bounds = np.searchsorted(rec.agent[by_agent], np.arange(len(world.agents) + 1))

    sent = np.argsort(rec.sent_agent, kind="stable")
    sent_bounds = np.searchsorted(rec.sent_agent[sent], np.arange(len(world.agents) + 1))

    def readings(i: int, until: float = np.inf) -> _Readings:
        sel = by_agent[bounds[i] : bounds[i + 1]]
        sel = sel[rec.t[sel] <= until]
        tx = rec.sent_t[sent[sent_bounds[i] : sent_bounds[i + 1]]]
        return _Readings(rec.t[sel], rec.node[sel], rec.rssi[sel], p, offset_limit, tx[tx <= until], len(em.nodes))

    entrants, margins, scores = {}, [], []
    for i, a in enumerate(world.agents):
        if a.customer is None or not a.customer.recognition_consent:
            continue
        if a.kind == AgentKind.REGULAR and a.entered_at is not None:
            entrants[a.id] = a.entered_at
            radio = _entrant_margins(orc, readings(i, a.entered_at + lat[-1]), i, a.entered_at, lat)
            # the walk-past explanation made no crossing: the door's evidence is the true crossing's alone
            margins.append([radio if ev is None else radio + ev.entrant(a.id, a.entered_at, lat) for ev in evidence])
        elif a.kind == AgentKind.PASSER_BY:
            scores.append(_passer_scores(orc, readings(i), i, lat, evidence))
    return (entrants, [np.asarray([m[k] for m in margins]).reshape(-1, len(lat)) for k in range(len(evidence))],
            [np.asarray([s[k] for s in scores]).reshape(-1, len(lat)) for k in range(len(evidence))], lat)


def _threshold(scores: np.ndarray, fa: int) -> np.ndarray:
    """Per latency: the score the oracle must beat to announce at most `fa` of these passers-by."""
    if fa >= len(scores):
        return np.full(scores.shape[1], -np.inf)
    return -np.sort(-scores, axis=0)[fa]


def _percentile(values: np.ndarray, q: float) -> float | None:
    """numpy's linear percentile, or None when it would involve someone never announced (inf)."""
    v = np.sort(values)
    if not len(v):
        return None
    pos = q / 100 * (len(v) - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    if not np.isfinite(v[hi]):
        return None
    return round(float(v[lo] + (pos - lo) * (v[hi] - v[lo])), 2)


def summarise(
    margins: np.ndarray, scores: np.ndarray, lat: np.ndarray,
    latencies: tuple[float, ...] = LATENCIES_S, false_alarms: tuple[int, ...] = FALSE_ALARMS,
    stopped: np.ndarray | None = None,
) -> dict:
    """Shares announced within each latency and latency percentiles, per false-alarm budget; with
    `stopped` (per passer-by: stood at the window?), how many of the passers-by announced by the
    last latency stood at the window.

    Evidence only accumulates: an entrant counts as announced by L if their margin beat the
    threshold at any l <= L, and a passer-by's score at L is their best at any l <= L.
    """
    m = np.maximum.accumulate(margins, axis=1) if margins.size else margins
    s = np.maximum.accumulate(scores, axis=1) if scores.size else scores
    out: dict = {"bound": [], "latency": []}
    for fa in false_alarms:
        caught = m > _threshold(s, fa)[None, :] if len(m) else np.zeros((0, len(lat)), bool)
        for L in latencies:
            k = int(np.searchsorted(lat, L - 1e-9))
            out["bound"].append({"latency_s": L, "false_alarms": fa,
                                 "share_announced": round(float(caught[:, k].mean()), 3) if len(m) else None})
        first = np.where(caught.any(axis=1), lat[np.argmax(caught, axis=1)], np.inf) if len(m) else np.zeros(0)
        out["latency"].append({"false_alarms": fa, "p50_s": _percentile(first, 50), "p95_s": _percentile(first, 95),
                               "never_within_s": float(lat[-1]), "never": int(np.isinf(first).sum())})
        if stopped is not None and len(s):
            out["latency"][-1]["window_shoppers"] = int((stopped & (s[:, -1] > _threshold(s, fa)[-1])).sum())
    return out


def share_at(margins: np.ndarray, scores: np.ndarray, lat: np.ndarray, latency: float, fa: int) -> float:
    """The oracle's share of entrants announced within `latency` letting through `fa` passers-by."""
    k = int(np.searchsorted(lat, latency - 1e-9))
    m = np.maximum.accumulate(margins, axis=1)[:, k]
    s = np.maximum.accumulate(scores, axis=1)
    return float((m > _threshold(s, fa)[k]).mean()) if len(m) else 0.0


def door_oracle_run(sc: Scenario, store: StoreFile, tick_s: float, door: bool, margins_of) -> tuple:  # noqa: ANN001
    """What the entry and the leave oracle (`sim.left_bound`) start from: the scenario checked, its
    world and radio recorded, the door's evidence if asked; (world, evidence, `margins_of`'s result)."""
    if not lanes(store):
        raise ScenarioError(f"{sc.scenario.store}: no street door between an outside zone and the store: "
                            "the oracle needs a declared [[doors]] entry with kind = \"street\"")
    if door and not sc.door_sensor.doors:
        raise ScenarioError(f"{sc.scenario.name}: --door: the scenario has no door sensor ([door_sensor] doors)")
    world = build_world(sc, store)
    em, rec = record_radio(world, sc.scenario.seed, tick_s)
    evidence = DoorEvidence(world, store) if door else None
    return world, evidence, margins_of(world, em, rec, (None, evidence) if evidence else (None,))


def entry_bound(sc: Scenario, store: StoreFile, tick_s: float = 1.0, door: bool = False) -> dict:
    """The oracle's figures for one scenario (its seed) as a JSON-ready dict; with `door`, also
    those of the oracle that weighs the door sensor's reports too (`door`)."""
    world, evidence, (entrants, margins, scores, lat) = door_oracle_run(sc, store, tick_s, door, all_margins)
    stopped = np.asarray([a.window_s is not None for a in world.agents if a.kind == AgentKind.PASSER_BY
                          and a.customer is not None and a.customer.recognition_consent], bool)
    out = {"scenario": sc.scenario.name, "seed": sc.scenario.seed, "duration_s": sc.scenario.duration_s,
           "entrants": len(entrants), "registered_passers_by": len(scores[0]),
           "window_shoppers": int(stopped.sum()), **summarise(margins[0], scores[0], lat, stopped=stopped)}
    if evidence is not None:
        out["door"] = {"reports": len(evidence.reports), **summarise(margins[1], scores[1], lat, stopped=stopped)}
    return out


def parse_seeds(text: str) -> list[int]:
    """"3", "1-3" or "1,4,7" -> seeds; a clear error otherwise."""
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            out += list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ValueError(f"--seeds: {text!r} is not a seed, a range like 1-3 or a list like 1,4,7") from None
    if not out:
        raise ValueError(f"--seeds: {text!r} names no seed")
    return out


DOOR_FLAG = {"door": "also weigh the door sensor's reports (`door` in output)"}


def bound_cli(doc: str, run, flags: dict[str, str] | None = None, text=None) -> None:  # noqa: ANN001
    """The command line shared with `sim.room_bound`: one JSON line per seed; each of `flags` (keyword of
    `run` -> help) is offered as an on/off option (``door`` as --door); with `text` (a seed's output ->
    str), that text unless --json."""
    flags = flags or {}
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("scenario")
    for name, help_text in flags.items():
        ap.add_argument("--" + name.replace("_", "-"), action="store_true", help=help_text)
    if text is not None:
        ap.add_argument("--json", action="store_true", help="one JSON line per seed instead of a summary")
    ap.add_argument("--seeds", help="seeds to run, e.g. 1-3 or 1,4 (default: the scenario's)")
    ap.add_argument("--duration", type=float, help="simulated seconds (default: the scenario's)")
    args = ap.parse_args()
    try:
        seeds = parse_seeds(args.seeds) if args.seeds else [None]
        sc, store = load_scenario(args.scenario)
        if args.duration is not None:
            if args.duration <= 0:
                raise ValueError(f"--duration: {args.duration} is not a positive number of seconds")
            sc = sc.model_copy(update={"scenario": sc.scenario.model_copy(update={"duration_s": args.duration})})
    except (ScenarioError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    for seed in seeds:
        try:
            out = run(sc.with_seed(seed), store, **{name: getattr(args, name) for name in flags})
        except (ScenarioError, ValueError) as exc:  # a scenario the world builder or the oracle cannot use
            raise SystemExit(f"error: {args.scenario}: {exc}") from None
        print(json.dumps(out) if text is None or args.json else text(out), flush=True)


if __name__ == "__main__":
    bound_cli(__doc__, entry_bound, DOOR_FLAG)
