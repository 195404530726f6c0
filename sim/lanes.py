"""Lanes along outside zones: where passers-by walk, and how visitors reach a street door.

An outside zone (a pavement, a main street, a mall corridor) has two far ends: the pair of
its edges furthest apart along the zone. A lane runs from one end to the other at a given
distance from the store side, rounding the zone's inner corners at that distance, so an
L-shaped pavement is walked round its corner rather than across the shop. Pure geometry on
the store file and a `FloorPlan`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path

from firmware_config.geometry import point_in_polygon, shared_boundary
from firmware_config.store import StoreFile, ZoneKind
from sim.paths import CLEARANCE_M, FloorPlan, distance_to_segments, polygon_edges, reflex_corners

LANE_EDGE_M = 0.3  # a lane keeps this far from the outside zone's own edges
OFFSET_STEP_M = 0.1  # lanes are cached per offset rounded to this
FRONT_END_M = 0.3  # a window shopper stands at least this far from either end of a stretch of shop front
SPOT_TRIES = 20  # spots drawn in front of the shop before a window shopper walks on without stopping
SALES = (ZoneKind.ENTRANCE, ZoneKind.FLOOR, ZoneKind.TILL)  # the zones whose street side is the shop front


class Lanes:
    """The lanes of every outside zone of a store."""

    def __init__(self, store: StoreFile, plan: FloorPlan):
        self.plan = plan
        self.zones = sorted(z.id for z in store.zones if z.kind == ZoneKind.OUTSIDE)
        inside = [polygon_edges(list(z.polygon)) for z in store.zones if z.kind != ZoneKind.OUTSIDE]
        self.store_side = np.concatenate(inside) if inside else np.zeros((0, 4))
        self.ends = {z: self._ends(z) for z in self.zones}
        self._lane = lru_cache(maxsize=None)(self._build)
        sales = [z.id for z in store.zones if z.kind in SALES]
        # The shop front of each outside zone: where it meets the sales area (display windows, doors).
        self.front = {
            z: [seg for s in sales for seg in shared_boundary(plan.polys[z], plan.polys[s])] for z in self.zones
        }

    def _ends(self, zone: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The zone's two far end edges, each as (store-side corner, other corner)."""
        poly = np.asarray(self.plan.polys[zone], float)
        edges = [(poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly))]
        mids = [self._inward((a + b) / 2, a, b, zone) for a, b in edges]
        best, pair = -1.0, (0, 1)
        for i in range(len(edges)):
            for j in range(i + 1, len(edges)):
                d = self.plan.length(tuple(mids[i]), zone, tuple(mids[j]), zone)
                if d > best:
                    best, pair = d, (i, j)
        out = []
        for k in pair:
            a, b = edges[k]
            if distance_to_segments(b, self.store_side) < distance_to_segments(a, self.store_side):
                a, b = b, a
            out.append((a, b))
        return out[0], out[1]

    def _inward(self, p: np.ndarray, a: np.ndarray, b: np.ndarray, zone: str, by: float = CLEARANCE_M) -> np.ndarray:
        u = (b - a) / np.hypot(*(b - a))
        n = np.asarray([-u[1], u[0]])
        q = p + by * n
        return q if point_in_polygon((float(q[0]), float(q[1])), self.plan.polys[zone]) else p - by * n

    def window_spot(
        self, zone: str, gap_m: tuple[float, float], rng: np.random.Generator
    ) -> tuple[float, float] | None:
        """A spot `gap_m` (low, high) metres out from the zone's shop front, facing a display window
        or a door (any stretch, by length), where someone can stand; None if the zone has no front."""
        segs = [(np.asarray(a, float), np.asarray(b, float)) for a, b in self.front[zone]]
        lengths = np.asarray([np.hypot(*(b - a)) for a, b in segs])
        if not len(segs) or lengths.sum() <= 0:
            return None
        for _ in range(SPOT_TRIES):
            a, b = segs[int(rng.choice(len(segs), p=lengths / lengths.sum()))]
            length = float(np.hypot(*(b - a)))
            end = min(FRONT_END_M, length / 2) / length
            on = a + (b - a) * float(rng.uniform(end, 1 - end))
            p = self._inward(on, a, b, zone, float(rng.uniform(*gap_m)))
            if self.plan.clear(p, zone):
                return float(p[0]), float(p[1])
        return None

    def width(self, zone: str) -> float:
        """The narrower end's width: lanes lie within it."""
        return min(float(np.hypot(*(b - a))) for a, b in self.ends[zone])

    def lane(self, zone: str, offset: float) -> np.ndarray:
        """(K, 2) points from one far end to the other, `offset` metres from the store side."""
        hi = max(LANE_EDGE_M, self.width(zone) - LANE_EDGE_M)
        return self._lane(zone, round(float(np.clip(offset, LANE_EDGE_M, hi)) / OFFSET_STEP_M))

    def _build(self, zone: str, steps: int) -> np.ndarray:
        off = steps * OFFSET_STEP_M
        ends = []
        for a, b in self.ends[zone]:
            u = (b - a) / np.hypot(*(b - a))
            ends.append(self._inward(a + off * u, a, b, zone, LANE_EDGE_M))
        corners = [p for p in reflex_corners(self.plan.polys[zone], off) if self.plan.clear(p, zone, LANE_EDGE_M * 0.9)]
        pts = np.asarray(ends + corners, float)
        n = len(pts)
        w = np.zeros((n, n))
        for i in range(n):
            for j in range(i + 1, n):
                if self.plan.visible(pts[i], pts[j], zone):
                    w[i, j] = w[j, i] = max(float(np.hypot(*(pts[j] - pts[i]))), 1e-6)
        dist, pred = shortest_path(csr_matrix(w), method="D", return_predecessors=True, indices=[0])
        if not np.isfinite(dist[0, 1]):  # corners too close to the far side: the plain shortest walk
            route = self.plan.route(tuple(ends[0]), zone, tuple(ends[1]), zone)
            return np.asarray([ends[0]] + [p for p, _ in route], float)
        seq = [1]
        while seq[-1] != 0:
            seq.append(int(pred[0, seq[-1]]))
        return pts[seq[::-1]]


def project(lane: np.ndarray, p: np.ndarray) -> tuple[int, np.ndarray]:
    """The point of the lane nearest p: (index of the segment it lies on, the point)."""
    a, b = lane[:-1], lane[1:]
    ab = b - a
    den = np.maximum((ab * ab).sum(axis=1), 1e-12)
    t = np.clip(((p - a) * ab).sum(axis=1) / den, 0.0, 1.0)
    q = a + t[:, None] * ab
    k = int(np.argmin(np.hypot(*(q - p).T)))
    return k, q[k]
