"""`instore sim chain`: simulated stores with their real gateway publishers, a real local NATS chain,
a WAN cut with a store server killed and a gateway restarted inside it, and HQ's view checked
against each store's event log (docs/chain.md, "Chain simulator").

Each store has a gateway database whose event log a generator fills (recognised entries, which
leave the store, and staff notes and anonymous entries, which must not) and the gateway's own
`ChainPublisher`; HQ pulls every store with `instore.hq.pull` and keeps the message ids it saw.
Ground truth is what `chain_message` makes of each store's event log: HQ must hold exactly that.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_config.nats import HQ_GOMEMLIMIT, HQ_USER, MAX_MEMORY_STORE, HqNode, generate, stream_name
from firmware_config.store import StoreFile
from instore.broker import free_port
from instore.nats_server import NatsServer

STORE = Path(__file__).resolve().parent.parent / "firmware_config" / "examples" / "boutique.toml"
LEAVES_SHARE = 0.6  # of generated events, recognised entries (they leave); the rest are notes and anonymous
CUT_AT = 1 / 3  # the cut starts a third into the run
SETTLE_S = 60.0  # after the run, HQ gets this long to have every event (it resumes within ACK_WAIT_S)
SAMPLE_S = 1.0  # how often the servers' resident memory is sampled


@dataclass
class LocalChain:
    hq: NatsServer  # HQ's server; with a cluster, its first node
    leafs: dict[str, NatsServer]
    stores: dict[str, StoreFile]
    passwords: dict[str, str]
    hq_peers: dict[str, NatsServer] = field(default_factory=dict)  # a cluster's other nodes, by name

    def hq_servers(self) -> list[NatsServer]:
        return [self.hq, *self.hq_peers.values()]

    def hq_urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{s.port}" for s in self.hq_servers()]


def local_chain(tmp: Path, store_ids: list[str], hq_nodes: int = 1) -> LocalChain:
    """HQ's and each store's NATS from the generated configs, on loopback with TLS leaf links (not
    started); with `hq_nodes` > 1 HQ is a cluster of that many nodes (production: three)."""
    from firmware_config import tls
    from firmware_config.validate import validate_text

    certs = tls.generate("hq", tmp / "tls", ["127.0.0.1", "localhost"])
    nodes = [HqNode(f"hq-{i}", "127.0.0.1", free_port(), free_port(), free_port(), str(tmp / f"js-hq-{i}"))
             for i in range(1, hq_nodes + 1)]
    urls = ", ".join(f'"tls://127.0.0.1:{n.leaf_port}"' for n in nodes)
    stores = {}
    for sid in store_ids:
        text = STORE.read_text(encoding="utf-8").replace('id = "boutique"', f'id = "{sid}"', 1)
        text += (f'\n[chain]\nhq_url = [{urls}]\nhq_cafile = "{certs.ca_cert}"\n'
                 f'nats_port = {free_port()}\nstorage_dir = "{tmp / ("js-" + sid)}"\n')
        stores[sid] = validate_text(text, f"{sid}.toml")
    one = nodes[0]
    files = generate([(s, None) for s in stores.values()], tmp / "conf", hq=True, hq_port=one.port,
                     hq_leaf_port=one.leaf_port, hq_storage_dir=one.storage_dir, hq_certfile=str(certs.cert),
                     hq_keyfile=str(certs.key), hq_cluster=nodes if hq_nodes > 1 else ())
    confs = files.hq_node_confs or ({one.name: files.hq_conf} if files.hq_conf else {})  # hq=True writes it
    hq = {n.name: NatsServer(confs[n.name], n.port, env={"GOMEMLIMIT": HQ_GOMEMLIMIT}) for n in nodes}  # as the unit
    leafs = {sid: NatsServer(files.leaf_confs[sid], s.chain.nats_port) for sid, s in stores.items() if s.chain}
    passwords = tomllib.loads(files.credentials.read_text(encoding="utf-8"))
    return LocalChain(hq.pop(one.name), leafs, stores, passwords, hq)


@dataclass
class HqView:
    seen: dict[str, set[str]] = field(default_factory=dict)
    repeats: Counter = field(default_factory=Counter)
    relinked: float | None = None  # monotonic time HQ's server was started again after the cut
    resumed: float | None = None  # the first message HQ received after that
    peak_rss_mb: dict[str, float] = field(default_factory=dict)  # "hq", "leaf" (the largest store server)


class SimStore:
    """One store: its gateway database and event log, and the gateway's publisher in its thread."""

    def __init__(self, sid: str, store: StoreFile, db_path: Path):
        from gateway.events import EventLog
        from gateway.storage.db import open_db

        self.sid, self.store, self.db_path = sid, store, db_path
        self.events = EventLog(open_db(db_path), threading.RLock())
        self.thread: Any = None

    def start(self) -> None:
        from gateway.channels.chain_publish import ChainPublisher, Cursor, PublisherThread

        assert self.store.chain is not None
        cursor = Cursor(self.events.db, self.events.lock, stream_name(self.sid))
        self.thread = PublisherThread(ChainPublisher(self.sid, self.store.chain, self.events, cursor))
        self.thread.start()

    def stop(self) -> None:
        self.thread.stop()

    def add_event(self, rng: random.Random, t: float) -> None:
        if rng.random() < LEAVES_SHARE:
            self.events.append(t, "entered", f"{self.sid}-c{rng.randrange(50)}", {"zone": "entrance"})
        elif rng.random() < 0.5:
            self.events.append(t, "entered", None, {"zone": "entrance"})  # anonymous: stays
        else:
            self.events.append(t, "note", f"{self.sid}-c{rng.randrange(50)}", {"text": "stays"})

    def truth(self) -> set[str]:
        from gateway.channels.chain_publish import Generation, chain_message

        generation = Generation(self.events.db, self.events.lock).get()
        msgs = (chain_message(self.sid, ev, generation) for ev in self.events.after(0, 10**9))
        return {m.msg_id for m in msgs if m is not None}


