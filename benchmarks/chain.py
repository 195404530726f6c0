"""Chain: simulated stores publishing through NATS leaf nodes into HQ, live and after a link cut.

Real servers from the generated configs (`instore config nats`: TLS leaf links, per-store users,
JetStream in each leaf, `no_advertise` at HQ). Each simulated store publishes `rate` entries a
second to its leaf's stream with a message id; HQ pulls every leaf's stream through the leaf's
JetStream domain with the durable consumer `instore hq` uses (same batch, ack wait, inbox
prefix, cumulative acks). PostgreSQL is left out: this measures the NATS path. With
`--param pg=1` HQ is `instore hq`'s own worker processes (`--param workers=N`) writing a local
PostgreSQL instead: HQ's real throughput, with CPU per process (benchmarks/_chain_hq.py).

Reported: store-to-HQ latency (publish in the store -> HQ's consumer has it) p50/p95 while the
links are up; after HQ's server is stopped for `cut_s` and started again: how long until HQ
receives again, and the catch-up rate (messages received per second until the backlog is gone)
relative to the live rate (target >= 4x); HQ's server memory (peak RSS sampled).

`stores` simulated stores share `leafs` leaf servers (store i on leaf i % leafs): production runs
one leaf per store; a 2-core machine cannot run 100, so the default shares 10 and says so.
Publishing uses plain NATS publishes into the stream (the gateway waits for JetStream's ack of
each event; here one process plays every store, and the acks would measure Python, not NATS).
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instore.chain_sim import local_chain
from instore.nats_server import NatsServer

NAME = "chain"
STORES = 100  # issue #25's target shape
RATE = 50.0  # events/s per store (issue #25)
LEAFS = 10  # leaf servers this machine can run beside everything else; production: one per store
LIVE_S = 20.0  # long enough for a stable median at 5,000 events/s
CUT_S = 20.0  # the cut whose backlog HQ then catches up on
EVENT_BYTES = 700  # an entry with its customer card (docs/chain.md, sizing)
TARGET_P50_MS = 100.0
TARGET_CATCHUP_X = 4.0
PUBLISHER_EXIT_S = 15.0  # the stores' process reports its count and ends within this
DRAIN_TIMEOUT_S = 120.0  # give up waiting for the backlog after this long
FRESH_MS = 1000.0  # an event arriving at HQ this soon after it was sent: the backlog is gone
SAMPLE_S = 0.5  # how often HQ's server memory is sampled
CUSTOMERS = 200  # regulars per store: HQ's customer records see many updates per batch


@dataclass
class Tally:
    """What HQ received: per message its latency, and when it arrived."""

    latencies_ms: list[float] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    duplicates: int = 0


def _publisher_process(leaf_ports: dict[str, int], stores: int, rate: float, stop: Any, out: Any) -> None:
    """The stores, in a process of their own (HQ's consumer is not to share their core); puts
    the number of events published on `out` when `stop` is set."""
    counts: dict[str, int] = {}
    asyncio.run(_publish(leaf_ports, stores, rate, stop, counts))
    out.put(sum(counts.values()))


async def _publish(leaf_ports: dict[str, int], stores: int, rate: float, stop: Any, counts: dict[str, int]) -> None:
    """Every store publishes one event per tick to its leaf's stream, until stopped."""
    import nats

    conns = {lid: await nats.connect(f"nats://127.0.0.1:{port}") for lid, port in leaf_ports.items()}
    lids = list(leaf_ports)
    pad = "x" * EVENT_BYTES
    tick, t_next = 1.0 / rate, time.monotonic()
    try:
        while not stop.is_set():
            for n in range(stores):
                lid, sid = lids[n % len(lids)], f"s{n:03d}"
                counts[sid] = counts.get(sid, 0) + 1
                # as the leaf's store (HQ takes the store from the link), a recognised customer's entry
                now = time.time()
                body = json.dumps({"store": lid, "id": counts[sid], "sent": now, "ts": now, "kind": "entry",
                                   "customer_id": f"{sid}-c{counts[sid] % CUSTOMERS}", "pad": pad}).encode()
                await conns[lid].publish(f"chain.{lid}.events.entry", body,
                                         headers={"Nats-Msg-Id": f"{lid}:{sid}:{counts[sid]}"})
            t_next += tick
            await asyncio.sleep(max(0.0, t_next - time.monotonic()))
    finally:
        for nc in conns.values():
            await nc.close()


async def _consume(hq_url: str, password: str, lid: str, tally: Tally, stop: asyncio.Event) -> None:
    """HQ's pull of one leaf's stream, as `instore hq` does it, without PostgreSQL."""
    from instore.hq import pull

    async def quiet(exc: Exception) -> None:  # the cut makes the client report every reconnect attempt
        return None

    async def take(msgs: list[Any]) -> int:
        now = time.time()
        for m in msgs:
            msg_id = (m.headers or {}).get("Nats-Msg-Id", "")
            if msg_id in tally.ids:
                tally.duplicates += 1
            else:
                tally.ids.add(msg_id)
                tally.latencies_ms.append((now - json.loads(m.data)["sent"]) * 1000)
                tally.arrivals.append(now)
        return len(msgs)  # `pull` acknowledges them

    await pull(hq_url, password, lid, stop, take, lambda exc: None, error_cb=quiet)


async def _make_streams(leaf_ports: dict[str, int], chain: Any) -> None:
    """Each leaf's stream as the gateway makes it (`ChainPublisher._ensure_stream`)."""
    import nats
    from nats.js.api import DiscardPolicy, StorageType, StreamConfig

    from firmware_config.nats import store_bytes, stream_name, subject_prefix
    from gateway.channels.chain_publish import DEDUP_WINDOW_S

    for lid, port in leaf_ports.items():
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        await nc.jetstream().add_stream(StreamConfig(
            name=stream_name(lid), subjects=[f"{subject_prefix(lid)}.events.>"], storage=StorageType.FILE,
            max_bytes=store_bytes(chain), discard=DiscardPolicy.OLD, duplicate_window=DEDUP_WINDOW_S))
        await nc.close()


async def _sample(hq: NatsServer, peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], hq.rss_mb())
        except OSError:  # the server is between stop and start
            pass
        await asyncio.sleep(SAMPLE_S)


