"""Plane geometry of store layouts: polygons, walls and the portals between zones.

Pure functions, shared by the store-file validation, the simulator (walking, radio) and the
gateway's presence model, so all three agree on what is inside what.
"""

from __future__ import annotations

import numpy as np

Point = tuple[float, float]


def point_in_polygon(p: Point, poly: list[Point]) -> bool:
    """Ray casting; points on the boundary count as inside (zones share edges)."""
    x, y = p
    inside = False
    n = len(poly)
    for i in range(n):
        (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % n]
        if _on_segment(p, (x1, y1), (x2, y2)):
            return True
        if (y1 > y) != (y2 > y):
            xi = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < xi:
                inside = not inside
    return inside


def _on_segment(p: Point, a: Point, b: Point, eps: float = 1e-9) -> bool:
    (px, py), (ax, ay), (bx, by) = p, a, b
    cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    if abs(cross) > eps * max(1.0, abs(bx - ax) + abs(by - ay)):
        return False
    return min(ax, bx) - eps <= px <= max(ax, bx) + eps and min(ay, by) - eps <= py <= max(ay, by) + eps


def polygon_area(poly: list[Point]) -> float:
    n = len(poly)
    twice = sum(poly[i][0] * poly[(i + 1) % n][1] - poly[(i + 1) % n][0] * poly[i][1] for i in range(n))
    return abs(twice) / 2.0


def polygon_centroid(poly: list[Point]) -> Point:
    a = np.asarray(poly, dtype=float)
    x, y = a[:, 0], a[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    area = cross.sum() / 2
    if abs(area) < 1e-12:
        return float(x.mean()), float(y.mean())
    return float(((x + x1) * cross).sum() / (6 * area)), float(((y + y1) * cross).sum() / (6 * area))


def random_point_in(poly: list[Point], rng: np.random.Generator, margin: float = 0.3) -> Point:
    """A uniformly random point inside the polygon, kept `margin` metres off its bounding box."""
    a = np.asarray(poly, dtype=float)
    lo, hi = a.min(axis=0) + margin, a.max(axis=0) - margin
    if np.any(hi <= lo):
        lo, hi = a.min(axis=0), a.max(axis=0)
    for _ in range(200):
        p = (float(rng.uniform(lo[0], hi[0])), float(rng.uniform(lo[1], hi[1])))
        if point_in_polygon(p, poly):
            return p
    return polygon_centroid(poly)


def shared_boundary(pa: list[Point], pb: list[Point]) -> list[tuple[Point, Point]]:
    """Segments where the two polygons' edges overlap (colinear and touching)."""
    out = []
    for i in range(len(pa)):
        a1, a2 = np.asarray(pa[i], float), np.asarray(pa[(i + 1) % len(pa)], float)
        d = a2 - a1
        length = float(np.hypot(*d))
        if length == 0:
            continue
        u = d / length
        for j in range(len(pb)):
            b1, b2 = np.asarray(pb[j], float), np.asarray(pb[(j + 1) % len(pb)], float)
            # colinear: both b points on the a line
            if abs(_cross(u, b1 - a1)) > 1e-6 or abs(_cross(u, b2 - a1)) > 1e-6:
                continue
            s1, s2 = sorted((float(np.dot(b1 - a1, u)), float(np.dot(b2 - a1, u))))
            lo, hi = max(0.0, s1), min(length, s2)
            if hi - lo > 1e-6:
                out.append((tuple(a1 + u * lo), tuple(a1 + u * hi)))
    return out


def _cross(u: np.ndarray, v: np.ndarray) -> float:
    return float(u[0] * v[1] - u[1] * v[0])


def overlap_area(pa: list[Point], pb: list[Point]) -> float:
    """Area where the interiors of two simple polygons overlap (0 for neighbours sharing an edge).

    Exact for any simple polygons, convex or not: between consecutive x of the vertices and edge
    crossings no edge ends or crosses another, so the overlap's height is linear in x there and
    its value mid-slab times the slab's width is the slab's area."""
    xs = {float(x) for x, _ in pa} | {float(x) for x, _ in pb}
    for i in range(len(pa)):
        for j in range(len(pb)):
            hit = _crossing(pa[i], pa[(i + 1) % len(pa)], pb[j], pb[(j + 1) % len(pb)])
            if hit is not None:
                xs.add(hit[0])
    edges = sorted(xs)
    area = 0.0
    for x0, x1 in zip(edges, edges[1:], strict=False):
        if x1 - x0 > 1e-12:
            xm = (x0 + x1) / 2
            area += _common_length(_spans(pa, xm), _spans(pb, xm)) * (x1 - x0)
    return area


def _crossing(a1: Point, a2: Point, b1: Point, b2: Point) -> Point | None:
    """Where segments a1-a2 and b1-b2 cross (not parallel), else None."""
    rx, ry = a2[0] - a1[0], a2[1] - a1[1]
    sx, sy = b2[0] - b1[0], b2[1] - b1[1]
    denom = rx * sy - ry * sx
    if abs(denom) < 1e-12:
        return None
    qx, qy = b1[0] - a1[0], b1[1] - a1[1]
    t, u = (qx * sy - qy * sx) / denom, (qx * ry - qy * rx) / denom
    if 0 <= t <= 1 and 0 <= u <= 1:
        return a1[0] + t * rx, a1[1] + t * ry
    return None


def _spans(poly: list[Point], x: float) -> list[tuple[float, float]]:
    """The y intervals of the vertical line at `x` (no vertex there) inside the polygon."""
    ys = []
    for i in range(len(poly)):
        (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % len(poly)]
        if (x1 < x) != (x2 < x):
            ys.append(y1 + (x - x1) * (y2 - y1) / (x2 - x1))
    ys.sort()
    return list(zip(ys[::2], ys[1::2], strict=False))


def _common_length(sa: list[tuple[float, float]], sb: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(a1, b1) - max(a0, b0)) for a0, a1 in sa for b0, b1 in sb)


def segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = 0.0 if not ab.any() else float(np.clip(np.dot(p - a, ab) / np.dot(ab, ab), 0, 1))
    return float(np.hypot(*(p - (a + t * ab))))


def open_runs(pa: list[Point], pb: list[Point], walls: list[tuple[Point, Point]]) -> list[list[np.ndarray]]:
    """The wall-free runs of two zones' shared boundary, as points 0.1 m apart."""
    wall_arr = [(np.asarray(a, float), np.asarray(b, float)) for a, b in walls]
    runs: list[list[np.ndarray]] = []
    for s1, s2 in shared_boundary(pa, pb):
        a, b = np.asarray(s1, float), np.asarray(s2, float)
        n = max(2, int(np.hypot(*(b - a)) / 0.1) + 1)
        run: list[np.ndarray] = []
        for t in np.linspace(0, 1, n):
            p = a + t * (b - a)
            if all(segment_distance(p, wa, wb) > 0.05 for wa, wb in wall_arr):
                run.append(p)
            elif run:
                runs.append(run)
                run = []
        if run:
            runs.append(run)
    return runs


def run_length(run: list[np.ndarray]) -> float:
    return float(np.hypot(*(run[-1] - run[0]))) if len(run) > 1 else 0.0


def portal(pa: list[Point], pb: list[Point], walls: list[tuple[Point, Point]]) -> Point:
    """Where people pass from one zone to the next: the middle of the longest wall-free run
    of their shared boundary (the door in a glass shop front), else the middle of it."""
    segs = shared_boundary(pa, pb)
    if not segs:
        ca, cb = polygon_centroid(pa), polygon_centroid(pb)
        return (ca[0] + cb[0]) / 2, (ca[1] + cb[1]) / 2
    runs = open_runs(pa, pb, walls)
    if runs:
        best = max(runs, key=len)
        mid = best[len(best) // 2]
        return float(mid[0]), float(mid[1])
    (x1, y1), (x2, y2) = max(segs, key=lambda s: np.hypot(s[1][0] - s[0][0], s[1][1] - s[0][1]))
    return float(x1 + x2) / 2, float(y1 + y2) / 2


def door_opening(position: Point, width_m: float, pa: list[Point], pb: list[Point]) -> tuple[Point, Point]:
    """The two jambs of a door: `width_m` along the part of the zones' shared boundary nearest
    to `position`, centred on `position` projected onto it (clipped to that boundary)."""
    segs = shared_boundary(pa, pb)
    p = np.asarray(position, float)
    if not segs:
        return (float(p[0]), float(p[1])), (float(p[0]), float(p[1]))
    a, b = min(segs, key=lambda s: segment_distance(p, np.asarray(s[0], float), np.asarray(s[1], float)))
    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    length = float(np.hypot(*(b_ - a_)))
    u = (b_ - a_) / length
    s_mid = float(np.clip(np.dot(p - a_, u), 0.0, length))
    lo, hi = max(0.0, s_mid - width_m / 2), min(length, s_mid + width_m / 2)
    j1, j2 = a_ + lo * u, a_ + hi * u
    return (float(j1[0]), float(j1[1])), (float(j2[0]), float(j2[1]))


def passage_points(
    pa: list[Point], pb: list[Point], walls: list[tuple[Point, Point]], step: float = 0.25, min_width: float = 0.5
) -> list[Point]:
    """Where people can pass between two zones: points `step` apart along every wall-free run
    of their shared boundary at least `min_width` wide (an open boundary, such as a sales
    floor's edge, is passable all along it; a door in a glass front only in its opening),
    else the one `portal` (a curtain or a door drawn as a wall)."""
    pts = [p for run in open_runs(pa, pb, walls) if run_length(run) >= min_width for p in run]
    if not pts:
        return [portal(pa, pb, walls)]
    keep = max(1, int(round(step / 0.1)))  # open_runs samples every 0.1 m
    return [(float(p[0]), float(p[1])) for p in pts[::keep]]


def crossings(tx: np.ndarray, rx: np.ndarray, walls: np.ndarray) -> np.ndarray:
    """Boolean (T, R, W): does the straight line tx[t] -> rx[r] cross wall w?

    tx: (T, 2), rx: (R, 2), walls: (W, 4) as x1, y1, x2, y2. Vectorised segment intersection.
    """
    if len(walls) == 0:
        return np.zeros((len(tx), len(rx), 0), dtype=bool)
    return segments_cross(tx[:, None, :], rx[None, :, :], walls)


def segments_cross(p0: np.ndarray, p1: np.ndarray, walls: np.ndarray) -> np.ndarray:
    """Boolean (..., W): does segment p0 -> p1 cross wall w? p0 and p1 broadcast, shape (..., 2)."""
    p = p0[..., None, :]  # ...,1,2
    r = p1[..., None, :] - p  # ...,1,2
    q = walls[:, 0:2]  # W,2
    s = walls[:, 2:4] - q  # W,2
    rxs = r[..., 0] * s[..., 1] - r[..., 1] * s[..., 0]
    qp = q - p
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (qp[..., 0] * s[..., 1] - qp[..., 1] * s[..., 0]) / rxs
        u = (qp[..., 0] * r[..., 1] - qp[..., 1] * r[..., 0]) / rxs
    return (np.abs(rxs) > 1e-12) & (t > 0) & (t < 1) & (u >= 0) & (u <= 1)