async def _hq(chain: LocalChain, view: HqView, stop: asyncio.Event) -> None:
    from instore.hq import pull

    async def quiet(exc: Exception) -> None:  # the cut makes the client report every reconnect attempt
        return None

    def take_for(sid: str) -> Any:
        async def take(msgs: list[Any]) -> int:
            if view.relinked is not None and view.resumed is None and msgs:
                view.resumed = time.monotonic()
            for m in msgs:
                msg_id = (m.headers or {}).get("Nats-Msg-Id", "")
                if msg_id in view.seen.setdefault(sid, set()):
                    view.repeats[sid] += 1
                view.seen[sid].add(msg_id)
            return len(msgs)  # `pull` acknowledges them
        return take

    await asyncio.gather(*(pull(chain.hq_urls(), chain.passwords[HQ_USER], sid, stop, take_for(sid), lambda exc: None,
                                error_cb=quiet) for sid in chain.stores))


async def _sample(chain: LocalChain, view: HqView, stop: asyncio.Event) -> None:
    """Keep the peak resident memory of HQ's server and of the largest store server."""
    while not stop.is_set():
        hq, leaf = max(s.rss_mb() for s in chain.hq_servers()), max(s.rss_mb() for s in chain.leafs.values())
        for name, rss in (("hq", hq), ("leaf", leaf)):
            view.peak_rss_mb[name] = round(max(view.peak_rss_mb.get(name, 0.0), rss), 1)
        await asyncio.sleep(SAMPLE_S)


async def _timeline(chain: LocalChain, stores: list[SimStore], rate: float, duration_s: float, cut: tuple[float, float],
                    rng: random.Random, view: HqView) -> list[str]:
    """Generate events for `duration_s`; cut HQ off (`cut`: start and length), kill the first store's
    server and restart the last store's gateway inside the cut. Returns what happened, in order."""
    t0, log = time.monotonic(), []
    cut_start, cut_s = cut
    cut_end = cut_start + cut_s
    done: set[str] = set()
    while (t := time.monotonic() - t0) < duration_s:
        for s in stores:
            s.add_event(rng, time.time())
        steps = [("cut", cut_start, _each(chain.hq_servers(), "stop")),
                 ("kill", cut_start + cut_s / 3, _kill(chain, stores[0].sid)),
                 ("restart", cut_start + cut_s / 2, _restart(stores[-1])),
                 ("relink", cut_end, _each(chain.hq_servers(), "start"))]
        for name, at, act in steps:
            if name not in done and t >= at:
                if name == "relink":
                    view.relinked = time.monotonic()
                await asyncio.to_thread(act)
                done.add(name)
                log.append(f"{t:.1f} s: {name}")
                print(log[-1], file=sys.stderr, flush=True)  # a long run's progress
        await asyncio.sleep(1.0 / rate)
    return log


