"""The simulated store's people: who comes, where they walk, what they carry.

Every agent's itinerary (walks, parties, fitting rooms, garments picked up, tried, bought or put
back) is generated up front from the scenario and the seed, so the ground truth is exact and a
run repeats bit for bit; positions interpolate the waypoints. docs/scenarios.md, "How people and
garments move".
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from firmware_config.geometry import point_in_polygon, polygon_centroid
from firmware_config.store import NodeRole, StoreFile, ZoneKind
from gateway.engines.epc import sgtin96_from_gtin
from sim.lanes import Lanes, project
from sim.parties import LAG_S, ROOM_BUFFER_S, ROOM_MAX_WAIT_S, RoomBook, follow, party_sizes, wait_spots
from sim.paths import FloorPlan, Gate, Walk
from sim.scenario import Population, Scenario

ANONYMOUS_PHONE = "phone"  # the carrier of someone we may not identify
BADGE = "badge"  # a staff member's iBeacon badge, worn on the chest
RADIO_STREAM = 15  # the radio draws (carriers, power, carry) have their own random stream: paths never move with them
WINDOW_STREAM = 16  # who stops at the shop window, where and how long: their own stream, other paths never move


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
    party: str | None = None  # visitors who came together share a party id
    party_size: int = 1
    window_s: tuple[float, float] | None = None  # a window shopper: standing at the shop front from..to

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
    from gateway.engines.epc import gs1_check_digit

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
        return self.locate(idx, t)[0]

    def locate(self, idx: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (n, 2) and, for agents standing still, the index of the waypoint they stand
        at (-1 while walking): the same spot gives the same key, so its radio paths can be cached."""
        if len(idx) == 0:
            return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
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
        xy = np.stack(
            [self.x[lo] + f * (self.x[hi] - self.x[lo]), self.y[lo] + f * (self.y[hi] - self.y[lo])], axis=1
        )
        still = (self.x[lo] == self.x[hi]) & (self.y[lo] == self.y[hi])
        return xy, np.where(still, lo, -1)


TRANSIT = (ZoneKind.ENTRANCE, ZoneKind.FLOOR, ZoneKind.TILL)  # zones people walk through on the way elsewhere
VISITOR_LANE_M = (0.3, 3.0)  # how far from the store side visitors walk along the outside zone
SAME_DOOR_PROBABILITY = 0.7  # visitors leave by the door they came in; else by any street door
PASSER_BY_SPEED_MPS = (0.9, 1.6)
PASSER_BY_LANE_SIGMA_M = 0.5  # passers-by spread this much around the scenario's lane
WINDOW_GAP_M = (0.3, 1.5)  # a window shopper stands this far out from the glass or door: arm's length to a step back
STAFF_DWELL_S = (30.0, 300.0)
PUT_BACK_S = (5.0, 20.0)  # at the shelf, putting garments back


