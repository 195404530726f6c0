"""Chain outbox: HQ's one WhatsApp outbox sending for several stores (docs/chain.md, "WhatsApp at HQ").

Real NATS servers from the generated configs (TLS leaf links, per-store users), each store's
gateway publisher and relay reader, HQ's outbox as `instore hq` runs it (`instore.hq_outbox`), and
the Cloud API emulator enforcing Meta's pair rate (131056) and posting signed webhooks to HQ.
Every store asks for `requests` messages to numbers of its own and one to each of `shared`
numbers all stores write to, while customers write in at `inbound` messages a second (they count
against the number's rate). Then both HQ's outbox consumers are removed and HQ reads every
store's stream again from the start.

Reported: the send rate over the run against the configured `rate` (outbound plus inbound), the
busiest 1-s window, the smallest gap between two messages to one number, and the messages sent
twice after the replay (target: never above the rate, >= 6 s, 0).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud_sync.client import CloudApiClient
from cloud_sync.config import TemplateSection
from cloud_sync.errors import PAIR_RATE_INTERVAL_S
from cloud_sync.rules import Category, Template
from cloud_sync.webhook import WebhookHandlers
from firmware_config.nats import HQ_USER, reply_prefix, stream_name
from firmware_config.store import StoreFile
from instore import hq_outbox
from instore.broker import free_port

NAME = "chain_outbox"
STORES = 3
REQUESTS = 40  # per store, each to a number of its own
SHARED = 2  # numbers every store writes to once: their messages must go 6 s apart
RATE = 20.0  # the number's configured messages per second
INBOUND = 4.0  # customers' messages per second while the outbox sends
SECRET = "bench-app-secret"
TOKEN = "test-access-token"  # the emulator's
PHONE_NUMBER_ID = "106540352242922"  # the emulator's
TEMPLATE = ("followup", "en", 1)  # a UTILITY template both the emulator and HQ know
SETTLE_TIMEOUT_S = 120.0
REPLAY_GRACE_S = 2.0  # after the replay's last duplicate: a wrong re-send would have gone by then
POLL_S = 0.05


def request_event(events: Any, key: str, to: str, customer: str) -> None:
    """What a store's channel writes with `[outbox] at_hq` (cloud_sync.channel): a `wa_request` in the event log."""
    name, lang, _params = TEMPLATE
    message = {"messaging_product": "whatsapp", "type": "template",
               "template": {"name": name, "language": {"code": lang},
                            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}]}}
    now = time.time()
    events.append(now, "wa_request", customer, {"key": key, "to": to, "purpose": "utility", "due_at": now,
                                                "message": message, "emitted_at": now})


def wait_for(what: Callable[[], bool], timeout_s: float = SETTLE_TIMEOUT_S) -> None:
    t0 = time.monotonic()
    while not what():
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError("timed out")
        time.sleep(POLL_S)


def hq_config(tmp: Path, webhook_port: int, rate: float) -> hq_outbox.HqWhatsApp:
    (tmp / "token").write_text(TOKEN)
    (tmp / "secret").write_text(SECRET)
    name, lang, params = TEMPLATE
    return hq_outbox.HqWhatsApp(db=str(tmp / "hq-outbox.db"), phone_number_id=PHONE_NUMBER_ID,
                                token_file=str(tmp / "token"), app_secret_file=str(tmp / "secret"),
                                verify_token="verify-me", webhook_port=webhook_port, rate_per_s=rate,
                                templates=[TemplateSection(name=name, language=lang, category="UTILITY",
                                                           params=params)])


def emulator_app(webhook_port: int) -> Any:
    from sim.whatsapp_emulator import EmulatorConfig, create_emulator

    name, lang, params = TEMPLATE
    return create_emulator(EmulatorConfig(
        app_secret=SECRET, webhook_url=f"http://127.0.0.1:{webhook_port}{hq_outbox.WEBHOOK_PATH}",
        templates=[Template(name, lang, Category.UTILITY, params)], pair_interval_s=PAIR_RATE_INTERVAL_S,
        webhook_delay_s=(0.01, 0.05)))