def _each(servers: list[NatsServer], method: str) -> Any:
    """Stop or start every HQ server: the cut takes the whole of HQ off the stores."""
    def act() -> None:
        for server in servers:
            getattr(server, method)()
    return act


def _kill(chain: LocalChain, sid: str) -> Any:
    def act() -> None:
        chain.leafs[sid].stop(kill=True)  # no flush: synced writes must survive it
        chain.leafs[sid].start()
    return act


def _restart(store: SimStore) -> Any:
    def act() -> None:
        store.stop()
        store.start()
    return act


async def _simulate(chain: LocalChain, stores: list[SimStore], rate: float, duration_s: float,
                    cut: tuple[float, float], seed: int) -> dict:
    view, stop = HqView(), asyncio.Event()
    hq = asyncio.create_task(_hq(chain, view, stop))
    sampler = asyncio.create_task(_sample(chain, view, stop))
    log = await _timeline(chain, stores, rate, duration_s, cut, random.Random(seed), view)
    truth = {s.sid: s.truth() for s in stores}
    deadline = time.monotonic() + SETTLE_S
    while any(not truth[sid] <= view.seen.get(sid, set()) for sid in truth) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    settled = time.monotonic()
    await asyncio.sleep(1.0)  # anything extra would arrive by now
    stop.set()
    await hq
    await sampler
    per_store = {sid: {"events": len(truth[sid]), "lost": len(truth[sid] - view.seen.get(sid, set())),
                       "unexpected": len(view.seen.get(sid, set()) - truth[sid]), "repeats_at_hq": view.repeats[sid]}
                 for sid in truth}
    resumed = None if view.resumed is None or view.relinked is None else round(view.resumed - view.relinked, 2)
    memory = {"peak_rss_mb": view.peak_rss_mb, "hq_gomemlimit": HQ_GOMEMLIMIT, "max_memory_store": MAX_MEMORY_STORE}
    return {"timeline": log, "settled_after_run_s": round(settled - deadline + SETTLE_S, 2),
            "hq_resumed_after_relink_s": resumed, "memory": memory, "per_store": per_store,
            "ok": all(v["lost"] == 0 and v["unexpected"] == 0 for v in per_store.values())}


def run_chain_sim(stores: int = 5, rate: float = 20.0, duration_s: float = 30.0, cut_s: float = 10.0,
                  seed: int = 1, cut_at_s: float | None = None, hq_nodes: int = 1) -> dict:
    """Run the chain simulation in a temporary directory; the report as a dict. The cut starts
    `cut_at_s` into the run (default a third of it)."""
    cut_start = duration_s * CUT_AT if cut_at_s is None else cut_at_s
    tmp = Path(tempfile.mkdtemp(prefix="instore-sim-chain-"))
    ids = [f"s{i:02d}" for i in range(stores)]
    chain = local_chain(tmp, ids, hq_nodes)
    servers = [*chain.hq_servers(), *chain.leafs.values()]
    sims = [SimStore(sid, chain.stores[sid], tmp / f"{sid}.db") for sid in ids]
    try:
        for server in servers:
            server.start()
        for s in sims:
            s.start()
        report = asyncio.run(_simulate(chain, sims, rate, duration_s, (cut_start, cut_s), seed))
    finally:
        for s in sims:
            if s.thread is not None:
                s.stop()
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"stores": stores, "hq_nodes": hq_nodes, "rate_per_store": rate, "duration_s": duration_s,
            "cut_at_s": round(cut_start, 1), "cut_s": cut_s, "seed": seed, **report}
