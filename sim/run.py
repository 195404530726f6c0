"""The fast mode: the system's pure cores driven in one process on the simulator's clock.

No broker, threads or sleeping: receptions go through the edge's `classify` and window
aggregation, every window through `edge.protocol` encode and decode, into a `GatewayCore` on the
simulation clock; its events are scored against the ground truth. `mode="batch"` (default) and
`mode="packets"` give identical windows (docs/scenarios.md, "Inside a run").
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import orjson

from edge import protocol
from edge.beacon_filter import ForwardPolicy, classify
from edge.protocol import VERSION, RfidObservation, RfidWindow
from edge.window import BleWindowAggregator
from firmware_config.store import StoreFile
from gateway.engines.eid import compute_eid
from gateway.engines.fitting_rooms import FITTING_ROOM, RoomEvent, fitting_reports
from gateway.ingest.core import GatewayCore
from gateway.storage.db import open_db
from sim.door_sensor import CurtainFeed, DoorFeed
from sim.emitter import ADDRESS_ROTATION_S, IPHONE_APP, Emitter, Reception
from sim.enrol import enrol_world
from sim.iphone_model import IphoneNodes
from sim.rfid_model import RfidModel
from sim.scenario import Scenario, ScenarioError, load_scenario, store_path
from sim.score import FittingReport, ReportedEvent, score
from sim.score_carriers import score_carriers
from sim.truth import Truth, build_truth
from sim.world import World, build_world

EPOCH = 1_700_000_000.0  # simulation time 0 on the beacons' and the gateway's clocks (Nov 2023)
MAX_TICK_S = 1.0  # longest emitter step; windows are closed and delivered at tick boundaries
PIPE_TICKS = 30  # ticks the radio process sends at once: few messages, and the gateway never waits long
_EPS = 1e-9
_KEY = 1 << 24  # packing (agent, period) into one int64


@dataclass
class RunResult:
    scenario: str
    seed: int
    world: World
    truth: Truth
    events: list[ReportedEvent]
    fitting_reports: list[FittingReport] | None
    counts: dict[str, int]
    wall_s: float
    metrics: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)  # every encoded window, with keep_payloads=True

    @property
    def speedup(self) -> float:
        return self.truth.duration_s / self.wall_s if self.wall_s > 0 else float("inf")


@dataclass
class _Pending:
    """Receptions not yet in a closed window."""

    t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    agent: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    node: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rssi: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))

    def add(self, r: Reception) -> None:
        if len(r):
            self.t = np.concatenate([self.t, r.t])
            self.agent = np.concatenate([self.agent, r.agent])
            self.node = np.concatenate([self.node, r.node])
            self.rssi = np.concatenate([self.rssi, r.rssi])

    def take(self, mask: np.ndarray) -> Reception:
        out = Reception(self.t[mask], self.agent[mask], self.node[mask], self.rssi[mask])
        keep = ~mask
        self.t, self.agent, self.node, self.rssi = (
            self.t[keep],
            self.agent[keep],
            self.node[keep],
            self.rssi[keep],
        )
        return out


class _BleEdge:
    """The store's BLE nodes on the simulation clock: receptions in, closed windows out."""

    def __init__(self, world: World, emitter: Emitter, epoch: float, mode: str):
        self.world, self.em, self.epoch, self.mode = world, emitter, epoch, mode
        store = world.store
        self.store_id = store.store.id
        self.policy = ForwardPolicy(
            ibeacon_uuids=frozenset(u.lower() for u in store.store.ibeacon_uuids),
            eddystone_namespace=store.store.eddystone_namespace,
        )
        self.nodes = emitter.nodes
        self.win = np.asarray([n.ble.window_s for n in self.nodes if n.ble is not None], dtype=np.float64)
        self.next_end = self.win.copy()  # end of each node's open window
        self.seq = [0] * len(self.nodes)
        self.aggs = [BleWindowAggregator(self.store_id, n.id) for n in self.nodes]
        self.pending = _Pending()
        self.is_customer = np.asarray([a.customer is not None for a in world.agents], dtype=bool)
        self._sighting: dict[int, int] = {}  # payload key -> ident code (-1: anonymous)
        self.idents: list[str] = []
        self.ident_tx: list[int | None] = []
        self._ident_code: dict[str, int] = {}
        self.packets = 0
        self.is_iphone = np.asarray([a.customer is not None and a.carrier == IPHONE_APP for a in world.agents], bool)
        self.iphones = (  # nodes connect to background iPhones to read their identity (sim/iphone_model.py)
            IphoneNodes(len(self.nodes), world.scenario.carriers.iphone_app, world.scenario.scenario.seed, self._eid)
            if self.is_iphone.any() else None
        )

    def _eid(self, agent: int, t: float) -> str:
        """What an iPhone's identity characteristic holds at simulation time t: its current EID."""
        customer = self.world.agents[agent].customer
        assert customer is not None
        return "eid:" + compute_eid(customer.identity_key, self.em.k, int(t + self.epoch)).hex()

    def _code(self, ident: str, tx: int | None) -> int:
        code = self._ident_code.get(ident)
        if code is None:
            code = self._ident_code[ident] = len(self.idents)
            self.idents.append(ident)
            self.ident_tx.append(tx)
        return code

    def _iphone_codes(self, rec: Reception) -> dict[int, int]:
        """Ident code per iPhone reception (-1: its identity not read yet), node by node in time order."""
        if self.iphones is None or not len(rec):
            return {}
        idx = np.flatnonzero(self.is_iphone[rec.agent])
        out = {}
        for i in idx[np.lexsort((rec.t[idx], rec.node[idx]))].tolist():
            a, t = int(rec.agent[i]), float(rec.t[i])
            ident = self.iphones.heard(int(rec.node[i]), a, self.em.address(a, t), t)
            out[i] = -1 if ident is None else self._code(ident, None)
        return out

    def _ident_of(self, agent: int, t: float) -> int:
        key = agent * _KEY + self.em.payload_period(agent, t)
        code = self._sighting.get(key)
        if code is None:
            mfr, svc = self.em.payload(agent, t)
            s = classify(mfr, svc, self.policy)
            code = -1 if s is None else self._code(s.ident, s.tx)
            self._sighting[key] = code
        return code

    def flush(self, now: float) -> list[tuple[float, int, bytes]]:
        """Close every window ending at or before `now`; returns (end, node index, encoded window)."""
        due = self.next_end <= now + _EPS
        if not due.any():
            return []
        # a packet belongs to window floor(t / w) of its node; windows that end by `now` close
        p = self.pending
        w = self.win[p.node]
        widx = np.floor(p.t / w).astype(np.int64)
        closable = (widx + 1) * w <= now + _EPS
        rec = p.take(closable)
        widx = widx[closable]
        self.packets += len(rec)
        ends: list[tuple[int, int]] = []  # (node, window index) to emit, including empty ones
        for j in np.nonzero(due)[0].tolist():
            w_j = self.win[j]
            k0 = int(round(self.next_end[j] / w_j)) - 1
            k1 = int(np.floor((now + _EPS) / w_j))
            ends += [(j, k) for k in range(k0, k1)]
            self.next_end[j] = (k1 + 1) * w_j
        if self.mode == "packets":
            windows = self._windows_packets(rec, widx, ends)
        else:
            windows = self._windows_batch(rec, widx, ends)
        windows.sort(key=lambda x: (x[0], x[1]))
        return windows

    def _window_times(self, j: int, k: int) -> tuple[float, float]:
        w = float(self.win[j])
        return k * w, (k + 1) * w

    def _windows_packets(self, rec: Reception, widx: np.ndarray, ends: list[tuple[int, int]]) -> list:
        by_window: dict[tuple[int, int], list[int]] = {}
        for i, (j, k) in enumerate(zip(rec.node.tolist(), widx.tolist(), strict=True)):
            by_window.setdefault((j, k), []).append(i)
        packets = self.em.packets(rec)
        iphone = self._iphone_codes(rec)
        out = []
        for j, k in ends:
            agg = self.aggs[j]
            for i in by_window.get((j, k), []):
                pk = packets[i]
                t = pk.t + self.epoch
                s = classify(pk.manufacturer_data, pk.service_data, self.policy)
                if i in iphone and iphone[i] >= 0:
                    agg.add(self.idents[iphone[i]], float(pk.rssi), t)
                elif s is None:
                    agg.count_anonymous(hash(pk.address), t)
                else:
                    agg.add(s.ident, float(pk.rssi), t, s.tx)
            start, end = self._window_times(j, k)
            out.append((end, j, protocol.encode(agg.flush(end + self.epoch, t_start=start + self.epoch))))
        return out

    def _windows_batch(self, rec: Reception, widx: np.ndarray, ends: list[tuple[int, int]]) -> list:
        n = len(rec)
        ident = np.empty(n, dtype=np.int64)
        if n:
            period = np.where(
                self.is_customer[rec.agent], np.floor(rec.t + self.epoch).astype(np.int64) >> self.em.k, 0
            )
            pkey = rec.agent * _KEY + period
            uk, inv = np.unique(pkey, return_inverse=True)
            first = np.zeros(len(uk), dtype=np.int64)
            first[inv[::-1]] = np.arange(n)[::-1]
            codes = np.asarray(
                [self._ident_of(int(rec.agent[i]), float(rec.t[i])) for i in first.tolist()], dtype=np.int64
            )
            ident = codes[inv]
            for i, code in self._iphone_codes(rec).items():
                ident[i] = code
        tt = rec.t + self.epoch
        obs: dict[tuple[int, int], list[dict]] = {}
        fwd = ident >= 0
        if fwd.any():
            node, wk, idc, t, rssi = (
                rec.node[fwd],
                widx[fwd],
                ident[fwd],
                tt[fwd],
                rec.rssi[fwd].astype(np.int64),
            )
            order = np.lexsort((t, idc, wk, node))
            node, wk, idc, t, rssi = node[order], wk[order], idc[order], t[order], rssi[order]
            brk = np.flatnonzero((np.diff(node) != 0) | (np.diff(wk) != 0) | (np.diff(idc) != 0)) + 1
            starts = np.concatenate([[0], brk])
            stops = np.concatenate([brk, [len(t)]])
            counts = stops - starts
            means = np.add.reduceat(rssi, starts) / counts  # int / int, correctly rounded as in Python
            maxs = np.maximum.reduceat(rssi, starts).astype(float)
            # a window lists its observations by first reception (then ident): groups in that order
            first, last = t[starts], t[stops - 1]
            g_node, g_wk, g_idc = node[starts], wk[starts], idc[starts]
            go = np.lexsort((g_idc, first, g_wk, g_node))
            idents, txs = self.idents, self.ident_tx
            for cnt, mean, mx, t0, t1, code, nd, k in zip(
                *(a[go].tolist() for a in (counts, means, maxs, first, last, g_idc, g_node, g_wk)), strict=True
            ):
                o = {"id": idents[code], "n": cnt, "rssi_mean": round(mean, 2), "rssi_max": mx, "first": t0, "last": t1}
                if txs[code] is not None:
                    o["tx"] = txs[code]
                obs.setdefault((nd, k), []).append(o)
        anon: dict[tuple[int, int], tuple[int, int]] = {}
        an = ~fwd
        if an.any():
            node, wk = rec.node[an], widx[an]
            since = rec.t[an] + self.epoch + self.em.rotation_phase[rec.agent[an]]
            dev = rec.agent[an] * _KEY + np.floor(since / ADDRESS_ROTATION_S).astype(np.int64)
            groups, g, adverts = np.unique(node * (1 << 40) + wk, return_inverse=True, return_counts=True)
            devices = np.bincount(
                np.unique(g.astype(np.int64) * (1 << 40) + dev) >> 40, minlength=len(groups)
            )
            for gk, d, a in zip(groups.tolist(), devices.tolist(), adverts.tolist(), strict=True):
                anon[(gk >> 40, gk & ((1 << 40) - 1))] = (d, a)
        out = []
        for j, k in ends:
            start, end = self._window_times(j, k)
            seen = obs.get((j, k), [])
            d, a = anon.get((j, k), (0, 0))
            payload = {
                "v": VERSION,
                "store": self.store_id,
                "node": self.nodes[j].id,
                "seq": self.seq[j],
                "window": [start + self.epoch, end + self.epoch],
                "late": False,
                "type": "ble",
                "observations": seen,
                "anonymous": {"devices": d, "adverts": a},
            }
            self.seq[j] += 1
            out.append((end, j, orjson.dumps(payload)))
        return out