def _pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan")}
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1)}


async def _scenario(hq: NatsServer, leafs: list[tuple[str, NatsServer]], password: str, chain: Any,
                    stores: int, rate: float, live_s: float, cut_s: float) -> dict:
    leaf_ports = {lid: s.port for lid, s in leafs}
    await _make_streams(leaf_ports, chain)
    tally, peak = Tally(), [0.0]
    stop_hq, stop_sample = asyncio.Event(), asyncio.Event()
    hq_url = f"nats://127.0.0.1:{hq.port}"
    tasks = [asyncio.create_task(_consume(hq_url, password, lid, tally, stop_hq)) for lid in leaf_ports]
    tasks.append(asyncio.create_task(_sample(hq, peak, stop_sample)))
    ctx = multiprocessing.get_context("spawn")
    stop_pub, out = ctx.Event(), ctx.Queue()
    publisher = ctx.Process(target=_publisher_process, args=(leaf_ports, stores, rate, stop_pub, out), daemon=True)
    publisher.start()
    await asyncio.sleep(live_s)
    live = list(tally.latencies_ms[len(tally.latencies_ms) // 10:])  # the first tenth warms up
    received_live = len(tally.arrivals)
    hq.stop()  # the WAN link is cut: every leaf keeps its stores' events
    await asyncio.sleep(cut_s)
    relinked = time.time()
    before = len(tally.arrivals)
    hq.start()
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline and (len(tally.arrivals) == before or tally.latencies_ms[-1] > FRESH_MS):
        await asyncio.sleep(0.1)  # until what arrives is fresh again: the backlog is gone
    drained = time.time()
    stop_pub.set()
    published = await asyncio.to_thread(out.get, True, PUBLISHER_EXIT_S)
    publisher.join(PUBLISHER_EXIT_S)
    settle = time.monotonic() + DRAIN_TIMEOUT_S
    while len(tally.ids) < published and time.monotonic() < settle:
        await asyncio.sleep(0.2)
    stop_hq.set()
    stop_sample.set()
    await asyncio.gather(*tasks)
    after = [t for t in tally.arrivals[before:] if t <= drained]
    resumed_s = (min(after) - relinked) if after else float("nan")
    catchup = len(after) / max(1e-9, drained - min(after)) if after else 0.0
    live_rate = stores * rate
    return {
        "live_received_per_s": round(received_live / live_s, 1),
        "store_to_hq_ms": _pcts(live),
        "hq_resumed_after_relink_s": round(resumed_s, 2),
        "catchup_per_s": round(catchup, 1),
        "catchup_x_live": round(catchup / live_rate, 2),
        "published": published,
        "received_once": len(tally.ids),
        "duplicates_seen": tally.duplicates,
        "hq_peak_rss_mb": round(peak[0], 1),
    }


def run(quick: bool = False, stores: int = STORES, rate: float = RATE, leafs: int = LEAFS,
        live_s: float = LIVE_S, cut_s: float = CUT_S, pg: float = 0, workers: float = 1) -> dict:
    if quick:
        stores, leafs, live_s, cut_s = min(stores, 4), min(leafs, 2), 4.0, 3.0
    leafs = min(leafs, stores)
    tmp = Path(tempfile.mkdtemp(prefix="instore-chain-bench-"))
    local = local_chain(tmp, [f"leaf{i:03d}" for i in range(leafs)])
    hq, leaf_servers = local.hq, list(local.leafs.items())
    servers = [hq, *local.leafs.values()]
    try:
        for s in servers:
            s.start()
        chain = next(iter(local.stores.values())).chain
        if pg:
            from benchmarks._chain_hq import pg_scenario

            figures = asyncio.run(pg_scenario(hq, leaf_servers, local.passwords["hq"], chain, stores, rate, live_s,
                                              cut_s, int(workers)))
        else:
            figures = asyncio.run(_scenario(hq, leaf_servers, local.passwords["hq"], chain, stores, rate, live_s,
                                            cut_s))
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    p50 = figures["store_to_hq_ms"]["p50"]
    return {
        "shape": f"{stores} simulated stores x {rate:g} events/s on {leafs} leaf servers"
                 + ("" if leafs == stores else f" (up to {math.ceil(stores / leafs)} stores share a leaf's stream)")
                 + (f", HQ: {int(workers)} worker(s) writing PostgreSQL" if pg else ""),
        "live_s": live_s, "cut_s": cut_s, "live_rate_per_s": stores * rate,
        **figures,
        "target": {"store_to_hq_p50_ms": TARGET_P50_MS, "catchup_x_live": TARGET_CATCHUP_X},
        "met": bool(p50 <= TARGET_P50_MS and figures["catchup_x_live"] >= TARGET_CATCHUP_X
                    and figures["received_once"] == figures["published"]),
    }
