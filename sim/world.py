"""The simulated store's people: who comes, where they walk, what they carry.

Every agent's whole itinerary is generated up front from the scenario and the seed, so the
ground truth (which zone, when; when they crossed the door; where each garment was) is
known exactly and a run can be repeated bit for bit. Positions at any time come from
interpolating the waypoints.

Garments: the store's shelves hold tagged items (SGTIN-96 EPCs minted from the product
catalogue's GTINs). A shopper picks some up while browsing, carries them, may take them
into a fitting room and leave some there (staff clear the room later), buys some at the
till (a sold item is restocked after a while) and puts the rest back on a shelf.
"""

from __future__ import annotations

import csv
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from firmware_config.geometry import point_in_polygon, portal, random_point_in, shared_boundary
from firmware_config.store import NodeRole, StoreFile, ZoneKind
from gateway.epc import sgtin96_from_gtin
from sim.scenario import Scenario

ANONYMOUS_PHONE = "phone"  # the carrier of someone we may not identify
BADGE = "badge"  # a staff member's iBeacon badge, worn on the chest
RADIO_STREAM = 15  # the radio draws (carriers, power, carry) have their own random stream: paths never move with them


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
    carrier: str = ANONYMOUS_PHONE  # what transmits: a carrier kind of [carriers], or ANONYMOUS_PHONE / BADGE
    carry: str = "hand"  # where it is carried: a key of sim.radio.CARRY

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


_FIRST = [
    "Ada",
    "Ben",
    "Chloe",
    "David",
    "Elif",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Kira",
    "Luca",
    "Mara",
    "Noah",
    "Olga",
    "Pia",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Umut",
    "Vera",
    "Wim",
    "Yara",
    "Zoe",
]
_LAST = [
    "Adler",
    "Berg",
    "Costa",
    "Dietz",
    "Engel",
    "Fischer",
    "Graf",
    "Hahn",
    "Ivanova",
    "Jung",
    "Klein",
    "Lang",
    "Meyer",
    "Novak",
    "Ott",
    "Peters",
    "Roth",
    "Schulz",
    "Thiel",
    "Vogel",
    "Weber",
    "Yilmaz",
]
_BRANDS = ["Nordkap", "Linea", "Atelier Sud", "Hafen", "Kiko Denim", "Mono", "Verde", "Oslo Knit"]
_SIZES = ["XS", "S", "M", "L", "XL"]


class ItemState(StrEnum):
    ABSENT = "absent"  # not in the store yet (a restock that has not arrived)
    SHELF = "shelf"
    CARRIED = "carried"  # in a shopper's hands (position follows the agent)
    ROOM = "room"  # left in a fitting room
    GONE = "gone"  # sold and carried out of the store


@dataclass(frozen=True, slots=True)
class Product:
    """One line of the sample catalogue (sim/data/catalogue.csv)."""

    gtin: str  # GTIN-13 as printed on the label
    name: str
    brand: str
    colour: str
    size: str
    price_eur: float
    category: str

    @property
    def gtin14(self) -> str:
        return self.gtin.zfill(14)


@dataclass(frozen=True, slots=True)
class Shelf:
    id: str
    zone: str
    xy: tuple[float, float]
    stand: tuple[float, float]  # where a shopper stands to pick from it
    along: tuple[float, float] = (0.0, 1.0)  # unit vector along the shelf run
    length_m: float = 1.0
    node: str | None = None  # the shelf node whose antennas watch it


@dataclass(frozen=True, slots=True)
class ItemMove:
    t: float
    state: ItemState
    where: str  # shelf id, agent id or room id ("" when gone)
    xy: tuple[float, float] | None = None  # fixed position on a shelf or in a room


@dataclass(slots=True)
class Item:
    """A tagged garment and everything that happened to it (its moves, in time order)."""

    epc: str  # SGTIN-96, lower-case hex as on the wire
    product: Product
    home: str  # shelf id
    moves: list[ItemMove]
    sold_at: float | None = None

    def at(self, t: float) -> ItemMove:
        cur = ItemMove(-np.inf, ItemState.ABSENT, "")
        for m in self.moves:
            if m.t <= t:
                cur = m
            else:
                break
        return cur