class _RfidEdge:
    """The store's RFID readers on the simulation clock, one window every `window_s`."""

    def __init__(self, world: World, model: RfidModel, epoch: float, window_s: float, mode: str):
        self.world, self.model, self.epoch, self.w, self.mode = world, model, epoch, window_s, mode
        self.store_id = world.store.store.id
        self.nodes = sorted(set(model.ants.node))
        self.seq = dict.fromkeys(self.nodes, 0)
        self.k = 0  # index of the open window
        self.reads = 0

    def flush(self, now: float) -> list[tuple[float, str, bytes]]:
        out = []
        ep = self.epoch
        while (self.k + 1) * self.w <= now + _EPS:
            t0, t1 = self.k * self.w, (self.k + 1) * self.w
            by_node: dict[str, list[dict]] = {n: [] for n in self.nodes}
            for r in self.model.window(t0, t1):
                self.reads += r.n
                by_node[r.node].append(
                    {
                        "epc": r.epc,
                        "ant": r.ant,
                        "n": r.n,
                        "rssi_mean": r.rssi_mean,
                        "rssi_max": r.rssi_max,
                        "first": r.first + ep,
                        "last": r.last + ep,
                    }
                )
            for n in self.nodes:
                payload = {
                    "v": VERSION,
                    "store": self.store_id,
                    "node": n,
                    "seq": self.seq[n],
                    "window": [t0 + ep, t1 + ep],
                    "late": False,
                    "type": "rfid",
                    "observations": by_node[n],
                    "reader": "ok",
                }
                if self.mode == "packets":  # the reference: through the models and protocol.encode
                    msg = RfidWindow.model_validate(
                        {**payload, "observations": [RfidObservation(**o) for o in by_node[n]]}
                    )
                    data = protocol.encode(msg)
                else:
                    data = orjson.dumps(payload)
                self.seq[n] += 1
                out.append((t1, n, data))
            self.k += 1
        return out


