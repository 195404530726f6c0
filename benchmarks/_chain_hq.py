"""`instore bench chain --param pg=1`: the chain benchmark with HQ's real consumption.

Instead of a bare consumer, `instore hq`'s own worker processes (`instore.hq_workers.Supervisor`,
`--param workers=N`) pull every leaf's stream and write PostgreSQL (a throwaway local cluster, no
fsync) exactly as in production. The figures come from the rows HQ wrote: store-to-HQ latency is
`received_at` (PostgreSQL's `now()`, the start of the batch's transaction) minus the publish time;
the backlog is gone when the last event published before the relink is in PostgreSQL. CPU is
measured per process group (psutil), so the figure scales honestly to other hardware: HQ's
workers plus PostgreSQL in cores per 1,000 events/s.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import psutil
import psycopg

from benchmarks.chain import FRESH_MS, _make_streams, _pcts, _publisher_process
from instore.hq import SCHEMA, HqConfig
from instore.hq_workers import Supervisor
from instore.local_postgres import cluster
from instore.nats_server import NatsServer

SAMPLE_S = 0.5  # memory sampling and backlog polling
SETTLE_S = 3.0  # after the relink, at least this long before the backlog counts as gone
DRAIN_TIMEOUT_S = 180.0  # give up waiting for the backlog or the last rows after this long
PUBLISHER_EXIT_S = 15.0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (a gone one: 0)."""
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system


def _groups(sup: Supervisor, hq: NatsServer, leafs: list[NatsServer], publisher: int, pg: int) -> dict[str, list]:
    try:
        pg_pids = [pg, *(c.pid for c in psutil.Process(pg).children(recursive=True))]
    except psutil.Error:
        pg_pids = []
    return {"hq_workers": [w.process.pid for w in sup.workers], "postgres": pg_pids,
            "hq_nats": [hq.proc.pid] if hq.proc else [], "leaf_nats": [s.proc.pid for s in leafs if s.proc],
            "publisher": [publisher], "bench": [os.getpid()]}