CATALOGUE = Path(__file__).resolve().parent / "data" / "catalogue.csv"
_CATALOGUE_COLUMNS = ("gtin", "name", "brand", "colour", "size", "price_eur", "category")


def load_catalogue(path: str | Path = CATALOGUE) -> list[Product]:
    """Read a product catalogue CSV; errors name the file, the row and the column."""
    from gateway.epc import gs1_check_digit

    path = Path(path)
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _CATALOGUE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        for row_no, row in enumerate(reader, start=2):
            g = row["gtin"].strip()
            if not g.isdigit() or len(g) not in (8, 12, 13, 14) or gs1_check_digit(g.zfill(14)[:13]) != g[-1]:
                raise ValueError(f"{path}:{row_no}: gtin: {g!r} is not a GTIN with a valid check digit")
            try:
                price = float(row["price_eur"])
            except ValueError:
                raise ValueError(
                    f"{path}:{row_no}: price_eur: {row['price_eur']!r} is not a number"
                ) from None
            out.append(
                Product(g, row["name"], row["brand"], row["colour"], row["size"], price, row["category"])
            )
    if not out:
        raise ValueError(f"{path}: the catalogue has no products")
    return out


@dataclass
class World:
    """Everything that happens in one run; built once by `build_world`."""

    store: StoreFile
    scenario: Scenario
    agents: list[Agent]
    customers: list[Customer]
    portals: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    shelves: list[Shelf] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)

    def active(self, t: float) -> list[Agent]:
        return [a for a in self.agents if a.t_start <= t <= a.t_end]


