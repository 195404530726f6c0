"""HQ's one WhatsApp outbox over REAL NATS (generated configs, TLS leaf links) and the Cloud API
emulator: two stores' message requests are each sent once, never above the number's rate (inbound
messages counted), the same recipient at least 6 s apart; a reply or status reaches only the
store that owns the conversation; replaying a store's stream from the start sends nothing twice.
`pytest tests/test_chain_outbox.py -s` prints the figures docs/chain.md quotes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud_sync.client import CloudApiClient
from cloud_sync.config import TemplateSection
from cloud_sync.errors import PAIR_RATE_INTERVAL_S
from cloud_sync.events import InboundMessage, StatusEvent
from cloud_sync.rules import Category, Template
from cloud_sync.webhook import WebhookHandlers
from firmware_config.nats import HQ_USER, reply_prefix, store_user, stream_name
from gateway.channels.chain_publish import ChainPublisher, Cursor, PublisherThread
from gateway.channels.chain_whatsapp import FromHq
from gateway.events import EventLog
from gateway.storage.db import open_db
from instore import hq_outbox
from instore.broker import free_port
from sim.whatsapp_emulator import EmulatorConfig, ServerThread, create_emulator
from tests.chain_env import Chain, running_chain

STORES = ["a", "b"]
RATE = 4.0  # the number's configured messages per second (low, so that pacing shows in a short run)
SHARED = "4915100000099"  # a customer both stores write to: three messages, 6 s apart at least
PER_STORE = 8  # requests of distinct customers per store
INBOUND = 8  # customers' messages during the run: they count against the number's rate
SECRET = "test-app-secret"
ARRIVE_S = 40.0


@dataclass
class Store:
    events: EventLog
    thread: PublisherThread
    got: list[Any]  # statuses and replies HQ relayed to this store


@dataclass
class Setup:
    chain: Chain
    emulator: Any
    emu_url: str
    hq: Hq
    stores: dict[str, Store]
    requests: dict[str, str]  # HQ key -> number
    inbound_at: list[float]


def _request(events: EventLog, key: str, to: str, customer: str) -> None:
    """What a store's WhatsApp channel writes with `[outbox] at_hq` (cloud_sync.channel): a `wa_request`."""
    message = {"messaging_product": "whatsapp", "type": "template",
               "template": {"name": "followup", "language": {"code": "en"},
                            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}]}}
    events.append(time.time(), "wa_request", customer, {"key": key, "to": to, "purpose": "utility",
                                                        "due_at": time.time(), "message": message,
                                                        "emitted_at": time.time()})


def _wait_for(what: Callable[[], bool], timeout_s: float = ARRIVE_S) -> None:
    t0 = time.monotonic()
    while not what():
        assert time.monotonic() - t0 < timeout_s, "timed out"
        time.sleep(0.05)


class Hq:
    """HQ's outbox as `instore hq` runs it (hq_outbox.run), its parts kept for the test to read."""

    def __init__(self, chain: Chain, cfg: hq_outbox.HqWhatsApp, emu_url: str):
        self.outbox = hq_outbox.HqOutbox(cfg)
        self.client = CloudApiClient(emu_url, "v23.0", cfg.phone_number_id, "test-access-token")
        self.worker = self.outbox.worker(self.client)
        self.halt = threading.Event()
        self.sender = threading.Thread(target=self.worker.run, kwargs={"stop": self.halt}, daemon=True)
        self.web = ServerThread(hq_outbox.webhook_app(self.outbox, SECRET), port=cfg.webhook_port)
        self.chain = chain
        self.links: tuple[asyncio.AbstractEventLoop, asyncio.Event, threading.Thread] | None = None

    def start(self) -> None:
        self.web.start()
        self.sender.start()
        self.start_links()

    def start_links(self) -> None:
        """The stores' links (pulls and relays), in an event loop of their own."""
        loop, stop = asyncio.new_event_loop(), asyncio.Event()
        url = f"nats://127.0.0.1:{self.chain.hq_port}"

        async def serve() -> None:
            await asyncio.gather(*(hq_outbox.serve_store(self.outbox, url, self.chain.passwords[HQ_USER], s, stop)
                                   for s in STORES))

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        self.links = (loop, stop, thread)

    def stop_links(self) -> None:
        assert self.links is not None
        loop, stop, thread = self.links
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        loop.close()

    def close(self) -> None:
        self.stop_links()
        self.halt.set()
        self.sender.join(15)
        self.web.stop()
        self.worker.close()
        self.client.close()