class HqUnderTest:
    """HQ's outbox as `hq_outbox.run` runs it, its parts kept to read: the stores' links can be
    stopped and started again (a restart of `instore hq`)."""

    def __init__(self, cfg: hq_outbox.HqWhatsApp, emu_url: str, hq_port: int, password: str, stores: list[str]):
        from sim.whatsapp_emulator import ServerThread

        self.outbox = hq_outbox.HqOutbox(cfg)
        self.client = CloudApiClient(emu_url, "v23.0", cfg.phone_number_id, TOKEN)
        self.worker = self.outbox.worker(self.client)
        self.halt = threading.Event()
        self.sender = threading.Thread(target=hq_outbox.keep_sending, args=(self.worker, self.halt), daemon=True)
        self.web = ServerThread(hq_outbox.webhook_app(self.outbox, SECRET), port=cfg.webhook_port)
        self.url, self.password, self.stores = f"nats://127.0.0.1:{hq_port}", password, stores
        self.links: tuple[asyncio.AbstractEventLoop, asyncio.Event, threading.Thread] | None = None

    def start(self) -> None:
        self.web.start()
        self.sender.start()
        self.start_links()

    def start_links(self) -> None:
        loop, stop = asyncio.new_event_loop(), asyncio.Event()

        async def serve() -> None:
            await asyncio.gather(*(hq_outbox.serve_store(self.outbox, self.url, self.password, s, stop)
                                   for s in self.stores))

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        self.links = (loop, stop, thread)

    def stop_links(self) -> None:
        assert self.links is not None
        loop, stop, thread = self.links
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        loop.close()

    def replay(self) -> None:
        """Remove HQ's outbox consumer of every store's stream and start again: everything is read again."""
        import nats

        async def remove(store: str) -> None:
            nc = await nats.connect(self.url, user=HQ_USER, password=self.password,
                                    inbox_prefix=reply_prefix(store).encode())
            await nc.jetstream(domain=store).delete_consumer(stream_name(store), hq_outbox.CONSUMER)
            await nc.close()

        self.stop_links()
        for store in self.stores:
            asyncio.run(remove(store))
        self.start_links()

    def close(self) -> None:
        self.stop_links()
        self.halt.set()
        self.sender.join(15)
        self.web.stop()
        self.worker.close()
        self.client.close()


@dataclass
class RelayingStore:
    """A store's gateway side: its event log, its publisher, and what HQ relayed to it."""

    events: Any
    thread: Any
    got: list[Any]


def relaying_store(sid: str, store: StoreFile, db_path: Path) -> RelayingStore:
    from gateway.channels.chain_publish import ChainPublisher, Cursor, PublisherThread
    from gateway.channels.chain_whatsapp import FromHq
    from gateway.events import EventLog
    from gateway.storage.db import open_db

    assert store.chain is not None
    db = open_db(db_path)
    events = EventLog(db, threading.RLock())
    got: list[Any] = []
    from_hq = FromHq(sid, store.chain, WebhookHandlers(on_status=got.append, on_message=got.append))
    thread = PublisherThread(ChainPublisher(sid, store.chain, events, Cursor(db, events.lock, stream_name(sid))),
                             from_hq)
    thread.start()
    return RelayingStore(events, thread, got)


def busiest(times: list[float], window_s: float) -> int:
    """The most events in any window of `window_s` (starting at an event)."""
    ts = sorted(times)
    return max((sum(1 for t in ts[i:] if t < start + window_s) for i, start in enumerate(ts)), default=0)


def min_gap(sent: list[dict[str, Any]]) -> float | None:
    """The smallest gap between two messages to one number."""
    by_number: dict[str, list[float]] = {}
    for r in sent:
        by_number.setdefault(r["to"], []).append(r["at"])
    gaps = [b - a for ts in by_number.values() for a, b in zip(sorted(ts), sorted(ts)[1:], strict=False)]
    return min(gaps) if gaps else None


