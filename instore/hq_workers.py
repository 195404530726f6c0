"""`instore hq --workers N`: HQ's consumption spread over N processes, each store pulled by exactly one.

A store's durable consumer lives in the store, so two processes must never pull the same store:
stores go to workers by a stable hash of their id (the same share after every restart). The
supervisor restarts a worker that died; what that worker had fetched but not acknowledged comes
again from the store after the ack wait, and PostgreSQL's key on (store, message id) turns it
into duplicates. Each worker sends its counters over its own pipe (a killed worker cannot block
the others' channel) for `/metrics`. docs/chain.md, sizing.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import zlib
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from gateway.channels.chain_publish import sleep_unless
from instore.hq import Hq, HqConfig
from instore.hq_metrics import MetricsServer, Page, Snapshot, snapshot

log = logging.getLogger("instore.hq")

PUSH_S = 1.0  # how often a worker sends its counters: /metrics is at most this stale
WATCH_S = 0.5  # how often the supervisor looks for dead workers and reads their counters
STOP_S = 10.0  # a worker asked to stop is killed after this long


def worker_of(store: str, workers: int) -> int:
    """The worker that pulls `store`: a stable hash, not Python's per-process salted one."""
    return zlib.crc32(store.encode()) % workers


def shares(stores: list[str], workers: int) -> list[list[str]]:
    """The stores of each worker that has any (a worker with no store is not started)."""
    out: list[list[str]] = [[] for _ in range(workers)]
    for s in stores:
        out[worker_of(s, workers)].append(s)
    return [share for share in out if share]


def _worker(config_json: str, password: str, out: Connection) -> None:
    """A worker process: `Hq.run` on its share of the stores, sending its counters until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = HqConfig.model_validate_json(config_json)
    parent = os.getppid()

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        hq = Hq(cfg, password)

        async def push() -> None:
            while not stop.is_set():
                out.send(snapshot(hq.stats))
                if os.getppid() != parent:  # the supervisor is gone: so is this worker
                    stop.set()
                await sleep_unless(stop, PUSH_S)

        await asyncio.gather(hq.run(stop, schema=False), push())

    asyncio.run(main())


@dataclass
class Worker:
    stores: list[str]
    process: Any = None  # multiprocessing.Process
    pipe: Connection | None = None
    restarts: int = 0


class Supervisor:
    """Starts a worker per share of the stores, restarts the dead, and merges their counters."""

    def __init__(self, config: HqConfig, password: str, workers: int):
        self.config, self.password = config, password
        self.ctx = multiprocessing.get_context("spawn")  # no forked copy of the supervisor's threads
        self.workers = [Worker(share) for share in shares(list(config.stores), workers)]
        self.latest: Snapshot = {}

    def _start(self, w: Worker) -> None:
        recv, send = self.ctx.Pipe(duplex=False)
        # the outbox runs in the supervisor (`serve`); a worker uses its [whatsapp] only to erase from it
        cfg = self.config.model_copy(update={"stores": w.stores})
        w.process = self.ctx.Process(target=_worker, args=(cfg.model_dump_json(), self.password, send), daemon=True)
        w.process.start()
        send.close()  # the worker's end: its death then reads as EOF here
        w.pipe = recv

    def _read(self, w: Worker) -> None:
        try:
            while w.pipe is not None and w.pipe.poll():
                self.latest.update(w.pipe.recv())
        except (EOFError, OSError):  # the worker died (perhaps mid-message)
            w.pipe = None

    def snapshot(self) -> Snapshot:
        return dict(self.latest)

    def health(self) -> dict:
        """ok while every worker runs; per worker its pid, stores and restarts."""
        states = [{"pid": w.process.pid, "alive": w.process.is_alive(), "stores": w.stores, "restarts": w.restarts}
                  for w in self.workers]
        return {"ok": all(s["alive"] for s in states), "workers": states}

    def start(self) -> None:
        """Start the workers not yet started (`run` does; callers may earlier to know their pids)."""
        for w in self.workers:
            if w.process is None:
                self._start(w)

    async def run(self, stop: asyncio.Event) -> None:
        """Make the tables, then start the workers and restart the dead until `stop`."""
        await Hq(self.config, self.password).make_schema(stop)
        self.start()
        while not stop.is_set():
            for w in self.workers:
                self._read(w)
                if not w.process.is_alive():
                    log.warning("hq: worker %s (stores %s) ended with %s; restarting", w.process.pid,
                                ", ".join(w.stores), w.process.exitcode)
                    w.restarts += 1
                    self._start(w)
            await sleep_unless(stop, WATCH_S)
        for w in self.workers:
            w.process.terminate()
        for w in self.workers:
            await asyncio.to_thread(w.process.join, STOP_S)
            if w.process.is_alive():
                w.process.kill()


async def serve(config: HqConfig, password: str, workers: int, stop: asyncio.Event,
                dashboard: Page | None = None, epcis: Page | None = None) -> None:
    """`instore hq`: the workers, the number's one WhatsApp outbox (with a `[whatsapp]` section) and the
    HTTP server (/metrics with the outbox's counters, /healthz, /dashboard, /epcis/events), until `stop`."""
    from instore import hq_outbox

    supervisor = Supervisor(config, password, workers)
    outbox = None if config.whatsapp is None else hq_outbox.HqOutbox(config.whatsapp)
    collectors = [] if outbox is None else [hq_outbox.OutboxCollector(outbox)]
    with MetricsServer(config.metrics_host, config.metrics_port, supervisor.snapshot, supervisor.health,
                       dashboard=dashboard, collectors=collectors, epcis=epcis):
        sending = [] if outbox is None else [hq_outbox.run(outbox, config.nats_url, password, config.stores, stop)]
        await asyncio.gather(supervisor.run(stop), *sending)