Batch = list[tuple[float, int, str, str, bytes]]  # one tick's windows: (end, order, node, kind, payload)


class _Radio:
    """The radio side of a run: the emitter's packets made into the nodes' BLE and RFID windows,
    tick by tick. Nothing in it depends on what the gateway does, so it can run in a second
    process while the gateway ingests (`_radio_ticks`): the same draws, in the same order."""

    def __init__(self, emitter: Emitter, ble: _BleEdge, rfid: _RfidEdge | None, tick_s: float, duration: float):
        self.emitter, self.ble, self.rfid, self.tick_s, self.duration = emitter, ble, rfid, tick_s, duration

    def tick(self, i: int) -> Batch:
        t0, t1 = i * self.tick_s, min((i + 1) * self.tick_s, self.duration)
        self.ble.pending.add(self.emitter.step_arrays(t0, t1))
        out: Batch = [(end, 0, self.ble.nodes[j].id, "ble", data) for end, j, data in self.ble.flush(t1)]
        if self.rfid is not None:
            out += [(end, 1, node, "rfid", data) for end, node, data in self.rfid.flush(t1)]
        return out

    def counts(self) -> tuple[int, int, dict]:
        """(BLE packets, RFID reads, the background iPhones' connection figures) so far."""
        iphones = self.ble.iphones.metrics(self.duration) if self.ble.iphones is not None else {}
        return self.ble.packets, self.rfid.reads if self.rfid else 0, iphones


