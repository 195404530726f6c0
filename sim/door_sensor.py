"""The simulated door counter: the world's true door crossings in, what a sensor reports out.

Pure: true crossings from the agents' itineraries, errors from the scenario's `[door_sensor]`
figures (docs/scenarios.md) and a random stream of its own, so a scenario without a door sensor
draws nothing and keeps every score. `DoorFeed` turns the reports into the `door` messages a node
would send, for `sim.run.run_fast` to hand to the gateway in arrival order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge import protocol
from edge.door.zones import CLEAN_CONFIDENCE
from firmware_config.geometry import door_opening, segment_distance
from firmware_config.store import NodeRole, StoreFile
from gateway.engines.footfall import FIGURES, visitors_in
from sim.scenario import CurtainSensor, DoorSensor
from sim.score import percentile
from sim.truth import DoorPass, DoorReport, Truth
from sim.world import World

DOOR_STREAM = 41  # the door sensors' own random stream: the world and the radio never move with it
CURTAIN_STREAM = 43  # the curtain sensors' own
ON_DOOR_M = 0.3  # a crossing this close to a door's opening went through that door
MIN_REPORT_DELAY_S = 0.05  # a counter reports once both of its zones are free again: never at once
FLIP: dict[protocol.Direction, protocol.Direction] = {"in": "out", "out": "in"}
STATUS_INTERVAL_S = 30.0  # the edge node's default status period (edge/config.py `status_interval_s`): the heartbeat
STATUS_TRANSPORT_S = 0.1  # a status's way to the gateway: fixed, so the door's random stream draws as before


@dataclass(frozen=True, slots=True)
class SensedDoor:
    id: str
    kind: protocol.DoorSensorKind
    node: str  # the edge node that carries the sensor: the entrance node nearest the door, a room's own
    jambs: tuple[np.ndarray, np.ndarray] | None  # None: a curtain (crossings from the zone changes)


def sensed_doors(store: StoreFile, cfg: DoorSensor) -> list[SensedDoor]:
    """The street doors with a sensor, each with the node that reports it."""
    polys = {z.id: list(z.polygon) for z in store.zones}
    out = []
    for d in store.street_doors():
        if d.id not in cfg.doors:
            continue
        j1, j2 = door_opening(d.position, d.width_m, polys[d.zones[0]], polys[d.zones[1]])
        nodes = [n for n in store.nodes if n.role == NodeRole.ENTRANCE] or list(store.nodes)
        node = min(nodes, key=lambda n: float(np.hypot(n.position[0] - d.position[0], n.position[1] - d.position[1])))
        out.append(SensedDoor(d.id, cfg.doors[d.id], node.id, (np.asarray(j1, float), np.asarray(j2, float))))
    return out


def sensed_curtains(store: StoreFile, cfg: CurtainSensor) -> list[SensedDoor]:
    """The fitting rooms with a curtain sensor, each carried by the room's own node (its id is the room's)."""
    out = []
    for room in store.fitting_rooms():
        if room in cfg.doors:
            nodes = [n for n in store.nodes if n.zone == room and n.role == NodeRole.FITTING_ROOM]
            out.append(SensedDoor(room, cfg.doors[room], (nodes or list(store.nodes))[0].id, None))
    return out


Crossing = tuple[str, str | None, str, float, protocol.Direction]  # agent, party, door, t, direction


def curtain_crossings(world: World, rooms: list[SensedDoor]) -> list[Crossing]:
    """(agent, party, room, t, direction) of every way into and out of a sensed room during the run."""
    duration = world.scenario.scenario.duration_s
    ids = {r.id for r in rooms}
    out: list[Crossing] = []
    for a in world.agents:
        prev: str | None = None
        for t, z in a.zones:
            if 0.0 <= t < duration:
                if prev in ids:
                    out.append((a.id, a.party, str(prev), float(t), "out"))
                if z in ids:
                    out.append((a.id, a.party, z, float(t), "in"))
            prev = z
    return sorted(out, key=lambda c: (c[2], c[3], c[0]))


def true_crossings(world: World, doors: list[SensedDoor]) -> list[Crossing]:
    """(agent, party, door, t, direction) of every crossing through a sensed door during the run."""
    duration = world.scenario.scenario.duration_s
    out: list[Crossing] = []
    ways: tuple[protocol.Direction, protocol.Direction] = ("in", "out")
    for a in world.agents:
        for t, direction in zip((a.entered_at, a.left_at), ways, strict=True):
            if t is None or not 0.0 <= t < duration:
                continue
            p = np.asarray(a.position(t))
            near = [(segment_distance(p, *d.jambs), d) for d in doors if d.jambs is not None]
            dist, door = min(near, key=lambda x: x[0], default=(np.inf, None))
            if door is not None and dist <= ON_DOOR_M:
                out.append((a.id, a.party, door.id, float(t), direction))
    return sorted(out, key=lambda c: (c[2], c[3], c[0]))


def _spells(rng: np.random.Generator, cfg: DoorSensor, duration: float) -> list[tuple[float, float]]:
    n = int(rng.poisson(cfg.offline_per_h * duration / 3600.0))
    starts = np.sort(rng.uniform(0.0, duration, n))
    spells = [(float(s), float(s + rng.uniform(*cfg.offline_s))) for s in starts]
    return spells + ([(float(cfg.unplugged_s[0]), float(cfg.unplugged_s[1]))] if cfg.unplugged_s else [])


def _outcome(rng: np.random.Generator, cfg: DoorSensor, offline: bool, beside: bool, pair_miss: float) -> str:
    """The fate of one crossing: "offline", "missed", "pair_missed" or "sensed" (draws in this order)."""
    if offline:
        return "offline"
    if rng.random() >= cfg.detect_probability:
        return "missed"
    if beside and rng.random() < pair_miss:
        return "pair_missed"
    return "sensed"


def simulate(
    crossings: list[Crossing],
    doors: list[SensedDoor],
    cfg: DoorSensor,
    duration: float,
    rng: np.random.Generator,
) -> tuple[list[DoorPass], list[DoorReport], list[tuple[str, float, float]]]:
    """What each door's sensor makes of its crossings: (passes with their fate, reports, offline spells)."""
    passes: list[DoorPass] = []
    reports: list[DoorReport] = []
    offline: list[tuple[str, float, float]] = []

    def report(door: SensedDoor, t: float, direction: protocol.Direction, agent: str | None) -> None:
        sent = t + max(MIN_REPORT_DELAY_S, float(rng.normal(*cfg.report_delay_s)))
        arrival = sent + float(rng.uniform(*cfg.transport_s))
        reports.append(DoorReport(door.id, door.node, door.kind, t, direction, CLEAN_CONFIDENCE, sent, arrival, agent))

    for door in doors:
        spells = _spells(rng, cfg, duration)
        offline += [(door.id, a, b) for a, b in spells]

        def down(t: float, spells: list[tuple[float, float]] = spells) -> bool:
            return any(a <= t < b for a, b in spells)

        last = {"in": -np.inf, "out": -np.inf}
        pair_miss = getattr(cfg.pair_miss_probability, door.kind)
        for agent, party, d, t, direction in crossings:
            if d != door.id:
                continue
            beside = t - last[direction] < cfg.pair_gap_s
            last[direction] = t
            outcome = _outcome(rng, cfg, down(t), beside, pair_miss)
            if outcome == "sensed":
                wrong = rng.random() < cfg.direction_error
                report(door, t, FLIP[direction] if wrong else direction, agent)
            passes.append(DoorPass(agent, party, door.id, t, direction, outcome))
        n_false = int(rng.poisson(cfg.false_triggers_per_h * duration / 3600.0))
        for t in np.sort(rng.uniform(0.0, duration, n_false)).tolist():
            if not down(t):
                report(door, t, "in" if rng.random() < 0.5 else "out", None)
    reports.sort(key=lambda r: (r.arrival, r.node))
    return passes, reports, offline