def _store(chain: Chain, sid: str, db_path: Path) -> Store:
    store = chain.stores[sid]
    assert store.chain is not None
    db = open_db(db_path)
    events = EventLog(db, threading.RLock())
    got: list[Any] = []
    from_hq = FromHq(sid, store.chain, WebhookHandlers(on_status=got.append, on_message=got.append))
    publisher = ChainPublisher(sid, store.chain, events, Cursor(db, events.lock, stream_name(sid)))
    thread = PublisherThread(publisher, from_hq)
    thread.start()
    return Store(events, thread, got)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("outbox")
    (tmp / "token").write_text("test-access-token")
    (tmp / "secret").write_text(SECRET)
    port = free_port()
    emulator_cfg = EmulatorConfig(app_secret=SECRET, webhook_url=f"http://127.0.0.1:{port}{hq_outbox.WEBHOOK_PATH}",
                                  templates=[Template("followup", "en", Category.UTILITY, 1)],
                                  pair_interval_s=PAIR_RATE_INTERVAL_S, webhook_delay_s=(0.01, 0.05))
    emu_app = create_emulator(emulator_cfg)
    cfg = hq_outbox.HqWhatsApp(db=str(tmp / "hq-outbox.db"), phone_number_id="106540352242922",
                               token_file=str(tmp / "token"), app_secret_file=str(tmp / "secret"),
                               verify_token="verify-me", webhook_port=port, rate_per_s=RATE,
                               templates=[TemplateSection(name="followup", language="en", category="UTILITY",
                                                          params=1)])
    with running_chain(tmp, STORES) as chain, ServerThread(emu_app) as emu:
        hq = Hq(chain, cfg, emu.url)
        stores = {sid: _store(chain, sid, tmp / f"{sid}.db") for sid in STORES}
        hq.start()
        requests: dict[str, str] = {}
        for i, sid in enumerate(STORES):
            for n in range(PER_STORE):
                number = f"49151{i}{n:07d}"
                _request(stores[sid].events, f"k{n}", number, f"{sid}-c{n}")
                requests[f"{sid}:k{n}"] = number
        for sid, keys in (("a", ("s1", "s2")), ("b", ("s1",))):
            for key in keys:
                _request(stores[sid].events, key, SHARED, "shared")
                requests[f"{sid}:{key}"] = SHARED
        inbound_at = []
        with httpx.Client(base_url=emu.url) as http:
            time.sleep(1.0)  # sends under way
            for n in range(INBOUND):  # customers of store a answer while the outbox sends
                http.post("/_emulator/inbound", json={"from": f"491510{n:07d}", "text": "hello"}).raise_for_status()
                inbound_at.append(time.time())
                time.sleep(0.25)
        try:
            yield Setup(chain, emu_app.state.emulator, emu.url, hq, stores, requests, inbound_at)
        finally:
            hq.close()
            for s in stores.values():
                s.thread.stop()


def _sent(setup: Setup) -> list[dict[str, Any]]:
    return sorted(setup.emulator.sent.values(), key=lambda r: r["at"])


def test_requests_of_two_stores_are_sent_once_each(setup: Setup) -> None:
    _wait_for(lambda: len(setup.emulator.per_key) == len(setup.requests))
    assert dict(setup.emulator.per_key) == dict.fromkeys(setup.requests, 1)
    assert {r["key"]: r["to"] for r in _sent(setup)} == setup.requests
    assert setup.emulator.rejected == {}  # no 130429 (throughput) nor 131056 (pair rate)


def test_never_above_the_number_rate_inbound_counted(setup: Setup) -> None:
    _wait_for(lambda: len(setup.emulator.per_key) == len(setup.requests))
    out = [r["at"] for r in _sent(setup)]
    traffic = sorted(out + setup.inbound_at)
    # a bucket of capacity 1 lets at most rate x window + 1 through any window; +1 for the clocks of
    # the emulator (a send's arrival, an inbound's post) against the bucket's (take, charge)
    busiest = {w: max(sum(1 for t in traffic if start <= t < start + w) for start in traffic) for w in (1.0, 2.0)}
    for window, count in busiest.items():
        assert count <= RATE * window + 2
    print(f"\n{len(out)} sent, {len(setup.inbound_at)} inbound; busiest 1-s window {busiest[1.0]}, "
          f"2-s window {busiest[2.0]} messages (configured {RATE:g}/s)")


