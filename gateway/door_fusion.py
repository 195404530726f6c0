"""Door-sensor fusion for the presence engine: a crossing at t says someone went through that door then.

A counter at a street door is anonymous and most people it counts carry no registered phone,
so a crossing is not an entry by itself. It is evidence, weighed per tracked phone: the
likelihood of an inward crossing reported at t is high if this phone just went in (it is
inside, within a few steps of that door) and only the chance of someone else's crossing at
that moment otherwise. That ratio multiplies the belief of the "just went in" states; the
engine's own entry threshold then decides, so a phone that BLE already places at the door is
announced about a second after the door, a passer-by whose readings say "on the pavement"
is not, and a crossing the counter missed leaves BLE to decide alone (docs/door.md).

Pure: crossings in with their own timestamps, factors out; the crossing rate of each door
and direction is learned from the crossings themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from firmware_config.geometry import door_opening, segment_distance
from firmware_config.store import StoreFile

Direction = str  # "in" | "out"


@dataclass(frozen=True, slots=True)
class Crossing:
    door: str
    t: float
    direction: Direction


@dataclass(frozen=True, slots=True)
class DoorMoves:
    """The transition's moves through one street door (all transmit offsets): `inward` keeps
    only the moves from outside into the store, `outward` only those out of it (K, K) each."""

    inward: sparse.csr_matrix
    outward: sparse.csr_matrix


def door_moves(
    store: StoreFile, transition: sparse.spmatrix, cell_xy: np.ndarray, in_store: np.ndarray, n_offsets: int
) -> dict[str, DoorMoves]:
    """Per street door, the moves of one step's `transition` (base cells + `away`) that cross it.

    Belief enters the store only through a street door (the transition has no other way in),
    so every move between outside and inside belongs to the door nearest its inner end.
    cell_xy: (C, 2) the base cells without `away`; in_store: (C + 1,) inside the store."""
    zones = {z.id: z for z in store.zones}
    doors = store.street_doors()
    if not doors:
        return {}
    jambs = []
    for d in doors:
        pa, pb = list(zones[d.zones[0]].polygon), list(zones[d.zones[1]].polygon)
        jambs.append(tuple(np.asarray(j, dtype=float) for j in door_opening(d.position, d.width_m, pa, pb)))
    edges = sparse.coo_matrix(transition)
    src, dst, w = edges.row, edges.col, edges.data
    inward = ~in_store[src] & in_store[dst]
    outward = in_store[src] & ~in_store[dst]
    inner = np.where(inward, dst, src)
    xy = np.vstack([cell_xy, [[0.0, 0.0]]])  # `away` is never inside: no move of its own crosses a door
    dist = np.asarray([[segment_distance(xy[c], a, b) for a, b in jambs] for c in inner]).reshape(len(inner), -1)
    nearest = dist.argmin(axis=1) if len(inner) else np.zeros(0, dtype=int)
    n = transition.shape[0]

    def keep(mask: np.ndarray) -> sparse.csr_matrix:
        one = sparse.csr_matrix((w[mask], (src[mask], dst[mask])), shape=(n, n))
        return sparse.block_diag([one] * n_offsets, format="csr", dtype=np.float32)

    return {
        d.id: DoorMoves(keep(inward & (nearest == k)), keep(outward & (nearest == k))) for k, d in enumerate(doors)
    }


@dataclass
class DoorFusion:
    """Queued crossings and each door's learned crossing rate; `apply` folds them into a step.

    detect_probability: a counter's chance to count one person (docs/door.md);
    match_s: the window in which a phone's move through the door matches a crossing (one step and
    the report's delay): the chance of someone else's crossing in it is what a crossing is up against;
    prior_rate_per_h, rate_tau_s: the rate before any crossing is seen, and how fast it forgets;
    max_age_s: crossings older than this at the step are stale (a backlog replayed after an outage);
    max_ratio: the strongest a single crossing may count."""

    moves: dict[str, DoorMoves]
    detect_probability: float
    match_s: float
    prior_rate_per_h: float
    rate_tau_s: float
    max_age_s: float
    max_ratio: float
    pending: list[Crossing] = field(default_factory=list)
    _rate: dict[tuple[str, Direction], tuple[float, float]] = field(default_factory=dict)  # (rate /s, at t)

    def add(self, door: str, t: float, direction: Direction) -> bool:
        """Queue a crossing for the next step (False: not a street door of this store)."""
        if door not in self.moves or direction not in ("in", "out"):
            return False
        self.pending.append(Crossing(door, t, direction))
        return True

    def ratio(self, c: Crossing) -> float:
        """Likelihood ratio of the crossing for a phone that made it against one that did not:
        P(counted) / P(someone else's crossing within `match_s`), from the learned rate."""
        rate, at = self._rate.get((c.door, c.direction), (self.prior_rate_per_h / 3600.0, c.t))
        rate *= math.exp(-max(0.0, c.t - at) / self.rate_tau_s)
        self._rate[(c.door, c.direction)] = (rate + 1.0 / self.rate_tau_s, max(c.t, at))
        return min(self.max_ratio, max(1.0, self.detect_probability / (rate * self.match_s)))

    def evidence(self, belief: np.ndarray, inside: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """The queued crossings as extra prediction for a step at `t` from `belief` (I, K):
        (rows, extra) to add to those rows' predicted belief. An inward crossing multiplies by its
        likelihood ratio the belief that moves in through that door in this step (phones not yet
        announced), an outward one the belief that moves out (phones inside). Only the moves of
        this step count: a phone that went in before is not pushed further by the next crossing."""
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        for c in sorted(self.pending, key=lambda c: c.t):
            if t - c.t > self.max_age_s:
                continue
            gain = np.float32(self.ratio(c) - 1.0)
            which = np.flatnonzero(~inside if c.direction == "in" else inside)
            moves = self.moves[c.door]
            flow = belief[which] @ (moves.inward if c.direction == "in" else moves.outward)
            parts.append((which, np.asarray(flow, dtype=np.float32) * gain))
        rows = np.unique(np.concatenate([w for w, _ in parts])) if parts else np.zeros(0, dtype=int)
        extra = np.zeros((len(rows), belief.shape[1]), dtype=np.float32)
        for which, flow in parts:
            extra[np.searchsorted(rows, which)] += flow
        self.pending = []
        return rows, extra