class CpuWindow:
    """Cores used per process group from now until `end` (processes born meanwhile, such as
    PostgreSQL's backends, count from their start)."""

    def __init__(self, groups: Callable[[], dict[str, list]]):
        self.groups, self.t0 = groups, time.monotonic()
        self.cpu0 = {pid: _cpu_s(pid) for pids in groups().values() for pid in pids}

    def end(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        return {g: round(sum(_cpu_s(pid) - self.cpu0.get(pid, 0.0) for pid in pids) / wall, 2)
                for g, pids in self.groups().items()}


async def _peak_rss(sup: Supervisor, hq: NatsServer, peak: dict[str, float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            workers = sum(psutil.Process(w.process.pid).memory_info().rss for w in sup.workers) / 2**20
            peak["hq_workers"] = max(peak["hq_workers"], workers)
            peak["hq_nats"] = max(peak["hq_nats"], hq.rss_mb())
        except (psutil.Error, OSError, AttributeError):  # a process between stop and start
            pass
        await asyncio.sleep(SAMPLE_S)


def _backlog_gone(sup: Supervisor, taken_at_relink: int, live_rate: float) -> bool:
    snap = sup.snapshot().values()
    taken = sum(s["taken"] for s in snap)
    return taken > taken_at_relink and sum(s["lag"] for s in snap) < live_rate * FRESH_MS / 1000


def _rows(dsn: str) -> np.ndarray:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT extract(epoch FROM received_at)::float8, (body->>'sent')::float8 "
                            "FROM chain_events").fetchall()
    return np.array(rows, dtype=float).reshape(-1, 2)


async def _count(dsn: str) -> int:
    def count() -> int:
        with psycopg.connect(dsn) as conn:
            return conn.execute("SELECT count(*) FROM chain_events").fetchone()[0]
    return await asyncio.to_thread(count)


def _figures(rows: np.ndarray, t: dict[str, float], live_s: float, live_rate: float) -> dict:
    recv, sent = rows[:, 0], rows[:, 1]
    lat_ms = (recv - sent) * 1000
    live = lat_ms[(sent >= t["start"] + live_s / 10) & (sent < t["cut"])]  # the first tenth warms up
    after = recv[recv >= t["relink"]]
    drained = float(recv[sent < t["relink"]].max())  # the last event of the backlog is in
    first = float(after.min()) if after.size else float("nan")
    caught = int(((recv >= first) & (recv <= drained)).sum())
    catchup = caught / max(1e-9, drained - first)
    return {
        "live_received_per_s": round(float(((recv >= t["start"]) & (recv < t["cut"])).sum()) / live_s, 1),
        "store_to_hq_ms": _pcts(list(live)),
        "hq_resumed_after_relink_s": round(first - t["relink"], 2),
        "backlog_gone_after_relink_s": round(drained - t["relink"], 2),
        "catchup_per_s": round(catchup, 1),
        "catchup_x_live": round(catchup / live_rate, 2),
    }


async def pg_scenario(hq: NatsServer, leafs: list[tuple[str, NatsServer]], password: str, chain: Any,
                      stores: int, rate: float, live_s: float, cut_s: float, workers: int) -> dict:
    """The chain scenario with `instore hq`'s workers writing a local PostgreSQL."""
    with cluster() as (dsn, pg_pid):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SCHEMA)
        leaf_ports = {lid: s.port for lid, s in leafs}
        await _make_streams(leaf_ports, chain)
        cfg = HqConfig(nats_url=f"nats://127.0.0.1:{hq.port}", password_file="unused", postgres=dsn,
                       stores=list(leaf_ports), metrics_port=0)
        return await _run(hq, [s for _, s in leafs], Supervisor(cfg, password, workers), pg_pid, dsn,
                          leaf_ports, stores, rate, live_s, cut_s)


async def _run(hq: NatsServer, leafs: list[NatsServer], sup: Supervisor, pg_pid: int, dsn: str,
               leaf_ports: dict[str, int], stores: int, rate: float, live_s: float, cut_s: float) -> dict:
    stop_hq, stop_sample = asyncio.Event(), asyncio.Event()
    sup.start()
    hq_task = asyncio.create_task(sup.run(stop_hq))
    peak = {"hq_workers": 0.0, "hq_nats": 0.0}
    sampler = asyncio.create_task(_peak_rss(sup, hq, peak, stop_sample))
    while len(sup.snapshot()) < len(leaf_ports):  # every worker started and reporting (a spawn takes seconds)
        await asyncio.sleep(SAMPLE_S)
    ctx = multiprocessing.get_context("spawn")
    stop_pub, out = ctx.Event(), ctx.Queue()
    publisher = ctx.Process(target=_publisher_process, args=(leaf_ports, stores, rate, stop_pub, out), daemon=True)
    publisher.start()
    live_rate, load = stores * rate, [os.getloadavg()[0]]
    t = {"start": time.time()}
    groups = partial(_groups, sup, hq, leafs, publisher.pid, pg_pid)
    live = CpuWindow(groups)
    await asyncio.sleep(live_s)
    cores_live = live.end()
    t["cut"] = time.time()
    hq.stop()  # the WAN link is cut: every leaf keeps its stores' events
    await asyncio.sleep(cut_s)
    taken_at_relink = sum(s["taken"] for s in sup.snapshot().values())
    t["relink"] = time.time()
    hq.start()
    catchup = CpuWindow(groups)
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    await asyncio.sleep(SETTLE_S)
    while time.monotonic() < deadline and not _backlog_gone(sup, taken_at_relink, live_rate):
        await asyncio.sleep(SAMPLE_S)
    cores_catchup = catchup.end()
    load.append(os.getloadavg()[0])
    stop_pub.set()
    published = await asyncio.to_thread(out.get, True, PUBLISHER_EXIT_S)
    publisher.join(PUBLISHER_EXIT_S)
    while await _count(dsn) < published and time.monotonic() < deadline + DRAIN_TIMEOUT_S:
        await asyncio.sleep(1.0)
    counters = sup.snapshot()
    stop_hq.set()
    stop_sample.set()
    await asyncio.gather(hq_task, sampler)
    rows = await asyncio.to_thread(_rows, dsn)
    figures = _figures(rows, t, live_s, live_rate)
    hq_cores = cores_live["hq_workers"] + cores_live["postgres"]
    hq_cores_catchup = cores_catchup["hq_workers"] + cores_catchup["postgres"]
    return {
        **figures,
        "published": published,
        "received_once": len(rows),
        "duplicates_seen": sum(s["duplicates"] for s in counters.values()),
        "workers": len(sup.workers),
        "hq_peak_rss_mb": round(peak["hq_nats"], 1),
        "hq_workers_peak_rss_mb": round(peak["hq_workers"], 1),
        "cores_live": cores_live,
        "cores_catchup": cores_catchup,
        "hq_and_pg_cores_per_1000_per_s": {
            "live": round(hq_cores / max(1e-9, figures["live_received_per_s"]) * 1000, 3),
            "catchup": round(hq_cores_catchup / max(1e-9, figures["catchup_per_s"]) * 1000, 3)},
        "load_1min": [round(x, 1) for x in load],
    }
