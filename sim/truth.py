"""Ground truth of a run: who was where when, and which garments were in which fitting room.

Built from the world's precomputed itineraries (never from what the system reported), so
the scorer can hold the system's events against it. Plain data, JSON round-trippable: every
run writes it next to its report (`r.json` -> `r.truth.json`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge.protocol import Direction, DoorSensorKind
from firmware_config.store import ZoneKind
from sim.world import Agent, ItemState, World

MERGE_GAP_S = 1e-6  # intervals that touch (carried in a room, then left there) are one stay


@dataclass(frozen=True, slots=True)
class ZoneStay:
    zone: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class AgentTruth:
    id: str
    kind: str  # passer_by | shopper | regular | staff
    customer_id: str | None
    consent: bool  # recognition consent (False for everyone who is not a registered customer)
    entered_at: float | None  # door crossing in
    left_at: float | None  # door crossing out
    stays: tuple[ZoneStay, ...]
    carrier: str = ""  # what transmitted: a [carriers] kind, "phone" (anonymous) or "badge" (staff)
    party: str | None = None  # visitors who came together share a party id
    party_size: int = 1
    window_s: tuple[float, float] | None = None  # a passer-by standing at the shop front from..to (never enters)

    def zone_at(self, t: float) -> str | None:
        for s in self.stays:
            if s.start <= t < s.end:
                return s.zone
        return None


@dataclass(frozen=True, slots=True)
class RoomItem:
    """A garment inside a fitting room from `start` to `end` (carried in, or left there)."""

    room: str
    epc: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class DoorPass:
    """Someone crossing a street door that has a door sensor, and what the sensor made of it."""

    agent: str
    party: str | None
    door: str
    t: float
    direction: Direction
    outcome: str  # sensed | missed | pair_missed (side by side with the one before) | offline


@dataclass(frozen=True, slots=True)
class DoorReport:
    """A crossing the door sensor sent: a true pass (`agent`) or a false trigger (`agent` None)."""

    door: str
    node: str
    sensor: DoorSensorKind
    t: float  # the crossing as reported
    direction: Direction  # as reported (wrong now and then)
    confidence: float
    sent_at: float  # when the node sent it
    arrival: float  # when the gateway got it
    agent: str | None


@dataclass
class Truth:
    duration_s: float
    agents: list[AgentTruth] = field(default_factory=list)
    room_items: list[RoomItem] = field(default_factory=list)
    zone_kinds: dict[str, str] = field(default_factory=dict)
    items_total: int = 0
    items_sold: int = 0
    door_passes: list[DoorPass] = field(default_factory=list)  # only at doors with a sensor
    door_reports: list[DoorReport] = field(default_factory=list)
    door_offline: list[tuple[str, float, float]] = field(default_factory=list)  # (door, from, to)

    def by_id(self) -> dict[str, AgentTruth]:
        return {a.id: a for a in self.agents}

    def customers(self) -> dict[str, AgentTruth]:
        return {a.customer_id: a for a in self.agents if a.customer_id is not None}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Truth:
        agents = [
            AgentTruth(**{**a, "stays": tuple(ZoneStay(**s) for s in a["stays"]),
                          "window_s": tuple(a["window_s"]) if a.get("window_s") else None})
            for a in d["agents"]
        ]
        return cls(
            d["duration_s"],
            agents,
            [RoomItem(**r) for r in d["room_items"]],
            dict(d["zone_kinds"]),
            d.get("items_total", 0),
            d.get("items_sold", 0),
            [DoorPass(**p) for p in d.get("door_passes", [])],
            [DoorReport(**r) for r in d.get("door_reports", [])],
            [(o[0], o[1], o[2]) for o in d.get("door_offline", [])],
        )

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), separators=(",", ":")), encoding="utf-8")


def _stays(a: Agent) -> tuple[ZoneStay, ...]:
    out = []
    for i, (t, z) in enumerate(a.zones):
        end = a.zones[i + 1][0] if i + 1 < len(a.zones) else a.t_end
        if end > t:
            out.append(ZoneStay(z, float(t), float(end)))
    return tuple(out)


def _merge(intervals: list[RoomItem]) -> list[RoomItem]:
    out: list[RoomItem] = []
    for r in sorted(intervals, key=lambda r: (r.epc, r.room, r.start)):
        if out and out[-1].epc == r.epc and out[-1].room == r.room and r.start - out[-1].end <= MERGE_GAP_S:
            out[-1] = RoomItem(r.room, r.epc, out[-1].start, max(out[-1].end, r.end))
        else:
            out.append(r)
    return sorted(out, key=lambda r: (r.start, r.room, r.epc))


def build_truth(world: World) -> Truth:
    duration = world.scenario.scenario.duration_s
    kinds = {z.id: str(z.kind) for z in world.store.zones}
    rooms = {z for z, k in kinds.items() if k == ZoneKind.FITTING_ROOM}
    agents = []
    by_id: dict[str, tuple[ZoneStay, ...]] = {}
    for a in world.agents:
        stays = _stays(a)
        by_id[a.id] = stays
        c = a.customer
        agents.append(
            AgentTruth(
                a.id,
                str(a.kind),
                c.id if c else None,
                bool(c and c.recognition_consent),
                a.entered_at,
                a.left_at,
                stays,
                a.carrier,
                a.party,
                a.party_size,
                a.window_s,
            )
        )
    room_items: list[RoomItem] = []
    for it in world.items:
        for i, m in enumerate(it.moves):
            end = it.moves[i + 1].t if i + 1 < len(it.moves) else duration
            end = min(end, duration)
            if end <= m.t:
                continue
            if m.state == ItemState.ROOM:
                room_items.append(RoomItem(m.where, it.epc, m.t, end))
            elif m.state == ItemState.CARRIED:
                for s in by_id.get(m.where, ()):
                    lo, hi = max(s.start, m.t), min(s.end, end)
                    if s.zone in rooms and hi > lo:
                        room_items.append(RoomItem(s.zone, it.epc, lo, hi))
    return Truth(
        duration,
        agents,
        _merge(room_items),
        kinds,
        len(world.items),
        sum(it.sold_at is not None for it in world.items),
    )