class Trajectories:
    """All agents' waypoints in flat arrays, for vectorised positions of many (agent, t) pairs.

    Keys are `agent_index * SPAN + t`, so one `searchsorted` finds every pair's segment.
    """

    def __init__(self, agents: list[Agent]):
        self.span = float(max([a.t_end for a in agents], default=0.0)) + 10.0
        keys, xs, ys, starts = [], [], [], []
        n = 0
        for i, a in enumerate(agents):
            keys.append(i * self.span + a.times)
            xs.append(a.xy[:, 0])
            ys.append(a.xy[:, 1])
            starts.append(n)
            n += len(a.times)
        self.key = np.concatenate(keys) if keys else np.zeros(0)
        self.x = np.concatenate(xs) if xs else np.zeros(0)
        self.y = np.concatenate(ys) if ys else np.zeros(0)
        self.start = np.asarray(starts, dtype=np.int64)
        self.stop = np.asarray(starts[1:] + [n], dtype=np.int64)
        self.t_start = np.asarray([a.t_start for a in agents], dtype=float)
        self.t_end = np.asarray([a.t_end for a in agents], dtype=float)

    def positions(self, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        """(n, 2) positions of agents `idx` at times `t` (clamped to their first/last waypoint)."""
        if len(idx) == 0:
            return np.zeros((0, 2))
        t = np.clip(t, self.t_start[idx], self.t_end[idx])
        q = idx * self.span + t
        hi = np.searchsorted(self.key, q, side="left")
        hi = np.clip(hi, self.start[idx] + 1, np.maximum(self.stop[idx] - 1, self.start[idx] + 1))
        single = self.stop[idx] - self.start[idx] == 1
        hi = np.where(single, self.start[idx], hi)
        lo = np.where(single, hi, hi - 1)
        k0, k1 = self.key[lo], self.key[hi]
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(k1 > k0, (q - k0) / (k1 - k0), 0.0)
        f = np.clip(f, 0.0, 1.0)
        return np.stack(
            [self.x[lo] + f * (self.x[hi] - self.x[lo]), self.y[lo] + f * (self.y[hi] - self.y[lo])], axis=1
        )


class _Planner:
    """Walks agents through the zone graph, via the portals between zones."""

    def __init__(self, store: StoreFile, rng: np.random.Generator, speed: float):
        self.store, self.rng, self.speed = store, rng, speed
        self.zones = {z.id: z for z in store.zones}
        self.graph = store.zone_graph()
        walls = [(w.a, w.b) for w in store.walls]
        self.portals: dict[tuple[str, str], tuple[float, float]] = {}
        for a, nbrs in self.graph.items():
            for b in nbrs:
                if (b, a) in self.portals:
                    self.portals[(a, b)] = self.portals[(b, a)]
                elif a in self.zones and b in self.zones:
                    self.portals[(a, b)] = portal(
                        list(self.zones[a].polygon), list(self.zones[b].polygon), walls
                    )

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


@dataclass(frozen=True, slots=True)
class _Front:
    """A door from the outside to an entrance, with the pavement's lane geometry around it."""

    outside: str
    entrance: str
    door: np.ndarray  # the portal point
    along: np.ndarray  # unit vector along the shop front
    away: np.ndarray  # unit normal pointing away from the store
    s_range: tuple[float, float]  # extent of the outside zone along the front, relative to the door
    depth: float  # how far the outside zone reaches away from the front

    def point(self, s: float, off: float) -> tuple[float, float]:
        p = self.door + s * self.along + off * self.away
        return float(p[0]), float(p[1])


def _fronts(store: StoreFile, plan: _Planner) -> list[_Front]:
    kinds = {z.id: z.kind for z in store.zones}
    out = []
    for o in sorted(z for z, k in kinds.items() if k == ZoneKind.OUTSIDE):
        for e in sorted(plan.graph.get(o, ())):
            if kinds.get(e) != ZoneKind.ENTRANCE:
                continue
            door = np.asarray(plan.portals[(o, e)], dtype=float)
            opoly = list(store.zone(o).polygon)
            segs = shared_boundary(opoly, list(store.zone(e).polygon))
            if segs:
                a, b = max(segs, key=lambda s: np.hypot(s[1][0] - s[0][0], s[1][1] - s[0][1]))
                along = np.asarray(b, float) - np.asarray(a, float)
                along /= np.linalg.norm(along)
            else:
                along = np.asarray([1.0, 0.0])
            away = np.asarray([-along[1], along[0]])
            if not point_in_polygon(tuple(door + 0.2 * away), opoly):  # type: ignore[arg-type]
                away = -away
            rel = np.asarray(opoly, dtype=float) - door
            s = rel @ along
            depth = float(max((rel @ away).max(), 0.6))
            out.append(_Front(o, e, door, along, away, (float(s.min()), float(s.max())), depth))
    return out


def _shelves(store: StoreFile, sc: Scenario, plan: _Planner, floors: list[str]) -> list[Shelf]:
    """Shelf nodes of the store file are shelves; a store without any gets some on each floor."""
    out = []
    for n in store.nodes:
        if n.role != NodeRole.SHELF:
            continue
        zone = n.zone or next(
            (z.id for z in store.zones if point_in_polygon(n.position, list(z.polygon))), None
        )
        if zone is None:
            continue
        ants = n.rfid.antennas if n.rfid else []
        if len(ants) >= 2:
            pa = np.asarray([a.position for a in ants], dtype=float)
            along = pa[-1] - pa[0]
            length = float(np.linalg.norm(along))
            along = along / length if length > 0 else np.asarray([0.0, 1.0])
        else:
            along, length = np.asarray([0.0, 1.0]), 1.0
        facing = np.radians(ants[0].facing_deg) if ants else 0.0
        front = np.asarray([np.cos(facing), np.sin(facing)])
        stand = np.asarray(n.position, dtype=float) + 0.9 * front
        if not point_in_polygon((float(stand[0]), float(stand[1])), list(store.zone(zone).polygon)):
            stand = np.asarray(n.position, dtype=float)
        out.append(
            Shelf(
                n.id,
                zone,
                (float(n.position[0]), float(n.position[1])),
                (float(stand[0]), float(stand[1])),
                (float(along[0]), float(along[1])),
                max(length, 0.5),
                n.id,
            )
        )
    if out:
        return out
    for z in floors:
        for i in range(sc.items.shelves_per_floor):
            xy = plan.point(z)
            out.append(Shelf(f"shelf-{z}-{i + 1}", z, xy, xy))
    return out


class _Stock:
    """The items on each shelf and the rule for picking one: it must be there at that time and
    have no later move (itineraries are planned in arrival order, not in time order)."""

    def __init__(
        self, sc: Scenario, rng: np.random.Generator, shelves: list[Shelf], catalogue: list[Product]
    ):
        self.sc, self.rng, self.catalogue = sc, rng, catalogue
        self.shelves = {s.id: s for s in shelves}
        self.items: list[Item] = []
        self.pool: dict[str, list[Item]] = {s.id: [] for s in shelves}
        self.serials: dict[str, int] = {}
        for s in shelves:
            for _ in range(sc.items.items_per_shelf):
                self.mint(catalogue[int(rng.integers(len(catalogue)))], s.id, 0.0)

    def spot(self, shelf: Shelf) -> tuple[float, float]:
        u = float(self.rng.uniform(-0.5, 0.5)) * shelf.length_m
        return shelf.xy[0] + u * shelf.along[0], shelf.xy[1] + u * shelf.along[1]

    def mint(self, product: Product, shelf_id: str, t: float) -> Item:
        serial = self.serials.get(product.gtin, 0) + 1
        self.serials[product.gtin] = serial
        epc = sgtin96_from_gtin(product.gtin14, serial, self.sc.items.company_prefix_digits).lower()
        item = Item(
            epc,
            product,
            shelf_id,
            [ItemMove(t, ItemState.SHELF, shelf_id, self.spot(self.shelves[shelf_id]))],
        )
        self.items.append(item)
        self.pool[shelf_id].append(item)
        return item

    def pick(self, shelf_id: str, t: float, n: int, agent_id: str) -> list[Item]:
        avail = [it for it in self.pool[shelf_id] if it.moves[-1].t <= t]
        if not avail or n <= 0:
            return []
        chosen = [avail[int(i)] for i in self.rng.choice(len(avail), size=min(n, len(avail)), replace=False)]
        for it in chosen:
            self.pool[shelf_id].remove(it)
            it.moves.append(ItemMove(t, ItemState.CARRIED, agent_id))
        return chosen

    def put_back(self, item: Item, shelf_id: str, t: float) -> None:
        item.moves.append(ItemMove(t, ItemState.SHELF, shelf_id, self.spot(self.shelves[shelf_id])))
        self.pool[shelf_id].append(item)

    def leave_in_room(self, item: Item, room: str, xy: tuple[float, float], t: float) -> None:
        item.moves.append(ItemMove(t, ItemState.ROOM, room, xy))
        self.put_back(item, item.home, t + float(self.rng.uniform(*self.sc.items.room_clear_s)))

    def sell(self, item: Item, t: float) -> None:
        item.sold_at = t
        self.mint(item.product, item.home, t + float(self.rng.uniform(*self.sc.items.restock_s)))


def build_world(sc: Scenario, store: StoreFile) -> World:
    rng = np.random.default_rng(sc.scenario.seed)
    pop, radio = sc.population, sc.radio
    plan = _Planner(store, rng, pop.walking_speed_mps)
    kinds = {z.id: z.kind for z in store.zones}
    fronts = _fronts(store, plan)
    if not fronts:
        raise ValueError("store: no 'entrance' zone connects to an 'outside' zone")
    entrances = sorted({f.entrance for f in fronts})
    floors = [z for z, k in kinds.items() if k == ZoneKind.FLOOR] or entrances
    rooms = [z for z, k in kinds.items() if k == ZoneKind.FITTING_ROOM]
    tills = [z for z, k in kinds.items() if k == ZoneKind.TILL]
    duration = sc.scenario.duration_s
    arrivals_until = sc.scenario.arrivals_until_s or max(duration * 0.3, duration - 1200)
    stock: _Stock | None = None
    shelves: list[Shelf] = []
    if sc.items.enabled:
        shelves = _shelves(store, sc, plan, floors)
        stock = _Stock(sc, rng, shelves, load_catalogue(sc.items.catalogue or CATALOGUE))
    by_zone: dict[str, list[Shelf]] = {}
    for s in shelves:
        by_zone.setdefault(s.zone, []).append(s)

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

    radio_rng = np.random.default_rng([sc.scenario.seed, RADIO_STREAM])
    carriers = sc.carriers.kinds()
    carrier_p = np.asarray([c.share for _, c in carriers])
    carry_names = list(type(radio.carry).model_fields)
    carry_p = np.asarray([getattr(radio.carry, k) for k in carry_names])

    def pick(weights: np.ndarray) -> int:
        return int(radio_rng.choice(len(weights), p=weights / weights.sum()))

    def tx_offset(sigma_db: float, mean_db: float = 0.0) -> float:
        return float(radio_rng.normal(mean_db, sigma_db))

    def phone_agent(aid: str, kind: AgentKind, p: _Path, customer: Customer | None, **visit: float) -> Agent:
        """A person along a path with what they carry: a registered customer's carrier advertises
        at a rate of its kind, anonymous phones at random."""
        if customer is None:
            carrier, offset = ANONYMOUS_PHONE, tx_offset(radio.tx_offset_sigma_db)
            interval = float(radio_rng.uniform(*radio.anonymous_interval_s))
        else:
            carrier, c = carriers[pick(carrier_p)]
            offset = tx_offset(c.tx_sigma_db, c.tx_offset_db)
            interval = 1.0 / c.rates_hz[pick(np.asarray(c.rate_weights))]
        return Agent(
            id=aid,
            kind=kind,
            times=np.asarray(p.times),
            xy=np.asarray(p.pts, dtype=float),
            zones=p.zones,
            tx_offset_db=offset,
            advert_interval_s=interval,
            customer=customer,
            carrier=carrier,
            carry=carry_names[pick(carry_p)],
            **visit,
        )

    agents: list[Agent] = []
    arrivals = np.sort(rng.uniform(0, arrivals_until, size=pop.visitors))
    for i, t0 in enumerate(arrivals):
        aid = f"v{i:05d}"
        regular = rng.random() < pop.regular_fraction
        customer = None
        if regular:
            customer = new_customer(consent=not (rng.random() < pop.unconsented_fraction))
        front = fronts[int(rng.integers(len(fronts)))]
        sign = 1.0 if rng.random() < 0.5 else -1.0
        off = float(rng.uniform(0.3, max(0.31, min(3.0, front.depth - 0.3))))
        s_end = front.s_range[0] if sign > 0 else front.s_range[1]
        p = _Path(float(t0), front.point(s_end, off), front.outside, pop.walking_speed_mps)
        p.walk(front.point(0.0, off))
        p.walk(front.point(0.0, 0.0))
        p.enter(front.entrance)
        entered_at = p.t
        here = front.entrance
        want = int(rng.integers(sc.items.pick[0], sc.items.pick[1] + 1)) if stock else 0
        carried: list[Item] = []
        for _ in range(int(rng.integers(pop.browse_stops[0], pop.browse_stops[1] + 1))):
            dst = floors[int(rng.integers(len(floors)))]
            near = by_zone.get(dst)
            if stock is not None and near and len(carried) < want:
                shelf = near[int(rng.integers(len(near)))]
                _go(plan, p, here, dst, target=shelf.stand)
                p.dwell(float(rng.uniform(*pop.browse_dwell_s)))
                n = min(want - len(carried), int(rng.integers(1, 3)))
                carried += stock.pick(shelf.id, p.t, n, aid)
            else:
                _go(plan, p, here, dst)
                p.dwell(float(rng.uniform(*pop.browse_dwell_s)))
            here = dst
        if rooms and rng.random() < pop.fitting_room_probability:
            room = rooms[int(rng.integers(len(rooms)))]
            _go(plan, p, here, room)
            p.dwell(float(rng.uniform(*pop.fitting_dwell_s)))
            here = room
            if stock is not None:
                kept = []
                for it in carried:
                    if rng.random() < sc.items.leave_in_room_probability:
                        stock.leave_in_room(it, room, plan.point(room), p.t)
                    else:
                        kept.append(it)
                carried = kept
        till = (
            tills[int(rng.integers(len(tills)))]
            if tills and rng.random() < pop.purchase_probability
            else None
        )
        buying = [it for it in carried if till is not None and rng.random() < sc.items.buy_probability]
        returning = [it for it in carried if it not in buying]
        if stock is not None and returning:
            shelf = stock.shelves[returning[0].home]
            _go(plan, p, here, shelf.zone, target=shelf.stand)
            here = shelf.zone
            p.dwell(float(rng.uniform(5, 20)))
            for it in returning:
                stock.put_back(it, shelf.id, p.t)
        if till is not None:
            _go(plan, p, here, till)
            p.dwell(float(rng.uniform(*pop.till_dwell_s)))
            here = till
            for it in buying:
                stock.sell(it, p.t)  # type: ignore[union-attr]
        out_front = (
            front if len(fronts) == 1 or rng.random() < 0.7 else fronts[int(rng.integers(len(fronts)))]
        )
        _go(plan, p, here, out_front.entrance, target=out_front.point(0.0, 0.0))
        left_at = p.t
        p.enter(out_front.outside)
        p.walk(out_front.point(0.0, off))
        p.walk(out_front.point(out_front.s_range[1] if sign > 0 else out_front.s_range[0], off))
        for it in buying:
            it.moves.append(ItemMove(p.t, ItemState.GONE, ""))
        kind = AgentKind.REGULAR if customer else AgentKind.SHOPPER
        agents.append(phone_agent(aid, kind, p, customer, entered_at=entered_at, left_at=left_at))
    for i in range(pop.passers_by):
        t0 = float(rng.uniform(0, duration))
        front = fronts[int(rng.integers(len(fronts)))]
        lane = float(np.clip(pop.passer_by_lane_m + rng.normal(0, 0.5), 0.2, max(0.2, front.depth - 0.2)))
        ends = front.s_range if rng.random() < 0.5 else front.s_range[::-1]
        p = _Path(t0, front.point(ends[0], lane), front.outside, float(rng.uniform(0.9, 1.6)))
        p.walk(front.point(ends[1], lane))
        customer = new_customer(consent=True) if rng.random() < pop.passer_by_regular_fraction else None
        agents.append(phone_agent(f"p{i:05d}", AgentKind.PASSER_BY, p, customer))
    for i in range(pop.staff):
        home = floors[i % len(floors)]
        p = _Path(0.0, plan.point(home), home, pop.walking_speed_mps)
        here = home
        while p.t < duration:
            dst = floors[int(rng.integers(len(floors)))]
            _go(plan, p, here, dst)
            here = dst
            p.dwell(float(rng.uniform(30, 300)))
        agents.append(
            Agent(
                id=f"s{i:03d}",
                kind=AgentKind.STAFF,
                times=np.asarray(p.times),
                xy=np.asarray(p.pts, dtype=float),
                zones=p.zones,
                tx_offset_db=tx_offset(sc.carriers.key_fob.tx_sigma_db),  # a beacon of one model, as a fob
                advert_interval_s=1.0,
                badge_minor=i + 1,
                carrier=BADGE,
                carry="chest",
            )
        )
    agents.sort(key=lambda a: (a.t_start, a.id))
    items = stock.items if stock else []
    for it in items:
        it.moves.sort(key=lambda m: m.t)
    return World(
        store=store,
        scenario=sc,
        agents=agents,
        customers=customers,
        portals=plan.portals,
        shelves=shelves,
        items=items,
    )


def scripted_agent(
    agent_id: str,
    kind: AgentKind,
    waypoints: list[tuple[float, tuple[float, float], str]],
    customer: Customer | None = None,
    advert_interval_s: float = 0.5,
    tx_offset_db: float = 0.0,
    entered_at: float | None = None,
) -> Agent:
    """An agent following given (time, position, zone) waypoints: for hand-built test stories."""
    zones: list[tuple[float, str]] = []
    for t, _, z in waypoints:
        if not zones or zones[-1][1] != z:
            zones.append((t, z))
    return Agent(
        id=agent_id,
        kind=kind,
        times=np.asarray([w[0] for w in waypoints], dtype=float),
        xy=np.asarray([w[1] for w in waypoints], dtype=float),
        zones=zones,
        tx_offset_db=tx_offset_db,
        advert_interval_s=advert_interval_s,
        customer=customer,
        entered_at=entered_at,
    )