def _messages(
    store: str, reports: list[DoorReport], doors: list[SensedDoor], offline: list[tuple[str, float, float]],
    duration: float, epoch: float,
) -> list[tuple[float, str, str, bytes]]:
    """Each report as the `door` message its node sends, and the nodes' heartbeats, by arrival."""
    seq: dict[str, int] = {}
    messages: list[tuple[float, str, str, bytes]] = []  # (arrival, node, kind, payload)
    for r in reports:
        seq[r.node] = seq.get(r.node, -1) + 1
        crossing = protocol.DoorCrossing(t=r.t + epoch, direction=r.direction, confidence=r.confidence)
        msg = protocol.DoorCrossings(
            v=protocol.VERSION, store=store, node=r.node, seq=seq[r.node], ts=r.sent_at + epoch,
            door=r.door, sensor=r.sensor, crossings=[crossing],
        )
        messages.append((r.arrival, r.node, "door", protocol.encode(msg)))
    messages += heartbeats(store, doors, offline, duration, epoch)
    messages.sort(key=lambda m: m[0])
    return messages


class _Feed:
    """Messages handed out by arrival time."""

    messages: list[tuple[float, str, str, bytes]]
    _next = 0

    def due(self, t: float) -> list[tuple[float, str, str, bytes]]:
        """The messages that arrive at the gateway by simulation time t, not handed out before."""
        start = self._next
        while self._next < len(self.messages) and self.messages[self._next][0] <= t:
            self._next += 1
        return self.messages[start:self._next]