def _produce(radio: _Radio, n_ticks: int, conn: Connection) -> None:
    """The radio process: every tick's windows, PIPE_TICKS at a time, then the counts."""
    for start in range(0, n_ticks, PIPE_TICKS):
        conn.send([radio.tick(i) for i in range(start, min(start + PIPE_TICKS, n_ticks))])
    conn.send(radio.counts())
    conn.close()


def _radio_ticks(
    radio: _Radio, n_ticks: int, pipeline: bool, counts: list[tuple[int, int, dict]]
) -> Generator[Batch, None, None]:
    """Each tick's windows in order (the radio's counts go to `counts` at the end); with
    `pipeline`, made by a forked process (the machine's second core) while the caller ingests."""
    if not pipeline:
        yield from (radio.tick(i) for i in range(n_ticks))
        counts.append(radio.counts())
        return
    recv, send = multiprocessing.get_context("fork").Pipe(duplex=False)
    proc = multiprocessing.get_context("fork").Process(target=_produce, args=(radio, n_ticks, send), daemon=True)
    proc.start()
    send.close()
    try:
        for _ in range(0, n_ticks, PIPE_TICKS):
            yield from recv.recv()
        counts.append(recv.recv())
    except EOFError:
        raise RuntimeError(f"the simulator's radio process stopped (exit code {proc.exitcode})") from None
    finally:
        recv.close()
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()


