"""HQ's one WhatsApp outbox over REAL NATS (generated configs, TLS leaf links) and the Cloud API
emulator: two stores' message requests are each sent once, never above the number's rate (inbound
messages counted), the same recipient at least 6 s apart; a reply or status reaches only the
store that owns the conversation; replaying a store's stream from the start sends nothing twice.
The harness is the `chain_outbox` benchmark's. `pytest tests/test_chain_outbox.py -s` prints the
figures docs/chain.md quotes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from benchmarks.chain_outbox import (
    HqUnderTest,
    RelayingStore,
    busiest,
    emulator_app,
    hq_config,
    relaying_store,
    request_event,
    wait_for,
)
from cloud_sync.errors import PAIR_RATE_INTERVAL_S
from cloud_sync.events import InboundMessage, StatusEvent
from firmware_config.nats import HQ_USER, store_user
from instore.broker import free_port
from sim.whatsapp_emulator import ServerThread
from tests.chain_env import Chain, running_chain

STORES = ["a", "b"]
RATE = 4.0  # the number's configured messages per second (low, so that pacing shows in a short run)
SHARED = "4915100000099"  # a customer both stores write to: three messages, 6 s apart at least
PER_STORE = 8  # requests of distinct customers per store
INBOUND = 8  # customers' messages during the run: they count against the number's rate
ARRIVE_S = 40.0


@dataclass
class Setup:
    chain: Chain
    emulator: Any
    hq: HqUnderTest
    stores: dict[str, RelayingStore]
    requests: dict[str, str]  # HQ key -> number
    inbound_at: list[float]


def _wait_for(what: Any) -> None:
    wait_for(what, ARRIVE_S)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("outbox")
    port = free_port()
    emu_app = emulator_app(port)
    with running_chain(tmp, STORES) as chain, ServerThread(emu_app) as emu:
        hq = HqUnderTest(hq_config(tmp, port, RATE), emu.url, chain.hq_port, chain.passwords[HQ_USER], STORES)
        stores = {sid: relaying_store(sid, chain.stores[sid], tmp / f"{sid}.db") for sid in STORES}
        hq.start()
        requests: dict[str, str] = {}
        for i, sid in enumerate(STORES):
            for n in range(PER_STORE):
                number = f"49151{i}{n:07d}"
                request_event(stores[sid].events, f"k{n}", number, f"{sid}-c{n}")
                requests[f"{sid}:k{n}"] = number
        for sid, keys in (("a", ("s1", "s2")), ("b", ("s1",))):
            for key in keys:
                request_event(stores[sid].events, key, SHARED, "shared")
                requests[f"{sid}:{key}"] = SHARED
        inbound_at = []
        with httpx.Client(base_url=emu.url) as http:
            time.sleep(1.0)  # sends under way
            for n in range(INBOUND):  # customers of store a answer while the outbox sends
                http.post("/_emulator/inbound", json={"from": f"491510{n:07d}", "text": "hello"}).raise_for_status()
                inbound_at.append(time.time())
                time.sleep(0.25)
        try:
            yield Setup(chain, emu_app.state.emulator, hq, stores, requests, inbound_at)
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
    most = {w: busiest(traffic, w) for w in (1.0, 2.0)}
    for window, count in most.items():
        assert count <= RATE * window + 2
    print(f"\n{len(out)} sent, {len(setup.inbound_at)} inbound; busiest 1-s window {most[1.0]}, "
          f"2-s window {most[2.0]} messages (configured {RATE:g}/s)")


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
    _wait_for(lambda: len(setup.emulator.per_key) == len(setup.requests))
    before = setup.hq.outbox.counts["duplicate"]
    setup.hq.replay()  # docs/chain.md, "Replaying": HQ's consumers removed, `instore hq` restarted
    _wait_for(lambda: setup.hq.outbox.counts["duplicate"] - before == len(setup.requests))
    time.sleep(1.0)  # a worker that wrongly re-sent would have done so by now
    repeats = sum(n - 1 for n in setup.emulator.per_key.values())
    print(f"\nreplay: {len(setup.requests)} requests read again, {setup.hq.outbox.counts['duplicate'] - before} "
          f"recognised by their keys, messages sent twice: {repeats}")
    assert all(n == 1 for n in setup.emulator.per_key.values())
    assert len(setup.emulator.sent) == len(setup.requests)
