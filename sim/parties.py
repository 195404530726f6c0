"""Parties and fitting rooms: people who shop together, and rooms that hold one party at a time.

A party's first member plans the visit (sim/world.py); every other member walks the same
itinerary a fraction of a second behind, stands beside them where they stop, sometimes
browses alone for a while and rejoins, and waits outside a fitting room unless they go in
with them (docs/scenarios.md, "How people move").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.paths import FloorPlan, Walk

LAG_S = (0.2, 0.9)  # how far behind the first member each other member walks: all cross a door within 1 s
BESIDE_M = (0.3, 0.7)  # where a member stands while the party stops: this far from the first member
ALONE_MIN_DWELL_S = 40.0  # only a stop at least this long leaves time to browse alone and come back
ALONE_MIN_S = 10.0  # time spent at their own spot when browsing alone
WAIT_M = 0.8  # people waiting for a fitting room stand this far from its opening, on the floor
ROOM_MAX_WAIT_S = 300.0  # a party facing a longer queue for every room gives trying on a miss
ROOM_BUFFER_S = 2.0  # a room is booked this much longer than the first member's stay (the others' lag)


def party_sizes(visitors: int, weights: tuple[float, ...], rng: np.random.Generator) -> list[int]:
    """Sizes 1..len(weights) drawn with these weights until they add up to `visitors`."""
    p = np.asarray(weights, float) / sum(weights)
    out: list[int] = []
    left = visitors
    while left > 0:
        n = min(left, int(rng.choice(len(p), p=p)) + 1)
        out.append(n)
        left -= n
    return out


class RoomBook:
    """When each fitting room is taken, as (start, end) spans that never overlap."""

    def __init__(self, rooms: list[str]):
        self.taken: dict[str, list[tuple[float, float]]] = {r: [] for r in rooms}

    def free_from(self, room: str, t: float, need: float) -> float:
        """The earliest start at or after t of a free span `need` seconds long."""
        start = t
        for a, b in sorted(self.taken[room]):
            if start + need <= a:
                break
            start = max(start, b)
        return start

    def take(self, room: str, start: float, end: float) -> None:
        self.taken[room].append((start, end))


def wait_spots(plan: FloorPlan, rooms: list[str]) -> dict[str, tuple[tuple[float, float], str]]:
    """Where a party waits for each room: just outside its opening, on the zone it opens onto."""
    out = {}
    for room in rooms:
        for g in plan.gates:
            if room not in (g.a, g.b):
                continue
            points = g.crossing_points()
            c = points[len(points) // 2]
            sa, sb = plan.sides(g, c)
            near, floor = (sb, g.b) if g.a == room else (sa, g.a)
            if near is None:
                continue
            away = (near - c) / np.hypot(*(near - c))
            spot = c + WAIT_M * away
            if not (plan.clear(spot, floor) and plan.visible(near, spot, floor)):
                spot = near
            out[room] = ((float(spot[0]), float(spot[1])), floor)
            break
    return out


def follow(
    lead: Walk,
    plan: FloorPlan,
    rng: np.random.Generator,
    lag: float,
    *,
    outside_room: tuple[int, int] | None,
    alone: tuple[list[str], frozenset[str]] | None,
) -> Walk:
    """Another member's walk: the first member's, `lag` seconds later, standing beside them at
    stops. `outside_room` (waypoint indices of the wait spot before and after the room) keeps
    them waiting there; `alone` (floors, zones to walk through) sends them browsing on their
    own during one long stop."""
    keep = [k for k in range(len(lead.pts)) if not (outside_room and outside_room[0] < k < outside_room[1])]
    lo, hi = (lead.times[outside_room[0]], lead.times[outside_room[1]]) if outside_room else (0.0, -1.0)
    w = Walk(lead.times[0] + lag, lead.pts[0], lead.zones[0][1], lead.speed)
    w.times, w.pts = [lead.times[k] + lag for k in keep], [lead.pts[k] for k in keep]
    w.zones = [(t + lag, z) for t, z in lead.zones if not lo < t < hi]
    zone_of = _zone_lookup(w)
    stops = _stops(w)
    for m, n in stops:
        _stand_beside(w, m, n, zone_of(w.times[m]), plan, rng)
    if alone is not None:
        floors, via = alone
        dwells = [k for m, n in stops for k in range(m, n)]
        long = [k for k in dwells if w.times[k + 1] - w.times[k] >= ALONE_MIN_DWELL_S and zone_of(w.times[k]) in floors]
        if long:
            _browse_alone(w, long[int(rng.integers(len(long)))], zone_of, plan, rng, floors, via)
    return w


def _zone_lookup(w: Walk) -> Callable[[float], str]:
    times = [t for t, _ in w.zones]
    zones = [z for _, z in w.zones]
    return lambda t: zones[max(0, int(np.searchsorted(times, t, side="right")) - 1)]


def _stops(w: Walk) -> list[tuple[int, int]]:
    """Where the walk stands still, as first and last waypoint (m, n) of each run at one spot,
    not counting its start and end. Dwells in a row at one spot (browsing a shelf, then putting
    things back on it) are one stop: moving each alone would leave the others' waypoints behind
    and join the stop's ends by a line nobody checked against the walls."""
    out = []
    m = 1
    while m < len(w.pts) - 2:
        n = m
        while n < len(w.pts) - 2 and w.pts[n + 1] == w.pts[m]:
            n += 1
        if n > m:
            out.append((m, n))
        m = n + 1
    return out


def _stand_beside(w: Walk, m: int, n: int, zone: str, plan: FloorPlan, rng: np.random.Generator) -> None:
    """Move the stop at waypoints m..n a little to one side, if that spot is reachable in a straight line."""
    ang = float(rng.uniform(0, 2 * np.pi))
    r = float(rng.uniform(*BESIDE_M))
    p = np.asarray(w.pts[m]) + r * np.asarray([np.cos(ang), np.sin(ang)])
    before, after = np.asarray(w.pts[m - 1]), np.asarray(w.pts[n + 1])
    if plan.clear(p, zone) and plan.visible(before, p, zone) and plan.visible(p, after, zone):
        w.pts[m : n + 1] = [(float(p[0]), float(p[1]))] * (n + 1 - m)


def _browse_alone(
    w: Walk,
    m: int,
    zone_of: Callable[[float], str],
    plan: FloorPlan,
    rng: np.random.Generator,
    floors: list[str],
    via: frozenset[str],
) -> None:
    """During the stop at m, m+1: walk to a spot of one's own, browse there, and come back in time."""
    here, zone = w.pts[m], zone_of(w.times[m])
    dst = floors[int(rng.integers(len(floors)))]
    spot = plan.point(dst, rng)
    trip = Walk(w.times[m], here, zone, w.speed)
    trip.follow(plan.route(here, zone, spot, dst, via))
    back = plan.route(spot, dst, here, zone, via)
    pts = [np.asarray(spot)] + [np.asarray(p) for p, _ in back]
    walk_back = sum(float(np.hypot(*(b - a))) for a, b in zip(pts, pts[1:], strict=False)) / w.speed
    stay = w.times[m + 1] - trip.t - walk_back
    if stay < ALONE_MIN_S:
        return
    trip.dwell(stay)
    trip.follow(back)
    w.pts[m + 1 : m + 1] = trip.pts[1:-1]
    w.times[m + 1 : m + 1] = trip.times[1:-1]
    w.zones = sorted(w.zones + trip.zones[1:])