def test_same_recipient_at_least_6_s_apart(setup: Setup) -> None:
    _wait_for(lambda: len(setup.emulator.per_key) == len(setup.requests))
    shared = [r["at"] for r in _sent(setup) if r["to"] == SHARED]
    assert len(shared) == 3
    gaps = [b - a for a, b in zip(shared, shared[1:], strict=False)]
    print(f"\nsame recipient: gaps {[round(g, 2) for g in gaps]} s")
    assert min(gaps) >= PAIR_RATE_INTERVAL_S


def test_a_reply_and_statuses_reach_only_the_owning_store(setup: Setup) -> None:
    _wait_for(lambda: len(setup.emulator.per_key) == len(setup.requests))
    a, b = setup.stores["a"].got, setup.stores["b"].got
    # store a wrote to 491510000000..7 (its customers); they answered: only store a hears it
    _wait_for(lambda: sum(isinstance(e, InboundMessage) for e in a) == INBOUND)
    assert not any(isinstance(e, InboundMessage) for e in b)
    # every store gets its own messages' statuses, keyed by its own key, and none of the other's
    _wait_for(lambda: {e.callback_data for e in a if isinstance(e, StatusEvent) and e.status == "read"}
              == {k.removeprefix("a:") for k in setup.requests if k.startswith("a:")})
    _wait_for(lambda: {e.callback_data for e in b if isinstance(e, StatusEvent) and e.status == "read"}
              == {k.removeprefix("b:") for k in setup.requests if k.startswith("b:")})
    assert setup.hq.outbox.counts["unrouted"] == 0


def test_store_b_cannot_read_store_a_whatsapp(setup: Setup) -> None:
    import nats

    async def attempt() -> list[str]:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc).lower())

        nc = await nats.connect(f"nats://127.0.0.1:{setup.chain.hq_port}", user=store_user("b"),
                                password=setup.chain.passwords[store_user("b")], error_cb=on_error,
                                allow_reconnect=False)
        await nc.subscribe("chain.a.wa.>")
        await nc.subscribe("chain.b.wa.>")  # its own: allowed
        await nc.flush()
        await asyncio.sleep(0.5)
        await nc.close()
        return errors

    assert asyncio.run(attempt()) == ['nats: permissions violation for subscription to "chain.a.wa.>"']


def test_replaying_a_stream_from_the_start_sends_nothing_twice(setup: Setup) -> None:
    import nats

    _wait_for(lambda: len(setup.emulator.per_key) == len(setup.requests))
    before = setup.hq.outbox.counts["duplicate"]

    async def replay(store: str) -> None:  # docs/chain.md, "Replaying": HQ's consumer removed, made again
        nc = await nats.connect(f"nats://127.0.0.1:{setup.chain.hq_port}", user=HQ_USER,
                                password=setup.chain.passwords[HQ_USER], inbox_prefix=reply_prefix(store).encode())
        await nc.jetstream(domain=store).delete_consumer(stream_name(store), hq_outbox.CONSUMER)
        await nc.close()

    setup.hq.stop_links()  # HQ restarted after its consumers were removed: it reads every stream from the start
    for sid in STORES:
        asyncio.run(replay(sid))
    setup.hq.start_links()
    _wait_for(lambda: setup.hq.outbox.counts["duplicate"] - before == len(setup.requests))
    time.sleep(1.0)  # a worker that wrongly re-sent would have done so by now
    repeats = sum(n - 1 for n in setup.emulator.per_key.values())
    print(f"\nreplay: {len(setup.requests)} requests read again, {setup.hq.outbox.counts['duplicate'] - before} "
          f"recognised by their keys, messages sent twice: {repeats}")
    assert all(n == 1 for n in setup.emulator.per_key.values())
    assert len(setup.emulator.sent) == len(setup.requests)
