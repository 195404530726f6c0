"""What the scanners hear: every agent's advertisements through the radio model.

`Emitter.step(t0, t1)` returns the packets received by each node in that interval. It is the
one source of radio truth for both ways of running: the live air server (real time, real
edge processes) and the fast in-process run (virtual clock, no broker).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.ble.frames import EddystoneEID, IBeacon, encode_eddystone, encode_ibeacon
from gateway.eid import compute_eid
from sim.radio import RadioParams, mean_rssi, sample_packets
from sim.world import Agent, AgentKind, World

EDDYSTONE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"
APPLE = 0x004C
SAMSUNG = 0x0075


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


def radio_params(world: World) -> RadioParams:
    r = world.scenario.radio
    return RadioParams(
        ref_power_1m=r.ref_power_1m, path_loss_exponent=r.path_loss_exponent,
        shadowing_sigma_db=r.shadowing_sigma_db, shadowing_tau_s=r.shadowing_tau_s,
        fading_sigma_db=r.fading_sigma_db, sensitivity_dbm=r.sensitivity_dbm,
    )


class Emitter:
    """Steps the world's transmitters forward and samples what each BLE node receives.

    `epoch` maps simulation time to the beacons' clock (EIDs are computed from it), so a live
    run can use Unix time and a fast run any fixed date.
    """

    def __init__(self, world: World, seed: int, epoch: float = 1_700_000_000.0):
        self.world, self.epoch = world, epoch
        self.rng = np.random.default_rng(seed + 7919)
        self.params = radio_params(world)
        store = world.store
        self.nodes = [n for n in store.nodes if n.ble is not None]
        self.node_xy = np.asarray([n.position for n in self.nodes], dtype=float).reshape(-1, 2)
        # a node's calibration differs from the nominal reference: model it as a receiver offset
        self.node_offset = np.asarray([n.ble.ref_rssi_1m - self.params.ref_power_1m for n in self.nodes])  # type: ignore[union-attr]
        self.walls = np.asarray([[*w.a, *w.b] for w in store.walls], dtype=float).reshape(-1, 4)
        self.wall_db = np.asarray([w.attenuation_db for w in store.walls], dtype=float)
        self.k = store.store.eid_rotation_exponent
        self.uuid = store.store.ibeacon_uuids[0] if store.store.ibeacon_uuids else None
        self._next_tx: dict[str, float] = {}
        self._shadow: dict[str, np.ndarray] = {}
        self._shadow_t: dict[str, float] = {}
        self._anon_payload: dict[str, dict[int, bytes]] = {}
        self._eid_cache: dict[tuple[str, int], bytes] = {}
        self._idx = 0  # agents sorted by start time: everyone before this index has started
        self._live: list[Agent] = []

    def _address(self, agent: Agent, t: float) -> str:
        # phones rotate their random address every ~15 min; never the same across agents
        period = int((t + self.epoch) // 900)
        h = hash((agent.id, period, self.world.scenario.scenario.seed)) & 0xFFFFFFFFFFFF
        h |= 0xC00000000000  # random static address type bits
        return ":".join(f"{(h >> s) & 0xFF:02X}" for s in range(40, -8, -8))

    def _payload(self, agent: Agent, t: float) -> tuple[dict[int, bytes], dict[str, bytes]]:
        if agent.customer is not None:
            beacon_t = int(t + self.epoch)
            period = beacon_t >> self.k
            key = (agent.id, period)
            eid = self._eid_cache.get(key)
            if eid is None:
                eid = compute_eid(agent.customer.identity_key, self.k, beacon_t)
                self._eid_cache[key] = eid
            return {}, {EDDYSTONE_UUID: encode_eddystone(EddystoneEID(tx_power=-20, eid=eid))}
        if agent.kind == AgentKind.STAFF and self.uuid:
            return {APPLE: encode_ibeacon(IBeacon(self.uuid, 1, agent.badge_minor or 0, -59))}, {}
        mfr = self._anon_payload.get(agent.id)
        if mfr is None:
            rnd = np.random.default_rng(abs(hash(agent.id)) % (2**32))
            if rnd.random() < 0.6:
                mfr = {APPLE: bytes([0x10, 0x05]) + rnd.bytes(5)}  # Apple "nearby info"
            else:
                mfr = {SAMSUNG: bytes([0x01, 0x00]) + rnd.bytes(8)}
            self._anon_payload[agent.id] = mfr
        return mfr, {}

    def _active(self, t: float) -> list[Agent]:
        agents = self.world.agents
        while self._idx < len(agents) and agents[self._idx].t_start <= t:
            self._live.append(agents[self._idx])
            self._idx += 1
        self._live = [a for a in self._live if a.t_end >= t - 1.0]
        return [a for a in self._live if a.t_start <= t <= a.t_end]

    def step(self, t0: float, t1: float) -> list[Packet]:
        """Packets received in [t0, t1), in time order. Call with consecutive intervals."""
        if not len(self.nodes):
            return []
        tx_times: list[tuple[Agent, float]] = []
        for a in self._active(t1):
            nxt = self._next_tx.get(a.id)
            if nxt is None:
                nxt = max(t0, a.t_start) + float(self.rng.uniform(0, a.advert_interval_s))
            while nxt < t1:
                if nxt >= t0 and a.t_start <= nxt <= a.t_end:
                    tx_times.append((a, nxt))
                nxt += a.advert_interval_s + float(self.rng.uniform(0, 0.01))
            self._next_tx[a.id] = nxt
        if not tx_times:
            return []
        tx_times.sort(key=lambda p: p[1])
        xy = np.asarray([a.position(t) for a, t in tx_times], dtype=float)
        offs = np.asarray([a.tx_offset_db for a, _ in tx_times])
        mean = mean_rssi(xy, self.node_xy, offs, self.walls, self.wall_db, self.params, self.node_offset)
        shadow = np.empty_like(mean)
        for i, (a, t) in enumerate(tx_times):
            shadow[i] = self._shadow_row(a.id, t)
        got, rssi = sample_packets(mean, shadow, self.params, self.rng)
        out: list[Packet] = []
        for i, j in zip(*np.nonzero(got), strict=True):
            a, t = tx_times[i]
            mfr, svc = self._payload(a, t)
            out.append(Packet(self.nodes[j].id, t, self._address(a, t), int(rssi[i, j]), mfr, svc, a.id))
        return out

    def _shadow_row(self, agent_id: str, t: float) -> np.ndarray:
        p = self.params
        n = len(self.nodes)
        row = self._shadow.get(agent_id)
        if row is None:
            row = self.rng.normal(0.0, p.shadowing_sigma_db, size=n)
        else:
            dt = max(0.0, t - self._shadow_t[agent_id])
            a = float(np.exp(-dt / p.shadowing_tau_s)) if p.shadowing_tau_s > 0 else 0.0
            row = a * row + self.rng.normal(0.0, p.shadowing_sigma_db * np.sqrt(1 - a * a), size=n)
        self._shadow[agent_id] = row
        self._shadow_t[agent_id] = t
        return row