class _Site:
    """What itineraries are planned on: the floor plan, its lanes, the zones by kind."""

    def __init__(self, store: StoreFile, rng: np.random.Generator):
        self.plan = FloorPlan(store)
        if not self.plan.street:
            raise ValueError("store: no street door or opening joins an 'outside' zone to the store")
        self.lanes = Lanes(store, self.plan)
        self.rng = rng
        kinds = {z.id: z.kind for z in store.zones}
        self.via = frozenset(z for z, k in kinds.items() if k in TRANSIT)
        entrances = sorted({g.b for g in self.plan.street})
        self.floors = [z for z, k in kinds.items() if k == ZoneKind.FLOOR] or entrances
        self.rooms = [z for z, k in kinds.items() if k == ZoneKind.FITTING_ROOM]
        self.tills = [z for z, k in kinds.items() if k == ZoneKind.TILL]
        self.waits = wait_spots(self.plan, self.rooms)
        self.centres = {r: polygon_centroid(self.plan.polys[r]) for r in self.rooms}
        self.book = RoomBook(self.rooms)

    def pick(self, options: list):  # noqa: ANN201
        return options[int(self.rng.integers(len(options)))]

    def go(self, p: Walk, dst: str, target: tuple[float, float] | None = None) -> None:
        """Walk on the floor plan to `target` (default: a random spot) in zone `dst`."""
        target = target if target is not None else self.plan.point(dst, self.rng)
        p.follow(self.plan.route(p.pts[-1], p.zone, target, dst, self.via))

    def _sides(self, door: Gate, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out, inside = self.plan.sides(door, c)
        if out is None or inside is None:  # validation makes every declared door a shared boundary
            raise ValueError(f"door between {door.a!r} and {door.b!r} is not on their shared boundary")
        return out, inside

    def arrive(self, t0: float, door: Gate, lane_m: float, forward: bool, speed: float) -> tuple[Walk, float]:
        """Along a lane of the door's outside zone, turning in at the door: (walk, door crossing time)."""
        lane = self.lanes.lane(door.a, lane_m)
        lane = lane if forward else lane[::-1]
        c = door.random_crossing(self.rng)
        out, inside = self._sides(door, c)
        k, q = project(lane, out)
        p = Walk(t0, (float(lane[0][0]), float(lane[0][1])), door.a, speed)
        for xy in [*lane[1 : k + 1], q]:
            p.walk((float(xy[0]), float(xy[1])))
        p.follow(self.plan.route(p.pts[-1], door.a, (float(out[0]), float(out[1])), door.a))
        p.walk((float(c[0]), float(c[1])))
        crossed = p.t
        p.enter(door.b)
        p.walk((float(inside[0]), float(inside[1])))
        return p, crossed

    def depart(self, p: Walk, door: Gate, lane_m: float, forward: bool) -> float:
        """Out through the door and away along a lane; returns the door crossing time."""
        c = door.random_crossing(self.rng)
        out, inside = self._sides(door, c)
        p.follow(self.plan.route(p.pts[-1], p.zone, (float(inside[0]), float(inside[1])), door.b, self.via))
        p.walk((float(c[0]), float(c[1])))
        crossed = p.t
        p.enter(door.a)
        p.walk((float(out[0]), float(out[1])))
        lane = self.lanes.lane(door.a, lane_m)
        lane = lane if forward else lane[::-1]
        k, q = project(lane, out)
        p.follow(self.plan.route(p.pts[-1], door.a, (float(q[0]), float(q[1])), door.a))
        for xy in lane[k + 1 :]:
            p.walk((float(xy[0]), float(xy[1])))
        return crossed

    def lane_m(self, zone: str) -> float:
        hi = min(VISITOR_LANE_M[1], self.lanes.width(zone) - VISITOR_LANE_M[0])
        return float(self.rng.uniform(VISITOR_LANE_M[0], max(VISITOR_LANE_M[0] + 0.01, hi)))


def _shelves(store: StoreFile, sc: Scenario, site: _Site, rng: np.random.Generator) -> list[Shelf]:
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
    for z in site.floors:
        for i in range(sc.items.shelves_per_floor):
            xy = site.plan.point(z, rng)
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


@dataclass
class _Trip:
    """A party's visit as its first member walks it."""

    walk: Walk
    entered_at: float
    left_at: float
    room_span: tuple[int, int] | None  # waypoint indices at the wait spot before and after the room


def _try_on(
    site: _Site, sc: Scenario, p: Walk, stock: _Stock | None, carried: list[Item]
) -> tuple[int, int] | None:
    """Queue for the fitting room that is free first, try on, leave some garments there.
    Returns the waypoint indices at the wait spot before and after, or None when every queue
    is too long."""
    pop, rng = sc.population, site.rng
    dwell = float(rng.uniform(*pop.fitting_dwell_s))

    def wait_at(room: str) -> float:  # a quick guess from straight-line distances, to choose the room
        spot, _ = site.waits[room]
        there = p.t + float(np.hypot(*np.subtract(spot, p.pts[-1]))) / p.speed
        walk_in = float(np.hypot(*np.subtract(spot, site.centres[room]))) / p.speed
        return site.book.free_from(room, there, 2 * walk_in + dwell + ROOM_BUFFER_S) - there

    room = min(rng.permutation(sorted(site.waits)).tolist(), key=wait_at)
    spot, floor = site.waits[room]
    there = p.t + site.plan.length(p.pts[-1], p.zone, spot, floor, site.via) / p.speed
    inside = site.plan.point(room, rng)
    walk_in = site.plan.length(spot, floor, inside, room) / p.speed
    start = site.book.free_from(room, there, 2 * walk_in + dwell + ROOM_BUFFER_S)
    if start - there > ROOM_MAX_WAIT_S:
        return None
    site.go(p, floor, target=spot)
    before = len(p.pts) - 1
    p.dwell(start - p.t)
    site.go(p, room, target=inside)
    p.dwell(dwell)
    if stock is not None:
        kept = []
        for it in carried:
            if rng.random() < sc.items.leave_in_room_probability:
                stock.leave_in_room(it, room, site.plan.point(room, rng), p.t)
            else:
                kept.append(it)
        carried[:] = kept
    site.go(p, floor, target=spot)
    site.book.take(room, start, p.t + ROOM_BUFFER_S)
    return before, len(p.pts) - 1


def _shop(
    site: _Site, sc: Scenario, stock: _Stock | None, by_zone: dict[str, list[Shelf]], aid: str, t0: float
) -> _Trip:
    """One visit: in by a street door, browse, maybe try on, put back, maybe pay, out by a door."""
    pop, rng = sc.population, site.rng
    door = site.pick(site.plan.street)
    lane_m = site.lane_m(door.a)
    forward = bool(rng.random() < 0.5)
    p, entered_at = site.arrive(t0, door, lane_m, forward, pop.walking_speed_mps)
    want = int(rng.integers(sc.items.pick[0], sc.items.pick[1] + 1)) if stock else 0
    carried: list[Item] = []
    for _ in range(int(rng.integers(pop.browse_stops[0], pop.browse_stops[1] + 1))):
        dst = site.pick(site.floors)
        near = by_zone.get(dst)
        if stock is not None and near and len(carried) < want:
            shelf = site.pick(near)
            site.go(p, dst, target=shelf.stand)
            p.dwell(float(rng.uniform(*pop.browse_dwell_s)))
            n = min(want - len(carried), int(rng.integers(1, 3)))
            carried += stock.pick(shelf.id, p.t, n, aid)
        else:
            site.go(p, dst)
            p.dwell(float(rng.uniform(*pop.browse_dwell_s)))
    room_span = None
    if site.waits and rng.random() < pop.fitting_room_probability:
        room_span = _try_on(site, sc, p, stock, carried)
    till = site.pick(site.tills) if site.tills and rng.random() < pop.purchase_probability else None
    buying = [it for it in carried if till is not None and rng.random() < sc.items.buy_probability]
    returning = [it for it in carried if it not in buying]
    if stock is not None and returning:
        shelf = stock.shelves[returning[0].home]
        site.go(p, shelf.zone, target=shelf.stand)
        p.dwell(float(rng.uniform(*PUT_BACK_S)))
        for it in returning:
            stock.put_back(it, shelf.id, p.t)
    if till is not None:
        site.go(p, till)
        p.dwell(float(rng.uniform(*pop.till_dwell_s)))
        for it in buying:  # only a store with stock has anything to buy
            assert stock is not None
            stock.sell(it, p.t)
    out = door if len(site.plan.street) == 1 or rng.random() < SAME_DOOR_PROBABILITY else site.pick(site.plan.street)
    if out.a != door.a:
        lane_m, forward = site.lane_m(out.a), bool(rng.random() < 0.5)
    left_at = site.depart(p, out, lane_m, forward)
    for it in buying:
        it.moves.append(ItemMove(p.t, ItemState.GONE, ""))
    return _Trip(p, entered_at, left_at, room_span)


def _visitors(
    site: _Site,
    sc: Scenario,
    stock: _Stock | None,
    by_zone: dict[str, list[Shelf]],
    arrivals_until: float,
    new_customer: Callable[[bool], Customer],
    phone_agent: Callable[..., Agent],
) -> list[Agent]:
    """Parties arriving at random: the first member plans the visit, the others follow it."""
    pop, rng = sc.population, site.rng
    agents: list[Agent] = []
    sizes = party_sizes(pop.visitors, pop.party_size_weights, rng)
    arrivals = np.sort(rng.uniform(0, arrivals_until, size=len(sizes)))
    for g, (size, t0) in enumerate(zip(sizes, arrivals, strict=True)):
        trip = _shop(site, sc, stock, by_zone, f"v{len(agents):05d}", float(t0))
        for m in range(size):
            customer = None
            if rng.random() < pop.regular_fraction:
                customer = new_customer(not (rng.random() < pop.unconsented_fraction))
            lag, p = 0.0, trip.walk
            if m:
                lag = float(rng.uniform(*LAG_S))
                outside = None if rng.random() < pop.room_companion_probability else trip.room_span
                alone = (site.floors, site.via) if rng.random() < pop.party_split_probability else None
                p = follow(trip.walk, site.plan, rng, lag, outside_room=outside, alone=alone)
            kind = AgentKind.REGULAR if customer else AgentKind.SHOPPER
            a = phone_agent(
                f"v{len(agents):05d}", kind, p, customer,
                entered_at=trip.entered_at + lag, left_at=trip.left_at + lag,
            )
            a.party, a.party_size = f"g{g:05d}", size
            agents.append(a)
    return agents


def _passers_by(
    site: _Site,
    pop: Population,
    duration: float,
    new_customer: Callable[[bool], Customer],
    phone_agent: Callable[..., Agent],
    window_rng: np.random.Generator,
) -> list[Agent]:
    """People walking along a lane of an outside zone from one end to the other; a share of them
    (`window_shopper_fraction`, drawn from `window_rng`) stop at the shop front on the way."""
    rng = site.rng
    agents = []
    for i in range(pop.passers_by):
        zone = site.pick(site.lanes.zones)
        lane = site.lanes.lane(zone, pop.passer_by_lane_m + float(rng.normal(0, PASSER_BY_LANE_SIGMA_M)))
        lane = lane if rng.random() < 0.5 else lane[::-1]
        p = Walk(float(rng.uniform(0, duration)), (float(lane[0][0]), float(lane[0][1])), zone, 1.0)
        p.speed = float(rng.uniform(*PASSER_BY_SPEED_MPS))
        spot = None
        if window_rng.random() < pop.window_shopper_fraction:
            spot = site.lanes.window_spot(zone, WINDOW_GAP_M, window_rng)
        window = _walk_past(site, p, lane, spot, float(window_rng.uniform(*pop.window_dwell_s)))
        customer = new_customer(True) if rng.random() < pop.passer_by_regular_fraction else None
        a = phone_agent(f"p{i:05d}", AgentKind.PASSER_BY, p, customer)
        a.window_s = window
        agents.append(a)
    return agents


def _walk_past(
    site: _Site, p: Walk, lane: np.ndarray, spot: tuple[float, float] | None, dwell_s: float
) -> tuple[float, float] | None:
    """Walk the lane; with a spot, step out of it to the shop front there, stand `dwell_s` and step
    back. Returns the time standing at the front (None without a spot)."""
    if spot is None:
        for xy in lane[1:]:
            p.walk((float(xy[0]), float(xy[1])))
        return None
    k, q = project(lane, np.asarray(spot, float))
    for xy in [*lane[1 : k + 1], q]:
        p.walk((float(xy[0]), float(xy[1])))
    p.follow(site.plan.route(p.pts[-1], p.zone, spot, p.zone))
    stop = p.t
    p.dwell(dwell_s)
    p.follow(site.plan.route(spot, p.zone, (float(q[0]), float(q[1])), p.zone))
    for xy in lane[k + 1 :]:
        p.walk((float(xy[0]), float(xy[1])))
    return stop, stop + dwell_s


class _People:
    """Registered customers, made as visitors and passers-by turn out to be regulars."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.customers: list[Customer] = []

    def new(self, consent: bool) -> Customer:
        rng = self.rng
        c = Customer(
            id=f"c{len(self.customers):05d}",
            name=f"{_FIRST[rng.integers(len(_FIRST))]} {_LAST[rng.integers(len(_LAST))]}",
            identity_key=rng.bytes(16),
            recognition_consent=consent,
            sizes={"tops": _SIZES[rng.integers(len(_SIZES))], "trousers": str(int(rng.integers(28, 38)))},
            brands=tuple(sorted({_BRANDS[j] for j in rng.integers(len(_BRANDS), size=2)})),
        )
        self.customers.append(c)
        return c


class _Phones:
    """What each person carries and how it advertises, drawn from the radio's own random stream."""

    def __init__(self, sc: Scenario):
        self.radio = sc.radio
        self.rng = np.random.default_rng([sc.scenario.seed, RADIO_STREAM])
        self.carriers = sc.carriers.kinds()
        self.carrier_p = np.asarray([c.share for _, c in self.carriers])
        self.carry_names = list(type(self.radio.carry).model_fields)
        self.carry_p = np.asarray([getattr(self.radio.carry, k) for k in self.carry_names])

    def pick(self, weights: np.ndarray) -> int:
        return int(self.rng.choice(len(weights), p=weights / weights.sum()))

    def tx_offset(self, sigma_db: float, mean_db: float = 0.0) -> float:
        return float(self.rng.normal(mean_db, sigma_db))

    def agent(
        self, aid: str, kind: AgentKind, p: Walk, customer: Customer | None,
        entered_at: float | None = None, left_at: float | None = None,
    ) -> Agent:
        """A person along a path with what they carry: a registered customer's carrier advertises
        at a rate of its kind, anonymous phones at random."""
        if customer is None:
            carrier, offset = ANONYMOUS_PHONE, self.tx_offset(self.radio.tx_offset_sigma_db)
            interval = float(self.rng.uniform(*self.radio.anonymous_interval_s))
        else:
            carrier, c = self.carriers[self.pick(self.carrier_p)]
            offset = self.tx_offset(c.tx_sigma_db, c.tx_offset_db)
            interval = 1.0 / c.rates_hz[self.pick(np.asarray(c.rate_weights))]
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
            carry=self.carry_names[self.pick(self.carry_p)],
            entered_at=entered_at,
            left_at=left_at,
        )