def _drive(stores: dict[str, RelayingStore], emu: Any, emu_url: str, requests: int, shared: int,
           inbound: float) -> tuple[dict[str, str], list[float]]:
    """The stores' requests and the customers' messages while they go out; what should be sent, and
    when each inbound message was in."""
    import httpx

    wanted: dict[str, str] = {}
    for i, (sid, store) in enumerate(stores.items()):
        for n in range(requests):
            number = f"49152{i:02d}{n:05d}"
            request_event(store.events, f"k{n}", number, f"{sid}-c{n}")
            wanted[f"{sid}:k{n}"] = number
        for n in range(shared):
            request_event(store.events, f"s{n}", f"4915399{n:05d}", f"shared-{n}")
            wanted[f"{sid}:s{n}"] = f"4915399{n:05d}"
    inbound_at: list[float] = []
    bulk = len(wanted) - shared * (len(stores) - 1)  # the shared numbers' later messages wait 6 s each
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    with httpx.Client(base_url=emu_url) as http:
        n = 0
        while len(emu.per_key) < bulk and time.monotonic() < deadline:
            customer = f"4915200{n % requests:05d}"  # store s0's customers answer
            http.post("/_emulator/inbound", json={"from": customer, "text": "hi"}).raise_for_status()
            inbound_at.append(time.time())
            n += 1
            time.sleep(1 / inbound)
    wait_for(lambda: len(emu.per_key) == len(wanted))
    return wanted, inbound_at


def run(quick: bool = False, stores: int = STORES, requests: int = REQUESTS, shared: int = SHARED,
        rate: float = RATE, inbound: float = INBOUND) -> dict:
    from instore.chain_sim import local_chain
    from sim.whatsapp_emulator import ServerThread

    if quick:
        stores, requests, shared = 2, 10, 1
    ids = [f"s{i}" for i in range(int(stores))]
    tmp = Path(tempfile.mkdtemp(prefix="instore-chain-outbox-"))
    net = local_chain(tmp, ids)
    port = free_port()
    emu_app = emulator_app(port)
    servers = [net.hq, *net.leafs.values()]
    try:
        for s in servers:
            s.start()
        with ServerThread(emu_app) as emu_server:
            emu = emu_app.state.emulator
            hq = HqUnderTest(hq_config(tmp, port, rate), emu_server.url, net.hq.port, net.passwords[HQ_USER], ids)
            side = {sid: relaying_store(sid, net.stores[sid], tmp / f"{sid}.db") for sid in ids}
            hq.start()
            try:
                wanted, inbound_at = _drive(side, emu, emu_server.url, int(requests), int(shared), inbound)
                sent = sorted(emu.sent.values(), key=lambda r: r["at"])
                before = hq.outbox.counts["duplicate"]
                hq.replay()
                wait_for(lambda: hq.outbox.counts["duplicate"] - before == len(wanted))
                time.sleep(REPLAY_GRACE_S)
                twice = sum(n - 1 for n in emu.per_key.values()) + len(emu.sent) - len(wanted)
            finally:
                hq.close()
                for st in side.values():
                    st.thread.stop()
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    bulk = [r["at"] for r in sent if not r["to"].startswith("4915399")]
    span = bulk[-1] - bulk[0]
    traffic = [r["at"] for r in sent] + inbound_at
    in_bulk = sum(1 for t in inbound_at if bulk[0] <= t <= bulk[-1])
    gap = min_gap(sent)
    busiest_1s = busiest(traffic, 1.0)
    return {
        "shape": f"{stores} stores x ({requests} own + {shared} shared numbers), {inbound:g} inbound/s",
        "configured_rate_per_s": rate,
        "sent": len(sent), "inbound": len(inbound_at),
        "bulk_rate_per_s": round((len(bulk) - 1 + in_bulk) / span, 2) if span > 0 else None,
        "busiest_1s_window": busiest_1s,
        "min_same_recipient_gap_s": None if gap is None else round(gap, 2),
        "rejected_by_api": dict(emu.rejected),
        "replayed_requests": len(wanted), "sent_twice_after_replay": twice,
        "target": {"busiest_1s_window": rate + 1, "min_same_recipient_gap_s": PAIR_RATE_INTERVAL_S,
                   "sent_twice_after_replay": 0},
        "met": bool(busiest_1s <= rate + 1 and (gap is None or gap >= PAIR_RATE_INTERVAL_S) and twice == 0),
    }
