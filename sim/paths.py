"""Walking on the floor plan: shortest routes that stay inside zones and pass walls only at openings.

A visibility graph over the zones' inner corners, the free ends of walls and point pairs either
side of every opening; a walk is the shortest route through it (docs/scenarios.md, "How people
and garments move"). Pure: built from the store file, no clock, no randomness except the
generator a caller passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, shortest_path

from firmware_config.geometry import (
    Point,
    door_opening,
    open_runs,
    point_in_polygon,
    random_point_in,
    run_length,
    segments_cross,
    shared_boundary,
)
from firmware_config.store import StoreFile, ZoneKind

CLEARANCE_M = 0.25  # people keep this far from inner corners, wall ends and zone edges
SIDE_M = 0.1  # an opening's two nodes stand this far either side of it
GATE_STEP_M = 1.0  # crossing points along a wide opening (an open sales-floor edge), about 1 m apart
JAMB_M = 0.2  # nobody passes closer than this to a door jamb or the end of an open run
MIN_OPENING_M = 0.5  # narrower wall-free runs are gaps between walls, not passages
POINT_TRIES = 60  # random points drawn before falling back to the zone's best-known inner point


@dataclass(frozen=True, slots=True)
class Gate:
    """An opening between zones `a` and `b`: the segment p1-p2 of their shared boundary."""

    a: str
    b: str
    p1: Point
    p2: Point

    def crossing_points(self) -> list[np.ndarray]:
        """Where people cross it: one point per GATE_STEP_M of its width, away from the jambs."""
        p1, p2 = np.asarray(self.p1, float), np.asarray(self.p2, float)
        length = float(np.hypot(*(p2 - p1)))
        usable = length - 2 * JAMB_M
        if usable <= 0:
            return [(p1 + p2) / 2]
        n = max(1, int(round(usable / GATE_STEP_M)))
        u = (p2 - p1) / length
        return [p1 + u * (JAMB_M + (k + 0.5) * usable / n) for k in range(n)]

    def random_crossing(self, rng: np.random.Generator) -> np.ndarray:
        """A random point across the opening's width (away from the jambs)."""
        p1, p2 = np.asarray(self.p1, float), np.asarray(self.p2, float)
        length = float(np.hypot(*(p2 - p1)))
        if length <= 2 * JAMB_M:
            return (p1 + p2) / 2
        return p1 + (p2 - p1) * float(rng.uniform(JAMB_M / length, 1 - JAMB_M / length))


def _pt(p: np.ndarray) -> Point:
    return float(p[0]), float(p[1])


def polygon_edges(poly: list[Point]) -> np.ndarray:
    a = np.asarray(poly, float)
    return np.concatenate([a, np.roll(a, -1, axis=0)], axis=1)


def distance_to_segments(p: np.ndarray, segs: np.ndarray) -> float:
    """Distance from point p to the nearest of segments (W, 4)."""
    if len(segs) == 0:
        return np.inf
    a, b = segs[:, 0:2], segs[:, 2:4]
    ab = b - a
    den = np.maximum((ab * ab).sum(axis=1), 1e-12)
    t = np.clip(((p - a) * ab).sum(axis=1) / den, 0.0, 1.0)
    return float(np.hypot(*(a + t[:, None] * ab - p).T).min())


def _walls_near(walls: np.ndarray, poly: list[Point]) -> np.ndarray:
    """The walls that reach into the polygon's bounding box: the only ones a walk in it can meet."""
    a = np.asarray(poly, float)
    lo, hi = a.min(axis=0) - 1e-6, a.max(axis=0) + 1e-6
    wlo = np.minimum(walls[:, 0:2], walls[:, 2:4])
    whi = np.maximum(walls[:, 0:2], walls[:, 2:4])
    return walls[np.all(whi >= lo, axis=1) & np.all(wlo <= hi, axis=1)]