class CurtainFeed(_Feed):
    """The fitting rooms' curtain sensors of a run: their `door` messages (the room's id as the door), by
    arrival. Their own random stream, so a scenario without them draws nothing and keeps every score."""

    def __init__(self, world: World, store: StoreFile, epoch: float):
        cfg = world.scenario.curtain_sensor
        rooms = sensed_curtains(store, cfg)
        rng = np.random.default_rng([world.scenario.scenario.seed, CURTAIN_STREAM])
        duration = world.scenario.scenario.duration_s
        self.passes, reports, offline = simulate(curtain_crossings(world, rooms), rooms, cfg, duration, rng)
        self.messages = _messages(store.store.id, reports, rooms, offline, duration, epoch)

    def metrics(self) -> dict:
        """The curtains' true crossings and what their sensors made of them."""
        fate = [p.outcome for p in self.passes]
        return {"curtain.crossings": len(fate), "curtain.sensed": fate.count("sensed"),
                "curtain.missed": len(fate) - fate.count("sensed")}


class DoorFeed(_Feed):
    """The door sensors of a run: the ground truth's door lists and the messages, by arrival."""

    def __init__(self, world: World, store: StoreFile, truth: Truth, epoch: float):
        cfg = world.scenario.door_sensor
        doors = sensed_doors(store, cfg)
        rng = np.random.default_rng([world.scenario.scenario.seed, DOOR_STREAM])
        duration = world.scenario.scenario.duration_s
        truth.door_passes, truth.door_reports, truth.door_offline = simulate(
            true_crossings(world, doors), doors, cfg, duration, rng
        )
        self.truth = truth
        self.messages = _messages(store.store.id, truth.door_reports, doors, truth.door_offline, duration, epoch)

    def metrics(self, counted_in: float) -> dict:
        """Footfall against the truth: `counted_in` is what the gateway counted as inward."""
        return door_metrics(self.truth, counted_in)

    @staticmethod
    def note(m: dict) -> str:
        """One line for the score table: the sensor's footfall against the truth."""
        error = m["door.footfall_error"]
        return (
            f"door sensor: {m['door.counted_in']} counted in, {m['door.visitors_in']:.0f} visitors estimated, for"
            f" {m['door.true_entries']} true entries"
            + ("" if error is None else f" (footfall error {error:.1%})")
            + f"; missed {m['door.missed']}, side by side {m['door.pair_missed']}, offline {m['door.offline_missed']},"
            f" wrong way {m['door.wrong_direction']}, false triggers {m['door.false_triggers']}"
        )


def heartbeats(
    store: str, doors: list[SensedDoor], offline: list[tuple[str, float, float]], duration: float, epoch: float
) -> list[tuple[float, str, str, bytes]]:
    """The status each sensor's node sends every STATUS_INTERVAL_S, as the edge node does: the sensor
    `ok`, or `no_data` during an offline spell (a sensor its driver gets nothing from)."""
    out = []
    for door in doors:
        spells = [(a, b) for d, a, b in offline if d == door.id]
        for t in np.arange(0.0, duration, STATUS_INTERVAL_S).tolist():
            down = any(a <= t < b for a, b in spells)
            health = protocol.DoorHealth(sensor=door.kind, state="no_data" if down else "ok")
            msg = protocol.NodeStatus(v=protocol.VERSION, store=store, node=door.node, state="online", ts=t + epoch,
                                      door=health)
            out.append((t + STATUS_TRANSPORT_S, door.node, "status", protocol.encode(msg)))
    return out


def door_metrics(truth: Truth, counted_in: float) -> dict:
    """`door.footfall_error` = |estimated visitors in - true entries| / true entries, and its parts.

    The estimate is `gateway.engines.footfall.visitors_in` over the inward crossings that reached the
    gateway, per door with its counter kind's figures; `door.counted_in` is the raw count."""
    entries = sum(p.direction == "in" for p in truth.door_passes)
    hours = truth.duration_s / 3600.0
    arrived = [r for r in truth.door_reports if r.direction == "in" and r.arrival <= truth.duration_s]
    visitors = sum(
        visitors_in([r.t for r in arrived if r.door == door], hours, FIGURES[kind])
        for door, kind in sorted({(r.door, r.sensor) for r in arrived})
    )
    outcomes = {k: sum(p.outcome == k for p in truth.door_passes) for k in ("missed", "pair_missed", "offline")}
    true_dir = {(p.agent, p.t): p.direction for p in truth.door_passes}
    wrong = sum(r.agent is not None and true_dir.get((r.agent, r.t)) != r.direction for r in truth.door_reports)
    delay = [r.arrival - r.t for r in truth.door_reports if r.agent is not None]
    return {
        "door.true_entries": entries,
        "door.counted_in": int(counted_in),
        "door.visitors_in": visitors,
        "door.footfall_error": abs(visitors - entries) / entries if entries else None,
        "door.missed": outcomes["missed"],
        "door.pair_missed": outcomes["pair_missed"],
        "door.offline_missed": outcomes["offline"],
        "door.wrong_direction": wrong,
        "door.false_triggers": sum(r.agent is None for r in truth.door_reports),
        "door.report_delay_p50_s": percentile(delay, 50),
        "door.report_delay_p95_s": percentile(delay, 95),
    }
