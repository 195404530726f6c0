"""UHF RFID read model: which tags each reader antenna reads, how often, how strongly.

A passive tag answers only when the forward power reaching it exceeds its sensitivity, so reads
fall off sharply with distance, off axis and through walls (cross-reads into the next room are
rare and weak). Vectorised over tags x antennas, ``rounds`` Gen2 rounds per window, producing the
aggregates `edge.window.RfidWindowAggregator` would. Equations: docs/scenarios.md, "Inside a run".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_config.geometry import crossings, segments_cross
from sim.scenario import Rfid
from sim.world import ItemState, Trajectories, World

_STATES = {s: i for i, s in enumerate(ItemState)}


@dataclass(frozen=True, slots=True)
class Antennas:
    """Every RFID antenna of the store as arrays (index i is antenna i)."""

    node: list[str]
    ant: np.ndarray  # antenna id on its reader
    xy: np.ndarray  # (A, 2)
    facing: np.ndarray  # (A, 2) unit vectors
    power_dbm: np.ndarray  # (A,)
    zone: list[str | None]

    def __len__(self) -> int:
        return len(self.node)


@dataclass(frozen=True, slots=True)
class TagRead:
    """Per-window aggregate of one tag at one antenna (times in simulation seconds)."""

    node: str
    epc: str
    ant: int
    n: int
    rssi_mean: float
    rssi_max: float
    first: float
    last: float


def store_antennas(world: World) -> Antennas:
    node, ant, xy, facing, power, zone = [], [], [], [], [], []
    for n in world.store.nodes:
        if n.rfid is None:
            continue
        for a in n.rfid.antennas:
            node.append(n.id)
            ant.append(a.id)
            xy.append(a.position)
            rad = np.radians(a.facing_deg)
            facing.append((np.cos(rad), np.sin(rad)))
            power.append(n.rfid.power_dbm)
            zone.append(a.zone)
    return Antennas(
        node,
        np.asarray(ant, dtype=int),
        np.asarray(xy, float).reshape(-1, 2),
        np.asarray(facing, float).reshape(-1, 2),
        np.asarray(power, float),
        zone,
    )


def antenna_gain_db(params: Rfid, facing: np.ndarray, ant_xy: np.ndarray, tag_xy: np.ndarray) -> np.ndarray:
    """(T, A) gain towards each tag: a cardioid around the facing, floored at the back lobe."""
    v = tag_xy[:, None, :] - ant_xy[None, :, :]
    d = np.maximum(np.hypot(v[..., 0], v[..., 1]), 1e-6)
    cos = (v[..., 0] * facing[None, :, 0] + v[..., 1] * facing[None, :, 1]) / d
    lin = ((1.0 + cos) / 2.0) ** params.pattern_exponent
    floor = 10 ** (-params.back_lobe_db / 10)
    return params.antenna_gain_dbi + 10 * np.log10(np.maximum(lin, floor))


def pair_link_budget(
    params: Rfid, ants: Antennas, tag_xy: np.ndarray, ai: np.ndarray, walls: np.ndarray, wall_db: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Like `link_budget` for C given (tag position, antenna index) pairs: (forward, one-way), each (C,)."""
    axy = ants.xy[ai]
    v = tag_xy - axy
    d = np.hypot(v[:, 0], v[:, 1])
    pl = params.path_loss_1m_db + 10 * params.path_loss_exponent * np.log10(np.maximum(d, 0.1))
    f = ants.facing[ai]
    cos = (v[:, 0] * f[:, 0] + v[:, 1] * f[:, 1]) / np.maximum(d, 1e-6)
    lin = ((1.0 + cos) / 2.0) ** params.pattern_exponent
    gain = params.antenna_gain_dbi + 10 * np.log10(np.maximum(lin, 10 ** (-params.back_lobe_db / 10)))
    one_way = gain - pl
    if len(walls):
        one_way = one_way - (segments_cross(tag_xy, axy, walls) * wall_db[None, :]).sum(axis=1)
    return ants.power_dbm[ai] + one_way, one_way