def reflex_corners(poly: list[Point], pull: float) -> list[np.ndarray]:
    """The polygon's inner (reflex) corners, moved `pull` metres off both adjacent edges into it."""
    a = np.asarray(poly, float)
    n = len(a)
    ccw = sum(a[i, 0] * a[(i + 1) % n, 1] - a[(i + 1) % n, 0] * a[i, 1] for i in range(n)) > 0
    out = []
    for i in range(n):
        prev, cur, nxt = a[i - 1], a[i], a[(i + 1) % n]
        d1, d2 = cur - prev, nxt - cur
        turn = d1[0] * d2[1] - d1[1] * d2[0]
        if (turn < 0) if ccw else (turn > 0):  # turning away from the inside: a reflex corner
            n1, n2 = (np.asarray([-d[1], d[0]]) / np.hypot(*d) for d in (d1, d2))
            if not ccw:
                n1, n2 = -n1, -n2
            out.append(cur + pull * (n1 + n2))
    return out


def street_gates(store: StoreFile, gates: list[Gate]) -> list[Gate]:
    """The openings from an outside zone into the sales area (not a stock room's delivery door),
    outside zone first."""
    kinds = {z.id: z.kind for z in store.zones}
    sales = (ZoneKind.ENTRANCE, ZoneKind.FLOOR, ZoneKind.TILL)
    out = []
    for g in gates:
        if kinds[g.a] == ZoneKind.OUTSIDE and kinds[g.b] in sales:
            out.append(g)
        elif kinds[g.b] == ZoneKind.OUTSIDE and kinds[g.a] in sales:
            out.append(Gate(g.b, g.a, g.p2, g.p1))
    return out


def find_gates(store: StoreFile) -> list[Gate]:
    """Every opening between connected zones: their declared doors if they have any, else the
    wall-free runs of their shared boundary, else (a curtain) the middle of its longest part."""
    polys = {z.id: list(z.polygon) for z in store.zones}
    walls = [(w.a, w.b) for w in store.walls]
    pairs = {tuple(sorted((a, b))) for a, nbrs in store.zone_graph().items() for b in nbrs if a != b}
    pairs |= {tuple(sorted(d.zones)) for d in store.doors}
    out = []
    for a, b in sorted(pairs):
        if a not in polys or b not in polys:
            continue
        doors = store.doors_between(a, b)
        if doors:
            for d in doors:
                j1, j2 = door_opening(d.position, d.width_m, polys[a], polys[b])
                out.append(Gate(a, b, j1, j2))
            continue
        runs = [r for r in open_runs(polys[a], polys[b], walls) if run_length(r) >= MIN_OPENING_M]
        if runs:
            out += [Gate(a, b, _pt(r[0]), _pt(r[-1])) for r in runs]
            continue
        segs = shared_boundary(polys[a], polys[b])
        if segs:
            s1, s2 = max(segs, key=lambda s: np.hypot(s[1][0] - s[0][0], s[1][1] - s[0][1]))
            mid = _pt((np.asarray(s1, float) + np.asarray(s2, float)) / 2)
            out.append(Gate(a, b, mid, mid))
    return out


def _openings(gates: list[Gate]) -> dict[frozenset[str], np.ndarray]:
    """Per pair of zones, the parts of their openings people may cross anywhere along (JAMB_M
    clear of the ends), as (n, 4) segments; curtains (a single point) have none."""
    out: dict[frozenset[str], list[list[float]]] = {}
    for g in gates:
        p1, p2 = np.asarray(g.p1, float), np.asarray(g.p2, float)
        length = float(np.hypot(*(p2 - p1)))
        if length <= 2 * JAMB_M:
            continue
        u = (p2 - p1) / length
        out.setdefault(frozenset((g.a, g.b)), []).append([*(p1 + JAMB_M * u), *(p2 - JAMB_M * u)])
    return {k: np.asarray(v, float) for k, v in out.items()}


