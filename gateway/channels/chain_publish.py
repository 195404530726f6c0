"""The gateway's business events to the store's NATS JetStream, for HQ (docs/chain.md).

`chain_message` (pure) decides what leaves the store: entries and visits of consenting
customers, fitting sessions and follow-up requests that name one, message requests for HQ's
WhatsApp outbox, each on
`chain.<store>.events.<kind>` with the message id `<store>:<generation>:<event id>`, where the
generation is a random id of the gateway database (`Generation`), so a database made anew or
restored from a backup never reuses an id HQ has seen. Nothing else from the event log: no raw
BLE or RFID windows (they are never in the event log), no events without a customer, no staff
notes or node alerts. Sales and hourly footfall come from their own tables
(gateway.channels.chain_sales), EPCIS events from the RFID observation log
(gateway.channels.chain_epcis). `ChainPublisher` is the thin adapter: it walks the event log from a
durable cursor (the last id JetStream acknowledged, in SQLite), so a restart or a NATS outage
loses nothing, and a crash between JetStream's ack and the cursor write republishes the same
message id, which JetStream's duplicate window drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge

from firmware_config.nats import store_bytes, stream_name, subject_prefix
from firmware_config.store import Chain
from gateway.channels.chain_cursor import Cursor, Generation
from gateway.channels.chain_epcis import EpcisFeed
from gateway.channels.chain_sales import SalesFeed
from gateway.events import EventLog, StaffEvent

log = logging.getLogger("instore.chain")

# Event-log kind -> chain kind. Follow-up requests are staff tasks of kind "followup".
CHAIN_KINDS = {
    "entered": "entry",
    "left": "visit",
    "session_started": "fitting",
    "session_ended": "fitting",
    "task": "follow_up",
    "wa_request": "message",  # for HQ's WhatsApp outbox (instore.hq_outbox); names the number, maybe no customer
}
DEDUP_WINDOW_S = 3600.0  # JetStream drops a repeated message id this long: covers a crash-restart loop
BATCH = 200  # events read from the log per round
IDLE_POLL_S = 0.05  # how often an idle publisher looks for new events (an indexed read): the latency floor
RETRY_S = 1.0  # back-off after a failed publish (the store's own NATS restarting)
PUBLISH_TIMEOUT_S = 5.0
STOP_POLL_S = 0.1  # how soon the thread notices it is asked to stop


@dataclass(frozen=True, slots=True)
class ChainMessage:
    subject: str
    msg_id: str
    payload: bytes


def chain_message(store_id: str, ev: StaffEvent, generation: str) -> ChainMessage | None:
    """The message for one event-log row, or None when it must not leave the store."""
    kind = CHAIN_KINDS.get(ev.kind)
    if kind is None or (ev.customer_id is None and ev.kind != "wa_request"):
        return None
    if ev.kind == "task" and ev.data.get("kind") != "followup":
        return None
    body = {"store": store_id, "generation": generation, "id": ev.id, "ts": ev.ts, "kind": kind,
            "source_kind": ev.kind, "customer_id": ev.customer_id, "data": ev.data}
    return ChainMessage(f"{subject_prefix(store_id)}.events.{kind}", f"{store_id}:{generation}:{ev.id}",
                        json.dumps(body, separators=(",", ":")).encode())


def published_id(msg_id: str, store_id: str, generation: str) -> int | None:
    """The event id in a message id this store published under `generation` (None: another's)."""
    store, _, rest = msg_id.partition(":")
    gen, _, event_id = rest.partition(":")
    if store != store_id or gen != generation or not event_id.isdigit():
        return None
    return int(event_id)


class ChainPublisher:
    """Publishes the event log to the store's JetStream from the cursor on, until stopped."""

    def __init__(self, store_id: str, chain: Chain, events: EventLog, cursor: Cursor,
                 registry: CollectorRegistry | None = None, clock: Callable[[], float] = time.time,
                 timezone: str = "UTC"):
        self.store_id, self.chain, self.events, self.cursor = store_id, chain, events, cursor
        self.sales = SalesFeed(store_id, events.db, events.lock, clock)  # sales and footfall, from their tables
        self.epcis = EpcisFeed(store_id, events.db, events.lock, timezone)  # the RFID export's events (store time)
        self.generation = Generation(events.db, events.lock)
        self.opened_at_id = events.last_id()  # the database as it was opened, before this run added to it
        self.published = 0
        self.skipped = 0
        self.failures = 0
        if registry is not None:  # read at scrape time: the backlog is what an outage has piled up
            for name, doc, read in (
                ("published", "Events published to the store's JetStream since start", lambda: self.published),
                ("skipped", "Event-log rows that stay in the store, since start", lambda: self.skipped),
                ("failures", "Failed attempts to reach or publish to the store's NATS", lambda: self.failures),
                ("backlog", "Event-log rows not yet acknowledged by JetStream",
                 lambda: self.events.last_id() - self.cursor.get()),
            ):
                Gauge(f"instore_gateway_chain_{name}", doc, registry=registry).set_function(read)

    async def _ensure_stream(self, js) -> None:  # noqa: ANN001 (nats.js.JetStreamContext)
        from nats.js.api import DiscardPolicy, StorageType, StreamConfig

        config = StreamConfig(
            name=stream_name(self.store_id), subjects=[f"{subject_prefix(self.store_id)}.events.>"],
            storage=StorageType.FILE, max_bytes=store_bytes(self.chain), discard=DiscardPolicy.OLD,
            duplicate_window=DEDUP_WINDOW_S,
        )
        try:
            await js.add_stream(config)
        except Exception:  # noqa: BLE001 (exists with another config: bring it in line)
            await js.update_stream(config)
        await self._check_restored(js)

    async def _check_restored(self, js) -> None:  # noqa: ANN001
        """A database restored from an older backup has published, under its generation, ids past
        its last event as opened: it gets a new generation, and its cursor moves past what it held
        when opened (all of that was published before the restore; what came since is new)."""
        from nats.js.errors import NotFoundError

        generation, newest = self.generation.get(), 0
        for kind in sorted(set(CHAIN_KINDS.values())):
            try:
                subject = f"{subject_prefix(self.store_id)}.events.{kind}"
                last = await js.get_last_msg(stream_name(self.store_id), subject)
            except NotFoundError:
                continue
            newest = max(newest, published_id((last.headers or {}).get("Nats-Msg-Id", ""), self.store_id,
                                              generation) or 0)
        if newest > self.opened_at_id:
            log.warning("chain: the gateway database is older than what it published (event %d > %d): restored "
                        "from a backup? New database generation", newest, self.opened_at_id)
            self.generation.renew()
            self.cursor.set(max(self.cursor.get(), self.opened_at_id))
            self.sales.restored()
            self.epcis.restored()

    async def publish_pending(self, js) -> int:  # noqa: ANN001
        """Publish every event after the cursor; the cursor moves after each JetStream ack."""
        done, generation = 0, self.generation.get()
        while batch := self.events.after(self.cursor.get(), BATCH):
            for ev in batch:
                msg = chain_message(self.store_id, ev, generation)
                if msg is None:
                    self.skipped += 1
                else:
                    await js.publish(msg.subject, msg.payload, timeout=PUBLISH_TIMEOUT_S,
                                     headers={"Nats-Msg-Id": msg.msg_id})
                    self.published += 1
                    done += 1
                self.cursor.set(ev.id)
        tables = await self.sales.publish_pending(js, PUBLISH_TIMEOUT_S)
        tables += await self.epcis.publish_pending(js, PUBLISH_TIMEOUT_S)
        self.published += tables
        return done + tables

    async def run(self, stop: asyncio.Event) -> None:
        url = f"nats://{self.chain.nats_host}:{self.chain.nats_port}"
        async with connected(url, stop, self._failed) as nc:
            if nc is not None:
                await self._loop(nc.jetstream(), stop)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        log.warning("chain: store NATS unreachable (retrying): %s", exc)

    async def _loop(self, js, stop: asyncio.Event) -> None:  # noqa: ANN001
        ready = False
        while not stop.is_set():
            try:
                if not ready:
                    await self._ensure_stream(js)
                    ready = True
                await self.publish_pending(js)
                wait = IDLE_POLL_S
            except Exception as exc:  # noqa: BLE001 (NATS down or timing out: retry, the cursor holds)
                self.failures += 1
                log.warning("chain publish failed (retrying): %s", exc)
                wait = RETRY_S
            await sleep_unless(stop, wait)


@contextlib.asynccontextmanager
async def connected(
    url: str | list[str], stop: asyncio.Event, on_failure: Callable[[Exception], None], **options: Any
) -> AsyncIterator[Any]:
    """A NATS connection that keeps reconnecting, once the first connect succeeds (it retries that
    too, each failure to `on_failure`, until `stop`: then it yields None); closed on exit, also when
    the server is gone."""
    nc = None
    while nc is None and not stop.is_set():
        try:
            nc = await _first_connect(url, stop, on_failure, **options)
        except Exception as exc:  # noqa: BLE001 (refused outright: wait and try again)
            on_failure(exc)
            await sleep_unless(stop, RETRY_S)
    try:
        yield nc
    finally:
        if nc is not None:
            try:
                await nc.close()
            except Exception as exc:  # noqa: BLE001 (closing towards a dead server: nothing left to do)
                log.debug("closing NATS: %s", exc)


async def _first_connect(url: str | list[str], stop: asyncio.Event, on_failure: Callable[[Exception], None],
                         **options: Any) -> Any:
    """nats-py retries a first connect inside `connect` for as long as it reconnects later (for ever),
    past any `stop`: so it runs as a task, cancelled (and its client closed) when `stop` comes first;
    None then. Its failed attempts go to `on_failure`; every error also to the caller's `error_cb` if
    it gave one, else later errors (reconnecting) are logged."""
    from nats.aio.client import Client

    nc, up, theirs = Client(), asyncio.Event(), options.pop("error_cb", None)

    async def failed(exc: Exception) -> None:
        if not up.is_set():
            on_failure(exc)
        if theirs is not None:
            await theirs(exc)
        elif up.is_set():
            log.warning("NATS: %s", exc)

    connecting = asyncio.ensure_future(nc.connect(
        url, max_reconnect_attempts=-1, error_cb=failed, **options,
        reconnect_time_wait=RETRY_S))  # type: ignore[arg-type]  # nats-py sleeps it: a float works, its hint says int
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not connecting.done():
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await connecting
        with contextlib.suppress(Exception):
            await nc.close()
        return None
    connecting.result()  # raises what made it give up
    up.set()
    return nc


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when stopped."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


class Runner(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...  # pragma: no cover


class PublisherThread:
    """`publisher` (and `also`: the customer sync) in its own thread and event loop, away from the
    API's loop and the MQTT thread."""

    def __init__(self, publisher: ChainPublisher, *also: Runner):
        self.publisher, self.also = publisher, also
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="chain-publish", daemon=True)

    async def _main(self) -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(r.run(stop)) for r in (self.publisher, *self.also)]
        while not self._stopping.is_set() and not all(t.done() for t in tasks):
            await asyncio.sleep(STOP_POLL_S)
        stop.set()
        await asyncio.gather(*tasks)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(PUBLISH_TIMEOUT_S + 1)


def attach(app: FastAPI, thread: PublisherThread) -> None:
    """Run the publisher while the app serves: started after its startup, stopped before its end."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app):
            thread.start()
            try:
                yield
            finally:
                thread.stop()

    app.router.lifespan_context = lifespan
