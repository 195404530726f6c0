"""What the scanners hear: every agent's advertisements through the radio model.

`Emitter.step(t0, t1)` returns the packets each node received in that interval: the one source of
radio truth for the live air server and the fast run (`step_arrays`, numpy arrays). Vectorised
over transmissions x nodes, in rounds so each agent's shadowing advances once per advertisement
(docs/scenarios.md, "Inside a run"); `tests/test_sim_radio.py` checks it against plain Python.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from edge.ble.frames import EddystoneEID, IBeacon, encode_eddystone, encode_ibeacon
from edge.iphone import MASK_LEN, OVERFLOW_TYPE
from gateway.engines.eid import compute_eid
from sim.radio import (
    CARRY_POSITIONS,
    RadioParams,
    body_loss,
    mean_rssi,
    sample_packets,
    walk_headings,
    wall_loss,
)
from sim.world import Agent, AgentKind, Trajectories, World

EDDYSTONE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"
APPLE = 0x004C
IPHONE_APP = "iphone_app"  # the [carriers] kind whose identity a node must read over GATT
SAMSUNG = 0x0075
ADDRESS_ROTATION_S = 900  # phones rotate their random address about every 15 minutes


@dataclass(frozen=True, slots=True)
class Packet:
    """One advertisement received by one node: what bleak would hand to the callback."""

    node: str
    t: float
    address: str
    rssi: int
    manufacturer_data: dict[int, bytes]
    service_data: dict[str, bytes]
    agent: str  # ground truth only: never given to the system under test

    def service_uuids(self) -> list[str]:
        return list(self.service_data)


@dataclass(frozen=True, slots=True)
class Reception:
    """The packets of one interval as parallel arrays, ordered by (time, agent, node).

    `agent` indexes `world.agents`, `node` indexes `Emitter.nodes`.
    """

    t: np.ndarray  # float64 simulation time of the advertisement
    agent: np.ndarray  # int64
    node: np.ndarray  # int64
    rssi: np.ndarray  # int16 dBm

    def __len__(self) -> int:
        return len(self.t)


_EMPTY = Reception(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int16))
_NONE_SENT = (np.zeros(0), np.zeros(0, np.int64))


def radio_params(world: World) -> RadioParams:
    r = world.scenario.radio
    return RadioParams(
        ref_power_1m=r.ref_power_1m,
        path_loss_exponent=r.path_loss_exponent,
        shadowing_sigma_db=r.shadowing_sigma_db,
        shadowing_tau_s=r.shadowing_tau_s,
        fading_sigma_db=r.fading_sigma_db,
        sensitivity_dbm=r.sensitivity_dbm,
        body_loss_db=r.body_loss_db,
        packet_loss=r.packet_loss,
    )


def stable_hash(*parts: object) -> int:
    """A 64-bit hash that is the same in every process (Python's `hash` of str is salted)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


class Emitter:
    """Steps the world's transmitters forward and samples what each BLE node receives.

    `epoch` maps simulation time to the beacons' clock (EIDs are computed from it), so a live
    run can use Unix time and a fast run any fixed date.
    """

    def __init__(self, world: World, seed: int, epoch: float = 1_700_000_000.0):
        self.world, self.epoch, self.seed = world, epoch, seed
        self.rng = np.random.default_rng(seed + 7919)
        self.params = radio_params(world)
        store = world.store
        self.nodes = [n for n in store.nodes if n.ble is not None]
        self.node_xy = np.asarray([n.position for n in self.nodes], dtype=float).reshape(-1, 2)
        # a node's calibration differs from the nominal reference: model it as a receiver offset
        self.node_offset = np.asarray(
            [n.ble.ref_rssi_1m - self.params.ref_power_1m for n in self.nodes if n.ble is not None]
        )
        self.walls = np.asarray([[*w.a, *w.b] for w in store.walls], dtype=float).reshape(-1, 4)
        self.wall_db = np.asarray([w.attenuation_db for w in store.walls], dtype=float)
        self.k = store.store.eid_rotation_exponent
        self.uuid = store.store.ibeacon_uuids[0] if store.store.ibeacon_uuids else None
        self.jitter_s = world.scenario.radio.interval_jitter_s
        agents = world.agents
        self.traj = Trajectories(agents)
        n = len(agents)
        self.interval = np.asarray([a.advert_interval_s for a in agents], dtype=float)
        self.tx_offset = np.asarray([a.tx_offset_db for a in agents], dtype=float)
        self.carry = np.asarray([CARRY_POSITIONS.index(a.carry) for a in agents], dtype=np.int64)
        tr = self.traj
        self.heading = walk_headings(tr.x, tr.y, tr.start, tr.stop)  # per waypoint: the way on from there
        self.next_tx = np.full(n, np.nan)
        self.shadow = np.zeros((n, len(self.nodes)))
        self.shadow_t = np.full(n, np.nan)
        self._order = np.argsort(self.traj.t_start, kind="stable")
        self.sent: tuple[np.ndarray, np.ndarray] = _NONE_SENT  # (time, agent) of every advert of the last step
        self._ptr = 0
        self._live = np.zeros(0, dtype=np.int64)
        self._anon_payload: dict[int, dict[int, bytes]] = {}
        self._eid_cache: dict[tuple[int, int], bytes] = {}
        self._spot_walls: dict[int, np.ndarray] = {}  # wall loss to every node from each standing spot
        self._addr_cache: dict[tuple[int, int], str] = {}
        # each phone rotates on its own clock (a random phase), not every phone in the same second
        self.rotation_phase = np.asarray([stable_hash(a.id, "rotation", seed) % ADDRESS_ROTATION_S for a in agents])
        bit = world.scenario.carriers.iphone_app.overflow_bit
        self.overflow = bytes((OVERFLOW_TYPE,)) + (1 << bit).to_bytes(MASK_LEN, "little")  # bit p: byte p // 8

    # --- identities on the air --------------------------------------------------------------

    def address(self, agent: int, t: float) -> str:
        """The agent's random static address at time t (rotates every ADDRESS_ROTATION_S)."""
        period = int((t + self.epoch + self.rotation_phase[agent]) // ADDRESS_ROTATION_S)
        key = (agent, period)
        addr = self._addr_cache.get(key)
        if addr is None:
            h = stable_hash(self.world.agents[agent].id, period, self.seed) & 0xFFFFFFFFFFFF
            h |= 0xC00000000000  # random static address type bits
            addr = ":".join(f"{(h >> s) & 0xFF:02X}" for s in range(40, -8, -8))
            self._addr_cache[key] = addr
        return addr

    def payload_period(self, agent: int, t: float) -> int:
        """The payload of an agent changes only when its EID rotates: this is its period number."""
        a = self.world.agents[agent]
        return (int(t + self.epoch) >> self.k) if a.customer is not None else 0

    def payload(self, agent: int, t: float) -> tuple[dict[int, bytes], dict[str, bytes]]:
        a = self.world.agents[agent]
        if a.customer is not None and a.carrier == IPHONE_APP:  # backgrounded: only the overflow bit
            return {APPLE: self.overflow}, {}
        if a.customer is not None:
            beacon_t = int(t + self.epoch)
            key = (agent, beacon_t >> self.k)
            eid = self._eid_cache.get(key)
            if eid is None:
                eid = compute_eid(a.customer.identity_key, self.k, beacon_t)
                self._eid_cache[key] = eid
            return {}, {EDDYSTONE_UUID: encode_eddystone(EddystoneEID(tx_power=-20, eid=eid))}
        if a.kind == AgentKind.STAFF and self.uuid:
            return {APPLE: encode_ibeacon(IBeacon(self.uuid, 1, a.badge_minor or 0, -59))}, {}
        mfr = self._anon_payload.get(agent)
        if mfr is None:
            rnd = np.random.default_rng(stable_hash(a.id, self.seed) % (2**32))
            if rnd.random() < 0.6:
                mfr = {APPLE: bytes([0x10, 0x05]) + rnd.bytes(5)}  # Apple "nearby info"
            else:
                mfr = {SAMSUNG: bytes([0x01, 0x00]) + rnd.bytes(8)}
            self._anon_payload[agent] = mfr
        return mfr, {}

    # kept for callers of the first version
    def _payload(self, agent: Agent, t: float) -> tuple[dict[int, bytes], dict[str, bytes]]:
        return self.payload(self.world.agents.index(agent), t)

    # --- stepping ---------------------------------------------------------------------------

    def _live_agents(self, t0: float, t1: float) -> np.ndarray:
        order, ts = self._order, self.traj.t_start
        start = self._ptr
        while self._ptr < len(order) and ts[order[self._ptr]] < t1:
            self._ptr += 1
        if self._ptr > start:
            self._live = np.concatenate([self._live, order[start : self._ptr]])
        self._live = self._live[self.traj.t_end[self._live] >= t0]
        return self._live

    def _advance_shadow(self, a: np.ndarray, t: np.ndarray) -> np.ndarray:
        """One step of each agent's AR(1) shadowing per node; every agent at most once per call."""
        p = self.params
        r = len(self.nodes)
        last = self.shadow_t[a]
        fresh = np.isnan(last)
        dt = np.where(fresh, 0.0, np.maximum(0.0, t - np.where(fresh, t, last)))
        if p.shadowing_tau_s > 0:
            alpha = np.where(fresh, 0.0, np.exp(-dt / p.shadowing_tau_s))
        else:
            alpha = np.zeros(len(a))
        noise = self.rng.normal(0.0, 1.0, size=(len(a), r))
        row = (
            alpha[:, None] * self.shadow[a]
            + p.shadowing_sigma_db * np.sqrt(1 - alpha * alpha)[:, None] * noise
        )
        self.shadow[a] = row
        self.shadow_t[a] = t
        return row

    def step_arrays(self, t0: float, t1: float) -> Reception:
        """Receptions in [t0, t1) as arrays. Call with consecutive intervals.

        Every advertisement sent, heard or not, is left in `self.sent` (ground truth for the
        oracle, which also weighs the misses; nothing in the system under test sees it).
        """
        self.sent = _NONE_SENT
        if not len(self.nodes):
            return _EMPTY
        live = self._live_agents(t0, t1)
        if not len(live):
            return _EMPTY
        ts, te = self.traj.t_start[live], self.traj.t_end[live]
        nxt = self.next_tx[live]
        new = np.isnan(nxt)
        if new.any():
            nxt[new] = np.maximum(t0, ts[new]) + self.rng.uniform(0.0, self.interval[live[new]])
        tx_a, tx_t, tx_s = [], [], []
        due = nxt < t1
        while due.any():
            a, t = live[due], nxt[due]
            ok = (t >= t0) & (t >= ts[due]) & (t <= te[due])
            if ok.any():
                tx_a.append(a[ok])
                tx_t.append(t[ok])
                tx_s.append(self._advance_shadow(a[ok], t[ok]))
            nxt[due] = t + self.interval[a] + self.rng.uniform(0.0, self.jitter_s, size=len(a))
            due = nxt < t1
        self.next_tx[live] = nxt
        if not tx_a:
            return _EMPTY
        a = np.concatenate(tx_a)
        t = np.concatenate(tx_t)
        shadow = np.concatenate(tx_s)
        order = np.lexsort((a, t))
        a, t, shadow = a[order], t[order], shadow[order]
        self.sent = (t, a)
        xy, spot = self.traj.locate(a, t)
        mean = mean_rssi(
            xy, self.node_xy, self.tx_offset[a], self.walls, self.wall_db, self.params, self.node_offset,
            walls_db=self._walls_db(xy, spot),
        )
        mean -= body_loss(xy, self.headings(a, t), self.carry[a], self.node_xy, self.params.body_loss_db)
        got, rssi = sample_packets(mean, shadow, self.params, self.rng)
        i, j = np.nonzero(got)
        return Reception(t[i], a[i], j.astype(np.int64), rssi[i, j])

    def _walls_db(self, xy: np.ndarray, spot: np.ndarray) -> np.ndarray:
        """`wall_loss` of each advert to every node; people standing still (spot >= 0) reuse the
        loss of their spot, computed once: the wall test is the emitter's largest cost."""
        out = np.zeros((len(xy), len(self.nodes)))
        if not len(self.walls):
            return out
        walking = spot < 0
        if walking.any():
            out[walking] = wall_loss(xy[walking], self.node_xy, self.walls, self.wall_db)
        if not walking.all():
            keys, first, inv = np.unique(spot[~walking], return_index=True, return_inverse=True)
            cache = self._spot_walls
            new = [i for i, k in enumerate(keys.tolist()) if k not in cache]
            if new:
                rows = wall_loss(xy[~walking][first[new]], self.node_xy, self.walls, self.wall_db)
                for i, row in zip(new, rows, strict=True):
                    cache[int(keys[i])] = row
            out[~walking] = np.stack([cache[k] for k in keys.tolist()])[inv]
        return out

    def headings(self, a: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Which way agents `a` face at times `t`: the heading of the waypoint last passed."""
        tr = self.traj
        q = a * tr.span + np.clip(t, tr.t_start[a], tr.t_end[a])
        lo = np.searchsorted(tr.key, q, side="right") - 1
        return self.heading[np.clip(lo, tr.start[a], tr.stop[a] - 1)]

    def step(self, t0: float, t1: float) -> list[Packet]:
        """Packets received in [t0, t1), in time order. Call with consecutive intervals."""
        rec = self.step_arrays(t0, t1)
        return self.packets(rec)

    def packets(self, rec: Reception) -> list[Packet]:
        """The receptions as one `Packet` per (advertisement, node), as bleak would deliver them."""
        out: list[Packet] = []
        agents = self.world.agents
        for t, a, j, rssi in zip(
            rec.t.tolist(), rec.agent.tolist(), rec.node.tolist(), rec.rssi.tolist(), strict=True
        ):
            mfr, svc = self.payload(a, t)
            out.append(Packet(self.nodes[j].id, t, self.address(a, t), int(rssi), mfr, svc, agents[a].id))
        return out