class FloorPlan:
    """The store's walkable plan: which straight walks are allowed, and shortest routes."""

    def __init__(self, store: StoreFile):
        self.polys = {z.id: list(z.polygon) for z in store.zones}
        self.walls = np.asarray([[*w.a, *w.b] for w in store.walls], float).reshape(-1, 4)
        self.block = {z: np.concatenate([polygon_edges(p), _walls_near(self.walls, p)]) for z, p in self.polys.items()}
        self.gates = find_gates(store)
        self.street = street_gates(store, self.gates)
        self.edges = {z: polygon_edges(p) for z, p in self.polys.items()}
        self._shared = lru_cache(maxsize=None)(lambda a, b: shared_boundary(self.polys[a], self.polys[b]))
        self.openings = _openings(self.gates)
        xy: list[np.ndarray] = []
        zone: list[str] = []
        cross: dict[tuple[int, int], np.ndarray] = {}
        for z, poly in self.polys.items():
            for p in reflex_corners(poly, CLEARANCE_M) + self._wall_ends(z):
                if self.clear(p, z):
                    xy.append(p)
                    zone.append(z)
        for g in self.gates:
            for c in g.crossing_points():
                sa, sb = self.sides(g, c)
                if sa is None or sb is None:
                    continue
                i, j = len(xy), len(xy) + 1
                xy += [sa, sb]
                zone += [g.a, g.b]
                cross[(i, j)] = cross[(j, i)] = c
        self.xy = np.asarray(xy, float).reshape(-1, 2)
        self.zone = np.asarray(zone, dtype=object)
        self.cross = cross
        n = len(self.xy)
        w = np.zeros((n, n))
        for z in self.polys:
            idx = np.flatnonzero(self.zone == z)
            if len(idx) < 2:
                continue
            p = self.xy[idx]
            seen = ~segments_cross(p[:, None, :], p[None, :, :], self.block[z]).any(axis=-1)
            d = np.hypot(p[:, None, 0] - p[None, :, 0], p[:, None, 1] - p[None, :, 1])
            w[np.ix_(idx, idx)] = np.where(seen, np.maximum(d, 1e-6), 0.0)
        for i, j in cross:
            w[i, j] = 2 * SIDE_M
        np.fill_diagonal(w, 0.0)
        self.weights = w
        self._paths = lru_cache(maxsize=None)(self._all_pairs)
        _, label = connected_components(csr_matrix(w), directed=False)
        doors = [i for (i, _j) in cross if str(self.zone[i]) in {g.a for g in self.street}]
        # Nodes reachable from a street door: a point that sees none (behind a counter) is not
        # where a customer can stand.
        self.reachable = np.isin(label, label[doors]) if doors else np.ones(n, dtype=bool)
        self.split = {z for z in self.polys if not self.reachable[self.zone == z].all()}  # e.g. a counter across

    def _wall_ends(self, zone: str) -> list[np.ndarray]:
        """Points just past each free end of a wall (and to either side), to walk round it."""
        out = []
        for x1, y1, x2, y2 in self.walls:
            a, b = np.asarray([x1, y1]), np.asarray([x2, y2])
            length = float(np.hypot(*(b - a)))
            if length == 0:
                continue
            u = (b - a) / length
            nrm = np.asarray([-u[1], u[0]])
            for end, out_dir in ((a, -u), (b, u)):
                for side in (1.0, -1.0):
                    p = end + CLEARANCE_M * (out_dir + side * nrm)
                    if point_in_polygon((float(p[0]), float(p[1])), self.polys[zone]):
                        out.append(p)
        return out

    def clear(self, p: np.ndarray, zone: str, margin: float = CLEARANCE_M * 0.9) -> bool:
        """Is p inside the zone and at least `margin` from its edges and from every wall?"""
        return (
            point_in_polygon((float(p[0]), float(p[1])), self.polys[zone])
            and distance_to_segments(p, self.block[zone]) >= margin
        )

    def sides(self, g: Gate, c: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The points SIDE_M either side of crossing point c: (in zone a, in zone b)."""
        segs = self._shared(g.a, g.b)
        if not segs:
            return None, None
        s1, s2 = min(
            segs,
            key=lambda s: distance_to_segments(c, np.asarray([[*s[0], *s[1]]], float)),
        )
        u = np.asarray(s2, float) - np.asarray(s1, float)
        nrm = np.asarray([-u[1], u[0]]) / np.hypot(*u)
        pa, pb = c + SIDE_M * nrm, c - SIDE_M * nrm
        if not point_in_polygon((float(pa[0]), float(pa[1])), self.polys[g.a]):
            pa, pb = pb, pa
        ok_a = point_in_polygon((float(pa[0]), float(pa[1])), self.polys[g.a])
        ok_b = point_in_polygon((float(pb[0]), float(pb[1])), self.polys[g.b])
        return (pa if ok_a else None), (pb if ok_b else None)

    def visible(self, p: np.ndarray, q: np.ndarray, zone: str) -> bool:
        """Does the straight walk p -> q stay in the zone and cross no wall?"""
        return not bool(segments_cross(np.asarray(p, float), np.asarray(q, float), self.block[zone]).any())

    def point(self, zone: str, rng: np.random.Generator) -> tuple[float, float]:
        """A random point of the zone, clear of its edges and walls (where a person can stand)."""
        poly = self.polys[zone]
        for _ in range(POINT_TRIES):
            p = np.asarray(random_point_in(poly, rng), float)
            if self.clear(p, zone) and (zone not in self.split or self.reachable[self._reach(p, zone)[0]].any()):
                return float(p[0]), float(p[1])
        nodes = self.xy[(self.zone == zone) & self.reachable]
        p = nodes[int(rng.integers(len(nodes)))] if len(nodes) else np.asarray(random_point_in(poly, rng))
        return float(p[0]), float(p[1])

    def _all_pairs(self, allowed: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
        keep = np.isin(self.zone, list(allowed))
        w = self.weights * keep[:, None] * keep[None, :]
        return shortest_path(csr_matrix(w), method="D", return_predecessors=True)

    def _reach(self, p: np.ndarray, zone: str) -> tuple[np.ndarray, np.ndarray]:
        """The nodes of the zone that p sees, and how far they are."""
        idx = np.flatnonzero(self.zone == zone)
        if not len(idx):
            return idx, np.zeros(0)
        q = self.xy[idx]
        seen = ~segments_cross(np.broadcast_to(p, q.shape), q, self.block[zone]).any(axis=-1)
        idx, q = idx[seen], q[seen]
        return idx, np.hypot(q[:, 0] - p[0], q[:, 1] - p[1])

    def route(
        self, src: Point, src_zone: str, dst: Point, dst_zone: str, via: frozenset[str] = frozenset()
    ) -> list[tuple[tuple[float, float], str]]:
        """The shortest walk from src to dst through zones `via` (and the two ends' zones), as
        waypoints with the zone each one is in; a zone change happens on its opening."""
        p, q = np.asarray(src, float), np.asarray(dst, float)
        end = [((float(q[0]), float(q[1])), dst_zone)]
        if src_zone == dst_zone and self.visible(p, q, src_zone):
            return end
        dist, pred = self._paths(via | {src_zone, dst_zone})
        vs, ds = self._reach(p, src_zone)
        vt, dt = self._reach(q, dst_zone)
        if not len(vs) or not len(vt):
            raise ValueError(f"no walkable route from {src_zone} {tuple(p)} to {dst_zone} {tuple(q)}")
        total = ds[:, None] + dist[np.ix_(vs, vt)] + dt[None, :]
        k = int(np.argmin(total))
        if not np.isfinite(total.flat[k]):
            raise ValueError(f"zone {dst_zone!r} is unreachable from {src_zone!r}")
        i, j = int(vs[k // len(vt)]), int(vt[k % len(vt)])
        nodes = [j]
        while nodes[-1] != i:
            nodes.append(int(pred[i, nodes[-1]]))
        nodes.reverse()
        out = [((float(self.xy[i][0]), float(self.xy[i][1])), str(self.zone[i]))]
        for u, v in zip(nodes, nodes[1:], strict=False):
            if (u, v) in self.cross:
                c = self.cross[(u, v)]
                out.append(((float(c[0]), float(c[1])), str(self.zone[v])))
            out.append(((float(self.xy[v][0]), float(self.xy[v][1])), str(self.zone[v])))
        return self._straighten((_pt(p), src_zone), out + end)

    def _straighten(
        self, start: tuple[Point, str], route: list[tuple[tuple[float, float], str]]
    ) -> list[tuple[tuple[float, float], str]]:
        """Cross each opening where the straight line from the point before it to the point after
        it meets the boundary, when that line stays in the two zones and meets no wall: a wide
        opening is crossed anywhere along it, not only at its nodes."""
        out = [start]
        k = 0
        while k < len(route):
            xy, zone = route[k]
            if zone != out[-1][1] and len(out) >= 2 and k + 2 < len(route):
                c = self._crossing(out[-2][0], route[k + 2][0], out[-1][1], zone)
                if c is not None:
                    out[-1] = (c, zone)
                    k += 2
                    continue
            out.append((xy, zone))
            k += 1
        return out[1:]

    def _crossing(self, p: Point, q: Point, za: str, zb: str) -> tuple[float, float] | None:
        """Where the straight walk p (in za) -> q (in zb) crosses into zb, if it does so once,
        inside an opening between the two, and meets no wall; else None."""
        a, b = np.asarray(p, float), np.asarray(q, float)
        openings = self.openings.get(frozenset((za, zb)))
        if openings is None or segments_cross(a, b, self.walls).any():
            return None
        edges = np.concatenate([self.edges[za], self.edges[zb]])
        hit = segments_cross(a, b, edges)
        if not hit.any():
            return None
        e = edges[hit]
        d = b - a
        s = e[:, 2:4] - e[:, 0:2]
        t = ((e[:, 0] - a[0]) * s[:, 1] - (e[:, 1] - a[1]) * s[:, 0]) / (d[0] * s[:, 1] - d[1] * s[:, 0])
        if (t.max() - t.min()) * float(np.hypot(*d)) > 1e-6:
            return None  # leaves a zone somewhere else too
        c = a + float(t.mean()) * d
        if distance_to_segments(c, openings) > 1e-6:
            return None
        return _pt(c)

    def length(self, src: Point, src_zone: str, dst: Point, dst_zone: str, via: frozenset[str] = frozenset()) -> float:
        """Walking distance of `route`."""
        pts = [np.asarray(src, float)] + [
            np.asarray(p, float) for p, _ in self.route(src, src_zone, dst, dst_zone, via)
        ]
        return float(sum(np.hypot(*(b - a)) for a, b in zip(pts, pts[1:], strict=False)))


class Walk:
    """One person's itinerary as it is planned: waypoints, their times, and zone entries."""

    def __init__(self, t: float, xy: Point, zone: str, speed: float):
        self.times, self.pts, self.zones, self.speed = [t], [xy], [(t, zone)], speed

    @property
    def t(self) -> float:
        return self.times[-1]

    @property
    def zone(self) -> str:
        return self.zones[-1][1]

    def walk(self, xy: Point) -> None:
        x0, y0 = self.pts[-1]
        d = float(np.hypot(xy[0] - x0, xy[1] - y0))
        if d > 0:
            self.times.append(self.t + d / self.speed)
            self.pts.append((float(xy[0]), float(xy[1])))

    def dwell(self, seconds: float) -> None:
        if seconds > 0:
            self.times.append(self.t + seconds)
            self.pts.append(self.pts[-1])

    def enter(self, zone: str) -> None:
        self.zones.append((self.t, zone))

    def follow(self, route: list[tuple[tuple[float, float], str]]) -> None:
        """Walk a `FloorPlan.route`, entering each zone where the route crosses into it."""
        for xy, zone in route:
            self.walk(xy)
            if zone != self.zone:
                self.enter(zone)