def _progress_bar(duration: float) -> tuple[Callable[[float], None], Callable[[], None]]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    prog = Progress(
        TextColumn("simulating"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    )
    task = prog.add_task("sim", total=duration)
    prog.start()
    return (lambda t: prog.update(task, completed=t)), prog.stop


def _rfid_edge(world: World, sc: Scenario, emitter: Emitter, epoch: float, mode: str) -> _RfidEdge | None:
    """The RFID side of the run, None without RFID, garments or antennas."""
    if not (sc.rfid.enabled and world.items):
        return None
    model = RfidModel(world, sc.rfid, np.random.default_rng([sc.scenario.seed, 31]), emitter.traj)
    if not len(model.ants):
        return None
    return _RfidEdge(world, model, epoch, sc.rfid.window_s, mode)


def _progress_callbacks(
    progress: bool | Callable[[float, float], None] | None, duration: float
) -> tuple[Callable[[float], None] | None, Callable[[], None] | None]:
    """(update with the simulated time, stop) for `run_fast`'s `progress` argument."""
    if progress is True:
        return _progress_bar(duration)
    if callable(progress):
        report = progress
        return (lambda t: report(t, duration)), None
    return None, None


def _reported_events(core: GatewayCore, store: StoreFile, epoch: float) -> list[ReportedEvent]:
    """The gateway's staff events as the scorer reads them, on the simulation's clock."""
    zone_of = {n.id: n.zone for n in store.nodes}
    events = []
    for ev in core.events.after(0, limit=10**9):
        d = ev.data
        events.append(
            ReportedEvent(
                ev.kind,
                ev.customer_id,
                float(d.get("t_obs", ev.ts)) - epoch,
                float(d.get("emitted_at", ev.ts)) - epoch,
                d.get("zone") or zone_of.get(d.get("node", "")),
            )
        )
    return events


def _sensor_scores(
    core: GatewayCore, door: DoorFeed | None, curtain: CurtainFeed | None, messages: int, notes: list[str]
) -> dict:
    """The door counter's footfall against the truth (and its line in `notes`), the curtains' counts."""
    out: dict = {}
    if door is not None:
        counted_in = sum(s.value for m in core.metrics.door_crossings.collect() for s in m.samples
                         if s.name.endswith("_total") and s.labels["direction"] == "in")
        out |= door.metrics(counted_in) | {"count.door_messages": messages}
        notes.append(door.note(out))
    if curtain is not None:
        out |= curtain.metrics()
    return out


def run_fast(
    scenario: Scenario,
    store: StoreFile,
    seed: int | None = None,
    progress: bool | Callable[[float, float], None] | None = None,
    *,
    tick_s: float | None = None,
    mode: str = "batch",
    epoch: float = EPOCH,
    keep_payloads: bool = False,
    pipeline: bool = True,
) -> RunResult:
    """Run a scenario as fast as the CPU allows and score it.

    `progress`: None/False for silence, True for a rich progress bar on stderr, or a
    callable `(sim_t, duration)` called about once per simulated minute.
    `tick_s`: emitter step; default the shortest window of the store (windows close exactly
    at tick boundaries, so the tick changes only the order of random draws, not the timing).
    `keep_payloads`: keep every encoded window in `RunResult.payloads` (tests).
    `pipeline`: make the radio's windows in a second process while the gateway ingests them
    (same windows, same order, same scores; the wall time of the slower side instead of both).
    """
    if mode not in ("batch", "packets"):
        raise ValueError(f"mode: {mode!r} is not 'batch' or 'packets'")
    scenario = scenario.with_seed(seed)
    sc = scenario
    wall0 = time.perf_counter()
    world = build_world(sc, store)
    truth = build_truth(world)
    db = open_db(":memory:")
    enrol_world(db, world, now=epoch - 86400.0)
    now = [epoch]
    core = GatewayCore(store, db, clock=lambda: now[0])
    emitter = Emitter(world, seed=sc.scenario.seed, epoch=epoch)
    ble = _BleEdge(world, emitter, epoch, mode)
    rfid = _rfid_edge(world, sc, emitter, epoch, mode)
    door = DoorFeed(world, store, truth, epoch) if sc.door_sensor.doors else None  # sent at once, by arrival
    curtain = CurtainFeed(world, store, epoch) if sc.curtain_sensor.doors else None
    feeds = [f for f in (door, curtain) if f is not None]
    if tick_s is None:
        wins = [n.ble.window_s for n in store.nodes if n.ble is not None] + (
            [sc.rfid.window_s] if rfid else []
        )
        tick_s = min(wins + [MAX_TICK_S])
    duration = sc.scenario.duration_s
    n_ticks = int(np.ceil(duration / tick_s - _EPS))
    update, stop = _progress_callbacks(progress, duration)
    windows = {"ble": 0, "rfid": 0, "door": 0, "status": 0}
    topics = {
        (n.id, kind): protocol.node_topic(store.store.id, n.id, kind)
        for n in store.nodes
        for kind in ("ble", "rfid", "door", "status")
    }
    payloads: list[bytes] = []
    every = max(1, int(round(60.0 / tick_s)))
    radio_counts: list[tuple[int, int, dict]] = []
    ticks = _radio_ticks(_Radio(emitter, ble, rfid, tick_s, duration), n_ticks, pipeline, radio_counts)
    try:
        for i, batch in enumerate(ticks):
            t1 = min((i + 1) * tick_s, duration)
            out = list(batch)
            for feed in feeds:
                out += [(arrival, 2, node, kind, data) for arrival, node, kind, data in feed.due(t1)]
            out.sort(key=lambda x: (x[0], x[1], x[2]))
            for end, _, node, kind, data in out:
                now[0] = end + epoch
                core.handle(topics[(node, kind)], data)
                payloads.append(data) if keep_payloads else None
                windows[kind] += 1
            if update is not None and (i % every == 0 or i == n_ticks - 1):
                update(t1)
    finally:
        ticks.close()
        if stop is not None:
            stop()
    ble_packets, rfid_reads, iphone_metrics = radio_counts[0]
    events = _reported_events(core, store, epoch)
    wall = time.perf_counter() - wall0
    notes: list[str] = []
    reports = fitting_reports(
        RoomEvent(ev.kind, ev.ts - epoch, ev.data["room"], FITTING_ROOM, ev.data.get("epc"))
        for ev in core.events.after(0, limit=10**9) if ev.kind in ("item_shown", "item_gone")
    )
    rejects = sum(
        s.value for m in core.metrics.rejects.collect() for s in m.samples if s.name.endswith("_total")
    )
    counts = {
        "ble_packets": ble_packets,
        "ble_windows": windows["ble"],
        "rfid_windows": windows["rfid"],
        "rfid_reads": rfid_reads,
        "rejected_messages": int(rejects),
        "customers": len(world.customers),
        "items": len(world.items),
        "items_sold": truth.items_sold,
    }
    metrics = score(truth, events, reports, wall) | score_carriers(truth, events) | iphone_metrics
    metrics |= _sensor_scores(core, door, curtain, windows["door"], notes)
    for k, v in counts.items():
        metrics[f"count.{k}"] = v
    return RunResult(
        sc.scenario.name, sc.scenario.seed, world, truth, events, reports, counts, wall, metrics, notes, payloads
    )


def run_scenario_cli(
    scenario_path: str | Path,
    seed: int | None = None,
    report_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    echo: Callable[[str], None] = print,
    targets_path: str | Path | None = None,
) -> int:
    """`instore sim run`: run, print the score table, write the report/truth/plot; returns the exit code.

    Missed targets are reported, not failed: the exit code is 0 whenever the run completes."""
    from firmware_config.validate import file_advice
    from sim.report import print_table, write_report
    from sim.targets import LIBRARY_TARGETS, TargetError, load_targets

    try:
        sc, store = load_scenario(scenario_path)
        targets = load_targets(targets_path if targets_path is not None else LIBRARY_TARGETS)
    except (ScenarioError, TargetError) as exc:
        echo(f"error: {exc}")
        return 1
    for warning in file_advice(store, store_path(scenario_path, sc)):
        echo(warning)
    try:
        result = run_fast(sc, store, seed=seed, progress=sys.stderr.isatty())
    except ValueError as exc:  # a scenario the world builder cannot realise (e.g. a bad catalogue)
        echo(f"error: {scenario_path}: {exc}")
        return 1
    print_table(result, targets=targets)
    if report_path is not None:
        write_report(result, report_path, targets)
        truth_path = Path(report_path).with_suffix(".truth.json")
        result.truth.write(truth_path)
        echo(f"report: {report_path}  ground truth: {truth_path}")
    if plot_path is not None:
        from sim.plot import plot_run

        plot_run(result, plot_path)
        echo(f"plot: {plot_path}")
    return 0
