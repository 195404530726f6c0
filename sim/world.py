"""The simulated store's people: who comes, where they walk, what they carry.

Every agent's whole itinerary is generated up front from the scenario and the seed, so the
ground truth (which zone, when; when they crossed the door) is known exactly and a run can
be repeated bit for bit. Positions at any time come from interpolating the waypoints.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from firmware_config.store import StoreFile, ZoneKind
from sim.geometry import portal, random_point_in
from sim.scenario import Scenario


class AgentKind(StrEnum):
    PASSER_BY = "passer_by"
    SHOPPER = "shopper"  # anonymous shopper: a phone nobody may identify
    REGULAR = "regular"  # opted-in customer whose phone advertises an Eddystone-EID
    STAFF = "staff"  # staff badge: static iBeacon


@dataclass(frozen=True, slots=True)
class Customer:
    """A registered customer as enrolment would have created them."""

    id: str
    name: str
    identity_key: bytes
    recognition_consent: bool
    sizes: dict[str, str]
    brands: tuple[str, ...]


@dataclass(slots=True)
class Agent:
    id: str
    kind: AgentKind
    times: np.ndarray  # waypoint times (s)
    xy: np.ndarray  # waypoint positions (K, 2)
    zones: list[tuple[float, str]]  # (time entered, zone id), in order
    tx_offset_db: float
    advert_interval_s: float
    customer: Customer | None = None
    badge_minor: int | None = None
    entered_at: float | None = None  # door crossing into the store (ground truth)
    left_at: float | None = None  # door crossing out of the store

    @property
    def t_start(self) -> float:
        return float(self.times[0])

    @property
    def t_end(self) -> float:
        return float(self.times[-1])

    def position(self, t: float) -> tuple[float, float]:
        return float(np.interp(t, self.times, self.xy[:, 0])), float(np.interp(t, self.times, self.xy[:, 1]))

    def zone_at(self, t: float) -> str | None:
        if t < self.t_start or t > self.t_end:
            return None
        current = None
        for t0, z in self.zones:
            if t0 <= t:
                current = z
            else:
                break
        return current


_FIRST = ["Ada", "Ben", "Chloe", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca",
          "Mara", "Noah", "Olga", "Pia", "Quinn", "Rosa", "Sami", "Tara", "Umut", "Vera", "Wim", "Yara", "Zoe"]
_LAST = ["Adler", "Berg", "Costa", "Dietz", "Engel", "Fischer", "Graf", "Hahn", "Ivanova", "Jung", "Klein",
         "Lang", "Meyer", "Novak", "Ott", "Peters", "Roth", "Schulz", "Thiel", "Vogel", "Weber", "Yilmaz"]
_BRANDS = ["Nordkap", "Linea", "Atelier Sud", "Hafen", "Kiko Denim", "Mono", "Verde", "Oslo Knit"]
_SIZES = ["XS", "S", "M", "L", "XL"]


@dataclass
class World:
    """Everything that happens in one run; built once by `build_world`."""

    store: StoreFile
    scenario: Scenario
    agents: list[Agent]
    customers: list[Customer]
    portals: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def active(self, t: float) -> list[Agent]:
        return [a for a in self.agents if a.t_start <= t <= a.t_end]


class _Planner:
    """Walks agents through the zone graph, via the portals between zones."""

    def __init__(self, store: StoreFile, rng: np.random.Generator, speed: float):
        self.store, self.rng, self.speed = store, rng, speed
        self.zones = {z.id: z for z in store.zones}
        self.graph: dict[str, set[str]] = {z.id: set(z.connects) for z in store.zones}
        for z in store.zones:  # connections are symmetric
            for other in z.connects:
                self.graph.setdefault(other, set()).add(z.id)
        walls = [(w.a, w.b) for w in store.walls]
        self.portals: dict[tuple[str, str], tuple[float, float]] = {}
        for a, nbrs in self.graph.items():
            for b in nbrs:
                if (b, a) in self.portals:
                    self.portals[(a, b)] = self.portals[(b, a)]
                elif a in self.zones and b in self.zones:
                    self.portals[(a, b)] = portal(list(self.zones[a].polygon), list(self.zones[b].polygon), walls)

    def route(self, src: str, dst: str) -> list[str]:
        prev: dict[str, str | None] = {src: None}
        q = deque([src])
        while q:
            cur = q.popleft()
            if cur == dst:
                break
            for n in sorted(self.graph.get(cur, ())):
                if n not in prev:
                    prev[n] = cur
                    q.append(n)
        if dst not in prev:
            raise ValueError(f"zone {dst!r} is unreachable from {src!r}")
        path = [dst]
        while prev[path[-1]] is not None:
            path.append(prev[path[-1]])  # type: ignore[arg-type]
        return path[::-1]

    def point(self, zone: str) -> tuple[float, float]:
        return random_point_in(list(self.zones[zone].polygon), self.rng)


class _Path:
    def __init__(self, t: float, xy: tuple[float, float], zone: str, speed: float):
        self.times, self.pts, self.zones, self.speed = [t], [xy], [(t, zone)], speed

    @property
    def t(self) -> float:
        return self.times[-1]

    def walk(self, xy: tuple[float, float]) -> None:
        x0, y0 = self.pts[-1]
        self.times.append(self.t + float(np.hypot(xy[0] - x0, xy[1] - y0)) / self.speed)
        self.pts.append(xy)

    def dwell(self, seconds: float) -> None:
        self.times.append(self.t + seconds)
        self.pts.append(self.pts[-1])

    def enter(self, zone: str) -> None:
        self.zones.append((self.t, zone))


def _go(plan: _Planner, path: _Path, src: str, dst: str, target: tuple[float, float] | None = None) -> None:
    route = plan.route(src, dst)
    for a, b in zip(route, route[1:], strict=False):
        path.walk(plan.portals[(a, b)])
        path.enter(b)
    path.walk(target if target is not None else plan.point(dst))


def build_world(sc: Scenario, store: StoreFile) -> World:
    rng = np.random.default_rng(sc.scenario.seed)
    pop, radio = sc.population, sc.radio
    plan = _Planner(store, rng, pop.walking_speed_mps)
    kinds = {z.id: z.kind for z in store.zones}
    outside = next(z.id for z in store.zones if z.kind == ZoneKind.OUTSIDE)
    entrances = [z for z, k in kinds.items() if k == ZoneKind.ENTRANCE and outside in plan.graph[z]]
    floors = [z for z, k in kinds.items() if k == ZoneKind.FLOOR] or entrances
    rooms = [z for z, k in kinds.items() if k == ZoneKind.FITTING_ROOM]
    tills = [z for z, k in kinds.items() if k == ZoneKind.TILL]
    out_poly = np.asarray(store.zone(outside).polygon, dtype=float)
    (ox0, oy0), (ox1, oy1) = out_poly.min(axis=0), out_poly.max(axis=0)
    duration = sc.scenario.duration_s
    arrivals_until = sc.scenario.arrivals_until_s or max(duration * 0.3, duration - 1200)

    customers: list[Customer] = []

    def new_customer(consent: bool) -> Customer:
        i = len(customers)
        c = Customer(
            id=f"c{i:05d}",
            name=f"{_FIRST[rng.integers(len(_FIRST))]} {_LAST[rng.integers(len(_LAST))]}",
            identity_key=rng.bytes(16),
            recognition_consent=consent,
            sizes={"tops": _SIZES[rng.integers(len(_SIZES))], "trousers": str(int(rng.integers(28, 38)))},
            brands=tuple(sorted({_BRANDS[j] for j in rng.integers(len(_BRANDS), size=2)})),
        )
        customers.append(c)
        return c

    def tx_offset() -> float:
        return float(rng.normal(0.0, radio.tx_offset_sigma_db))

    def lane_end(left: bool, lane_y: float) -> tuple[float, float]:
        return (float(ox0) if left else float(ox1), lane_y)

    agents: list[Agent] = []
    lane_y = float(np.clip(-sc.population.passer_by_lane_m, oy0 + 0.2, oy1 - 0.2))
    for i in range(pop.visitors):
        t0 = float(rng.uniform(0, arrivals_until))
        regular = rng.random() < pop.regular_fraction
        customer = None
        if regular:
            customer = new_customer(consent=not (rng.random() < pop.unconsented_fraction))
        ent = entrances[int(rng.integers(len(entrances)))]
        from_left = bool(rng.random() < 0.5)
        door_out = plan.portals[(outside, ent)]
        start = lane_end(from_left, float(rng.uniform(max(oy0 + 0.3, door_out[1] - 3), min(oy1, door_out[1]) - 0.3)))
        p = _Path(t0, start, outside, pop.walking_speed_mps)
        p.walk((door_out[0], start[1]))
        p.walk(door_out)
        p.enter(ent)
        entered_at = p.t
        here = ent
        for _ in range(int(rng.integers(pop.browse_stops[0], pop.browse_stops[1] + 1))):
            dst = floors[int(rng.integers(len(floors)))]
            _go(plan, p, here, dst)
            here = dst
            p.dwell(float(rng.uniform(*pop.browse_dwell_s)))
        if rooms and rng.random() < pop.fitting_room_probability:
            room = rooms[int(rng.integers(len(rooms)))]
            _go(plan, p, here, room)
            p.dwell(float(rng.uniform(*pop.fitting_dwell_s)))
            here = room
        if tills and rng.random() < pop.purchase_probability:
            till = tills[int(rng.integers(len(tills)))]
            _go(plan, p, here, till)
            p.dwell(float(rng.uniform(*pop.till_dwell_s)))
            here = till
        _go(plan, p, here, ent, target=plan.portals[(ent, outside)])
        left_at = p.t
        p.enter(outside)
        p.walk(lane_end(not from_left, start[1]))
        agents.append(Agent(
            id=f"v{i:05d}", kind=AgentKind.REGULAR if customer else AgentKind.SHOPPER,
            times=np.asarray(p.times), xy=np.asarray(p.pts, dtype=float), zones=p.zones,
            tx_offset_db=tx_offset(),
            advert_interval_s=radio.advert_interval_s if customer else float(rng.uniform(*radio.anonymous_interval_s)),
            customer=customer, entered_at=entered_at, left_at=left_at,
        ))
    for i in range(pop.passers_by):
        t0 = float(rng.uniform(0, duration))
        from_left = bool(rng.random() < 0.5)
        y = float(np.clip(lane_y + rng.normal(0, 0.5), oy0 + 0.2, oy1 - 0.2))
        p = _Path(t0, lane_end(from_left, y), outside, float(rng.uniform(0.9, 1.6)))
        p.walk(lane_end(not from_left, y))
        customer = new_customer(consent=True) if rng.random() < pop.passer_by_regular_fraction else None
        agents.append(Agent(
            id=f"p{i:05d}", kind=AgentKind.PASSER_BY, times=np.asarray(p.times), xy=np.asarray(p.pts, dtype=float),
            zones=p.zones, tx_offset_db=tx_offset(),
            advert_interval_s=radio.advert_interval_s if customer else float(rng.uniform(*radio.anonymous_interval_s)),
            customer=customer,
        ))
    for i in range(pop.staff):
        home = floors[i % len(floors)]
        p = _Path(0.0, plan.point(home), home, pop.walking_speed_mps)
        here = home
        while p.t < duration:
            dst = floors[int(rng.integers(len(floors)))]
            _go(plan, p, here, dst)
            here = dst
            p.dwell(float(rng.uniform(30, 300)))
        agents.append(Agent(
            id=f"s{i:03d}", kind=AgentKind.STAFF, times=np.asarray(p.times), xy=np.asarray(p.pts, dtype=float),
            zones=p.zones, tx_offset_db=tx_offset(), advert_interval_s=1.0, badge_minor=i + 1,
        ))
    agents.sort(key=lambda a: a.t_start)
    return World(store=store, scenario=sc, agents=agents, customers=customers, portals=plan.portals)


def scripted_agent(
    agent_id: str, kind: AgentKind, waypoints: list[tuple[float, tuple[float, float], str]],
    customer: Customer | None = None, advert_interval_s: float = 0.5, tx_offset_db: float = 0.0,
    entered_at: float | None = None,
) -> Agent:
    """An agent following given (time, position, zone) waypoints: for hand-built test stories."""
    zones: list[tuple[float, str]] = []
    for t, _, z in waypoints:
        if not zones or zones[-1][1] != z:
            zones.append((t, z))
    return Agent(
        id=agent_id, kind=kind, times=np.asarray([w[0] for w in waypoints], dtype=float),
        xy=np.asarray([w[1] for w in waypoints], dtype=float), zones=zones, tx_offset_db=tx_offset_db,
        advert_interval_s=advert_interval_s, customer=customer, entered_at=entered_at,
    )