def link_budget(
    params: Rfid, ants: Antennas, tag_xy: np.ndarray, walls: np.ndarray, wall_db: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(forward power at the tag, one-way loss incl. gain, distance), each (T, A), no noise."""
    d = np.hypot(tag_xy[:, None, 0] - ants.xy[None, :, 0], tag_xy[:, None, 1] - ants.xy[None, :, 1])
    pl = params.path_loss_1m_db + 10 * params.path_loss_exponent * np.log10(np.maximum(d, 0.1))
    gain = antenna_gain_db(params, ants.facing, ants.xy, tag_xy)
    wall = (crossings(tag_xy, ants.xy, walls) * wall_db[None, None, :]).sum(axis=2) if len(walls) else 0.0
    one_way = gain - pl - wall
    return ants.power_dbm[None, :] + one_way, one_way, d


def sample_reads(
    params: Rfid, forward: np.ndarray, one_way: np.ndarray, rounds: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`rounds` inventory rounds per pair (vectors of length C): read mask and RSSI, each (rounds, C)."""
    fading = rng.normal(0.0, params.fading_sigma_db, size=(rounds, len(forward)))
    fwd = forward[None, :] + fading
    p = 1.0 / (1.0 + np.exp(-(fwd - params.tag_sensitivity_dbm) / params.read_width_db))
    read = rng.random(fwd.shape) < p
    rssi = np.clip(np.rint(fwd + one_way[None, :] - params.backscatter_loss_db), -127, 20)
    return read, rssi


class BodyShadow:
    """Which carried garments their carrier's body hides from each antenna.

    A body hides the bundle one person carries together and for a spell (people turn slowly), so
    the blocked state is a two-state Markov process in continuous time per (carrier, antenna),
    shared by that carrier's garments: blocked share `body_block_probability` in the long run,
    mean blocked spell `body_block_spell_s`. A share `body_block_own_share` of the (garment,
    window) pairs is blocked on its own instead, with the same probability (a garment held apart).
    docs/scenarios.md, "Inside a run".
    """

    def __init__(self, params: Rfid, rng: np.random.Generator):
        self.params, self.rng = params, rng
        self.state: dict[int, tuple[bool, float]] = {}  # key -> (blocked, when last drawn)

    def blocked(self, keys: np.ndarray, u: np.ndarray, t: float) -> np.ndarray:
        """Blocked mask at t of pairs keyed by (carrier, antenna); u: one uniform per pair."""
        p = self.params.body_block_probability
        own = self.params.body_block_own_share
        uniq, inv = np.unique(keys, return_inverse=True)
        draw = self.rng.random(len(uniq))
        # both switching rates sum to 1 / (spell x (1 - p)): blocked share p, mean blocked spell
        rate = 1.0 / (self.params.body_block_spell_s * max(1.0 - p, 1e-9))
        shared = np.empty(len(uniq), dtype=bool)
        for i, k in enumerate(uniq.tolist()):
            prev = self.state.get(k)
            q = p if prev is None else p + (prev[0] - p) * np.exp(-rate * abs(t - prev[1]))
            shared[i] = draw[i] < q
            self.state[k] = (bool(shared[i]), t)
        return np.where(u < own, u < own * p, shared[inv])


class RfidModel:
    """Steps every RFID antenna of the store through the world's item moves, window by window."""

    def __init__(
        self, world: World, params: Rfid, rng: np.random.Generator, traj: Trajectories | None = None
    ):
        self.world, self.params, self.rng = world, params, rng
        self.shadow = BodyShadow(params, rng.spawn(1)[0])  # its own stream: every other draw stays as it was
        self.body_log: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None  # t0 -> items, ants, hid
        self.ants = store_antennas(world)
        self.traj = traj or Trajectories(world.agents)
        self.walls = np.asarray([[*w.a, *w.b] for w in world.store.walls], dtype=float).reshape(-1, 4)
        self.wall_db = np.asarray([w.attenuation_db for w in world.store.walls], dtype=float)
        agent_idx = {a.id: i for i, a in enumerate(world.agents)}
        items = world.items
        self.epc = [it.epc for it in items]
        span = max([m.t for it in items for m in it.moves if np.isfinite(m.t)], default=0.0) + 10.0
        self.span = span
        keys: list[float] = []
        state, carrier, xs, ys, starts = [], [], [], [], []
        for i, it in enumerate(items):
            starts.append(len(keys))
            for m in it.moves:
                keys.append(i * span + m.t)
                state.append(_STATES[m.state])
                carrier.append(agent_idx.get(m.where, -1) if m.state == ItemState.CARRIED else -1)
                xs.append(m.xy[0] if m.xy else np.nan)
                ys.append(m.xy[1] if m.xy else np.nan)
        self.key = np.asarray(keys, dtype=float)
        self.state = np.asarray(state, dtype=np.int64)
        self.carrier = np.asarray(carrier, dtype=np.int64)
        self.mx, self.my = np.asarray(xs, float), np.asarray(ys, float)
        self.first = np.asarray(starts, dtype=np.int64)
        self.n_items = len(items)

    def _move_at(self, idx: np.ndarray, t: float) -> np.ndarray:
        """Index of each item's latest move at t (before its first move: its first)."""
        return np.searchsorted(self.key, idx * self.span + t, side="right") - 1

    def carriers(self, idx: np.ndarray, t: float) -> np.ndarray:
        """The agent index carrying each of the (carried) items idx at t."""
        return self.carrier[self._move_at(idx, t)]

    def positions(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indices of items in the store at t, their (n, 2) positions, carried mask)."""
        if self.n_items == 0:
            return np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros(0, bool)
        idx = np.arange(self.n_items)
        k = self._move_at(idx, t)
        valid = k >= self.first
        k = np.where(valid, k, 0)
        st = np.where(valid, self.state[k], _STATES[ItemState.ABSENT])
        present = (
            (st == _STATES[ItemState.SHELF])
            | (st == _STATES[ItemState.ROOM])
            | (st == _STATES[ItemState.CARRIED])
        )
        idx, k, st = idx[present], k[present], st[present]
        carried = st == _STATES[ItemState.CARRIED]
        xy = np.stack([self.mx[k], self.my[k]], axis=1)
        if carried.any():
            who = self.carrier[k[carried]]
            pos = self.traj.positions(who, np.full(len(who), t))
            xy[carried] = pos + np.asarray([0.25, 0.0])  # held at the side, about hip height
        return idx, xy, carried

    def window(self, t0: float, t1: float) -> list[TagRead]:
        """Reads aggregated over [t0, t1) for every (tag, antenna) read at least once."""
        if not len(self.ants):
            return []
        p = self.params
        tm = (t0 + t1) / 2
        idx, xy, carried = self.positions(tm)
        if not len(idx):
            return []
        d2 = (xy[:, None, 0] - self.ants.xy[None, :, 0]) ** 2 + (
            xy[:, None, 1] - self.ants.xy[None, :, 1]
        ) ** 2
        ti, ai = np.nonzero(d2 < p.max_range_m**2)
        if not len(ti):
            return []
        fwd, ow = pair_link_budget(p, self.ants, xy[ti], ai, self.walls, self.wall_db)
        u = self.rng.random(len(ti))  # one per pair, carried or not: the read draws below stay as they were
        car = carried[ti]
        body = np.zeros(len(ti), dtype=bool)
        if car.any():
            keys = self.carriers(idx[ti[car]], tm) * len(self.ants) + ai[car]
            body[car] = self.shadow.blocked(keys, u[car], tm)
            if self.body_log is not None:  # the ground truth an oracle may know (sim.room_gone_bound)
                self.body_log[t0] = (idx[ti[car]], ai[car], body[car])
        fwd = fwd - body * p.body_loss_db
        ow = ow - body * p.body_loss_db
        rounds = max(1, int(round(p.rounds_per_s * (t1 - t0))))
        read, rssi = sample_reads(p, fwd, ow, rounds, self.rng)
        n = read.sum(axis=0)
        hit = np.nonzero(n)[0]
        if not len(hit):
            return []
        read, rssi, n = read[:, hit], rssi[:, hit], n[hit]
        ssum = np.where(read, rssi, 0.0).sum(axis=0)
        smax = np.where(read, rssi, -1e9).max(axis=0)
        first_r = read.argmax(axis=0)
        last_r = rounds - 1 - read[::-1].argmax(axis=0)
        dt = (t1 - t0) / rounds
        node, ant, epc = self.ants.node, self.ants.ant.tolist(), self.epc
        items = idx[ti[hit]].tolist()
        return [
            TagRead(
                node[a], epc[i], ant[a], c, round(sm / c, 2), mx, t0 + (f + 0.5) * dt, t0 + (la + 0.5) * dt
            )
            for a, i, c, sm, mx, f, la in zip(
                ai[hit].tolist(),
                items,
                n.tolist(),
                ssum.tolist(),
                smax.tolist(),
                first_r.tolist(),
                last_r.tolist(),
                strict=True,
            )
        ]