def _staff(site: _Site, sc: Scenario, phones: _Phones, duration: float) -> list[Agent]:
    """Staff with badges, walking between the shop floors all day."""
    pop, rng = sc.population, site.rng
    agents = []
    for i in range(pop.staff):
        home = site.floors[i % len(site.floors)]
        p = Walk(0.0, site.plan.point(home, rng), home, pop.walking_speed_mps)
        while p.t < duration:
            site.go(p, site.pick(site.floors))
            p.dwell(float(rng.uniform(*STAFF_DWELL_S)))
        agents.append(
            Agent(
                id=f"s{i:03d}",
                kind=AgentKind.STAFF,
                times=np.asarray(p.times),
                xy=np.asarray(p.pts, dtype=float),
                zones=p.zones,
                tx_offset_db=phones.tx_offset(sc.carriers.key_fob.tx_sigma_db),  # a beacon of one model, as a fob
                advert_interval_s=1.0,
                badge_minor=i + 1,
                carrier=BADGE,
                carry="chest",
            )
        )
    return agents


def _stock_and_shelves(sc: Scenario, store: StoreFile, site: _Site) -> tuple[_Stock | None, list[Shelf]]:
    """The garments and the shelves they start on, when the scenario has items."""
    if not sc.items.enabled:
        return None, []
    shelves = _shelves(store, sc, site, site.rng)
    return _Stock(sc, site.rng, shelves, load_catalogue(sc.items.catalogue or CATALOGUE)), shelves


def build_world(sc: Scenario, store: StoreFile) -> World:
    """The run's people, their paths and carriers, and the garments, all from the scenario's seed."""
    rng = np.random.default_rng(sc.scenario.seed)
    site = _Site(store, rng)
    duration = sc.scenario.duration_s
    arrivals_until = sc.scenario.arrivals_until_s or max(duration * 0.3, duration - 1200)
    stock, shelves = _stock_and_shelves(sc, store, site)
    by_zone: dict[str, list[Shelf]] = {}
    for s in shelves:
        by_zone.setdefault(s.zone, []).append(s)
    people, phones = _People(rng), _Phones(sc)
    agents = _visitors(site, sc, stock, by_zone, arrivals_until, people.new, phones.agent)
    window_rng = np.random.default_rng([sc.scenario.seed, WINDOW_STREAM])
    agents += _passers_by(site, sc.population, duration, people.new, phones.agent, window_rng)
    agents += _staff(site, sc, phones, duration)
    agents.sort(key=lambda a: (a.t_start, a.id))
    items = stock.items if stock else []
    for it in items:
        it.moves.sort(key=lambda m: m.t)
    return World(
        store=store,
        scenario=sc,
        agents=agents,
        customers=people.customers,
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
