"""One WhatsApp outbox per number, at HQ: the stores' message requests in, Meta's webhooks back to
the store that owns the conversation (docs/chain.md, "WhatsApp at HQ").

Per store, one connection replying on `_HQ.<store>.>` pulls the store's `message` chain events
with a durable consumer of its own (`hq-outbox`, in the store's domain) and queues each in
cloud_sync's outbox (its SQLite file, its idempotency key `<store>:<store's key>`: a replay queues
nothing twice), then acknowledges. The outbox's one worker sends with one token bucket for the
number, charged for inbound messages too, its per-recipient spacing, and the portfolio's rolling
24-hour unique-recipient budget (`BudgetRules`). The signed webhook receiver records statuses and
replies in the outbox and notes each for its store (`hq_wa_relay`, until published); the same
connection publishes them into the store's own stream (`chain.<store>.wa.<kind>`), which only that
store can read. An erasure at HQ erases the customer's numbers from the outbox too (`erase`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any

from prometheus_client.core import Metric
from pydantic import BaseModel, ConfigDict, Field

from cloud_sync import relay
from cloud_sync.client import CloudApiClient
from cloud_sync.config import TemplateSection
from cloud_sync.events import InboundMessage, StatusEvent
from cloud_sync.migrations import migrate
from cloud_sync.outbox import OutboxWorker, connect, enqueue, record_inbound, record_status, row_counts
from cloud_sync.ratelimit import TokenBucket
from cloud_sync.rules import Decision, DecisionKind, Policy, Purpose, Rules
from firmware_config.nats import HQ_USER, reply_prefix, stream_name, subject_prefix, whatsapp_subject
from gateway.channels.chain_publish import connected, sleep_unless

log = logging.getLogger("instore.hq.whatsapp")

CONSUMER = "hq-outbox"  # HQ's durable consumer of the stores' message requests (beside `hq`)
REQUEST_KIND = "message"  # the chain kind of a message request (gateway.channels.chain_publish)
RECIPIENT_WINDOW_S = 24 * 3600.0  # Meta's unique-recipient limit counts a rolling 24 hours
RELAY_BATCH = 100  # statuses and replies published to a store per round
FETCH_BATCH = 64  # message requests per pull: a store queues a few a minute, a replay thousands
FETCH_WAIT_S = 0.5  # how long a pull waits; also the floor of how late a status reaches its store
ACK_WAIT_S = 5.0  # as instore.hq: a request lost with a link comes again; its key makes that harmless
RETRY_S = 1.0  # back-off after the link failed
PUBLISH_TIMEOUT_S = 5.0
WORKER_POLL_S = 0.05  # the worker's idle poll: a queued request goes out within this
WEBHOOK_PATH = "/whatsapp/webhook"

SCHEMA = """
CREATE TABLE IF NOT EXISTS hq_wa_routes (
  key TEXT PRIMARY KEY, store TEXT NOT NULL, wa_id TEXT NOT NULL, customer_id TEXT, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS hq_wa_routes_number ON hq_wa_routes(wa_id, at);
CREATE INDEX IF NOT EXISTS hq_wa_routes_customer ON hq_wa_routes(customer_id);
CREATE TABLE IF NOT EXISTS hq_wa_relay (id INTEGER PRIMARY KEY AUTOINCREMENT, store TEXT NOT NULL,
  kind TEXT NOT NULL, body TEXT NOT NULL);
"""  # a relay row goes once its store's stream has it; AUTOINCREMENT: its id (the message id) is never reused


class HqWhatsApp(BaseModel):
    """`[whatsapp]` of hq.toml: the number HQ sends for; paths relative to where `instore hq` runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    db: str  # the outbox's SQLite file: its rows, idempotency keys and the routes to the stores
    base_url: str = "https://graph.facebook.com"
    version: str = "v23.0"
    phone_number_id: str
    token_file: str  # the Cloud API access token, alone in a file
    app_secret_file: str  # signs Meta's webhooks
    verify_token: Annotated[str, Field(min_length=8, max_length=200)]
    webhook_host: str = "127.0.0.1"  # behind the TLS proxy that Meta calls
    webhook_port: Annotated[int, Field(ge=1, le=65535)] = 8470
    rate_per_s: Annotated[float, Field(gt=0, le=1000)] = 20.0  # the number's throughput, inbound included
    recipients_per_24h: Annotated[int, Field(ge=1)] = 1000  # the portfolio's unique-recipient tier
    templates: list[TemplateSection] = []


class RequestError(ValueError):
    """A message request HQ cannot queue (named field and problem)."""


@dataclass(frozen=True, slots=True)
class Request:
    key: str  # `<store>:<the store's key>`
    store: str
    customer_id: str | None
    to: str
    purpose: str
    due_at: float
    body: dict[str, Any]  # the Cloud API body, addressed


def message_request(store: str, event: Mapping[str, Any]) -> Request:
    """The outbox row for one store's `message` chain event (its `data` is gateway.staff_events.WaRequest)."""
    data = event.get("data")
    if not isinstance(data, dict):
        raise RequestError("data: not an object")
    key, to, message = data.get("key"), data.get("to"), data.get("message")
    if not isinstance(key, str) or not key:
        raise RequestError("data.key: a non-empty string is required")
    if not isinstance(to, str) or not to.isdigit():
        raise RequestError("data.to: a WhatsApp number (digits) is required")
    if not isinstance(message, dict):
        raise RequestError("data.message: an object is required")
    if data.get("purpose") not in {p.value for p in Purpose}:
        raise RequestError(f"data.purpose: {data.get('purpose')!r} is not a purpose")
    due = data.get("due_at")
    if not isinstance(due, int | float):
        raise RequestError("data.due_at: a time is required")
    customer = event.get("customer_id")
    return Request(f"{store}:{key}", store, customer if isinstance(customer, str) else None, to,
                   data["purpose"], float(due), {**message, "to": to})


def budget_release(recent: Mapping[str, float], customer: str, now: float, budget: int,
                   window_s: float = RECIPIENT_WINDOW_S) -> float | None:
    """When `customer` may be messaged under the rolling unique-recipient budget, or None: now.
    `recent`: every recipient messaged in the window, with their latest send."""
    if customer in recent or len(recent) < budget:
        return None
    times = sorted(recent.values())
    return times[len(times) - budget] + window_s  # then one of them has aged out


class BudgetRules:
    """cloud_sync's Rules, then the portfolio's 24-hour recipient budget. The recipients of the window
    are read from the outbox once and then kept in memory (oldest first): a decision costs no scan of
    a day of rows. A message allowed counts at once (the worker sends what the rules allow, maybe a
    few seconds later for the pair rate); one that then fails still counts, which errs on the safe side."""

    def __init__(self, rules: Rules, conn: sqlite3.Connection, budget: int, now: float):
        self.rules, self.budget = rules, budget
        self.policy = rules.policy
        self.deferred = 0  # sends deferred by the budget, since start
        self.recent: OrderedDict[str, float] = OrderedDict(conn.execute(
            "SELECT customer, MAX(COALESCE(sent_at, sending_since)) AS t FROM wa_outbox "
            "WHERE COALESCE(sent_at, sending_since) > ? GROUP BY customer ORDER BY t",
            (now - RECIPIENT_WINDOW_S,)).fetchall())

    def decide(self, *, customer: str, now: float, **kw: Any) -> Decision:
        decision = self.rules.decide(customer=customer, now=now, **kw)
        if decision.kind is not DecisionKind.SEND_NOW:
            return decision
        while self.recent and next(iter(self.recent.values())) <= now - RECIPIENT_WINDOW_S:
            self.recent.popitem(last=False)
        until = budget_release(self.recent, customer, now, self.budget)
        if until is not None:
            self.deferred += 1
            return Decision(DecisionKind.DEFER, until=until, reason="24-hour recipient budget")
        self.recent[customer] = now
        self.recent.move_to_end(customer)
        return decision


class SharedBucket(TokenBucket):
    """The number's one bucket: the worker takes from it, the webhook charges inbound messages (two threads)."""

    def __init__(self, rate_per_s: float, *, now: float):
        super().__init__(rate_per_s, 1.0, now=now)
        self._lock = threading.Lock()
        self.waited = 0  # sends that had to wait for the number's rate, since start

    def take(self, now: float, n: float = 1.0) -> float:
        with self._lock:
            wait = super().take(now, n)
            self.waited += wait > 0
            return wait

    def charge(self, now: float, n: float = 1.0) -> None:
        with self._lock:
            super().charge(now, n)


class HqOutbox:
    """The outbox's database at HQ: requests in, statuses and replies routed to their stores."""

    def __init__(self, cfg: HqWhatsApp, clock: Any = time.time):
        self.cfg, self.clock = cfg, clock
        self.conn = connect(cfg.db)
        self.lock = threading.Lock()  # `conn` is shared by the stores' pulls and the webhook's threads
        migrate(self.conn)
        self.conn.executescript(SCHEMA)
        self.bucket = SharedBucket(cfg.rate_per_s, now=clock())
        self.counts = {"queued": 0, "duplicate": 0, "forged": 0, "bad": 0, "relayed": 0, "unrouted": 0}
        self.sender: OutboxWorker | None = None  # the one worker, once `worker` made it
        self.budget: BudgetRules | None = None

    def _write(self, sql: str, args: tuple = ()) -> Any:
        with self.lock:
            return self.conn.execute(sql, args)

    def take(self, store: str, subject: str, msg_id: str | None, data: bytes) -> str:
        """Queue one store's request: `queued`, `duplicate` (its key is known), `forged` or `bad`."""
        from instore.hq import classify

        ev = classify(store, subject, msg_id, data)
        try:
            if ev.forged:
                raise RequestError(f"forged store identity ({ev.forged})")
            req = message_request(store, ev.body)
            outcome = self._enqueue(req)
        except (RequestError, ValueError) as exc:  # messages.MessageError is a ValueError
            outcome = "forged" if ev.forged else "bad"
            log.warning("hq whatsapp: store %s: request %s refused: %s", store, msg_id, exc)
        self.counts[outcome] += 1
        return outcome

    def _enqueue(self, req: Request) -> str:
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                new = enqueue(self.conn, req.key, req.to, req.body, req.purpose, req.due_at, now=self.clock())
                if new:
                    self.conn.execute("INSERT INTO hq_wa_routes (key, store, wa_id, customer_id, at) "
                                      "VALUES (?, ?, ?, ?, ?)", (req.key, req.store, req.to, req.customer_id,
                                                                 self.clock()))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return "queued" if new else "duplicate"

    # -- webhooks (threads of the receiver)
    def on_status(self, ev: StatusEvent) -> None:
        with self.lock:
            record_status(self.conn, ev, self.clock())
            row = self.conn.execute(
                "SELECT r.store, r.key FROM hq_wa_routes r LEFT JOIN wa_outbox o ON o.idempotency_key = r.key "
                "WHERE r.key = ? OR o.wamid = ? LIMIT 1", (ev.callback_data, ev.message_id)).fetchone()
        if row is None:
            return self._unrouted(ev.recipient_id, "status")
        store, key = row[0], row[1]
        self._relay(store, replace(ev, callback_data=key.removeprefix(f"{store}:")))

    def on_message(self, msg: InboundMessage) -> None:
        self.bucket.charge(self.clock())  # inbound traffic counts against the number's throughput
        with self.lock:
            record_inbound(self.conn, msg.sender, float(msg.timestamp))
            row = self.conn.execute("SELECT store FROM hq_wa_routes WHERE wa_id = ? ORDER BY at DESC LIMIT 1",
                                    (msg.sender,)).fetchone()
        if row is None:
            return self._unrouted(msg.sender, "message")
        self._relay(row[0], msg)

    def _unrouted(self, wa_id: str | None, what: str) -> None:
        self.counts["unrouted"] += 1
        log.warning("hq whatsapp: %s from +%s: no store has written to this number, kept at HQ only", what, wa_id)

    def _relay(self, store: str, ev: StatusEvent | InboundMessage) -> None:
        wire = relay.to_wire(ev)
        self._write("INSERT INTO hq_wa_relay (store, kind, body) VALUES (?, ?, ?)",
                    (store, wire["kind"], json.dumps(wire, separators=(",", ":"))))

    # -- to the stores
    def pending(self, store: str) -> list[tuple[int, str, bytes]]:
        with self.lock:
            return [(r[0], r[1], r[2].encode()) for r in self.conn.execute(
                "SELECT id, kind, body FROM hq_wa_relay WHERE store = ? ORDER BY id LIMIT ?", (store, RELAY_BATCH))]

    def relayed(self, row_id: int) -> None:
        """The store's stream has it: HQ keeps no copy."""
        self._write("DELETE FROM hq_wa_relay WHERE id = ?", (row_id,))
        self.counts["relayed"] += 1

    def erase(self, customer_id: str) -> int:
        """An erasure at HQ reaches the outbox: every row, status, window and route of the customer's
        numbers, and what waits to be relayed about them; rows deleted."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                numbers = [r[0] for r in self.conn.execute(
                    "SELECT DISTINCT wa_id FROM hq_wa_routes WHERE customer_id = ?", (customer_id,))]
                gone = sum(self.conn.execute(sql, (number,)).rowcount for number in numbers for sql in (
                    "DELETE FROM wa_status_events WHERE recipient_id = ?1 OR callback_data IN "
                    "(SELECT key FROM hq_wa_routes WHERE wa_id = ?1)",
                    "DELETE FROM wa_outbox WHERE customer = ?", "DELETE FROM wa_contacts WHERE customer = ?",
                    "DELETE FROM hq_wa_relay WHERE instr(body, '\"' || ? || '\"') > 0",
                    "DELETE FROM hq_wa_routes WHERE wa_id = ?"))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return gone

    def worker(self, client: CloudApiClient) -> OutboxWorker:
        """cloud_sync's worker on this outbox: the shared bucket, the budget, consent checked in the store."""
        from zoneinfo import ZoneInfo

        from cloud_sync.rules import Category, Template, TemplateRegistry

        templates = TemplateRegistry([Template(t.name, t.language, Category(t.category), t.params)
                                      for t in self.cfg.templates])
        rules = Rules(Policy(tz=ZoneInfo("UTC"), templates=templates, quiet_hours=None),
                      consent=lambda _c, _p: True)  # the store checked consent and quiet hours (`due_at`)
        self.budget = BudgetRules(rules, self.conn, self.cfg.recipients_per_24h, self.clock())
        self.sender = OutboxWorker(self.cfg.db, client, self.budget, clock=self.clock, bucket=self.bucket,  # type: ignore[arg-type]  # BudgetRules wraps Rules (same check/policy), not a subclass
                                   poll_interval_s=WORKER_POLL_S,
                                   on_alert=lambda e: log.error("hq whatsapp alert %s: %s", e.code, e.message))
        return self.sender

    def metrics(self) -> tuple[dict[str, int], dict[str, int]]:
        """(counters since start, outbox rows per status now) for HQ's /metrics (`OutboxCollector`)."""
        counters = {**self.counts, "sent": self.sender.sent_count if self.sender else 0,
                    "rate_limited": self.bucket.waited, "budget_deferred": self.budget.deferred if self.budget else 0}
        with self.lock:
            return counters, row_counts(self.conn)


def erase_customer(cfg: HqWhatsApp, customer_id: str) -> int:
    """The outbox's part of an erasure at HQ, on a connection of its own (`instore hq --erase` runs
    beside the serving `instore hq`); rows deleted."""
    outbox = HqOutbox(cfg)
    try:
        return outbox.erase(customer_id)
    finally:
        outbox.conn.close()


async def _relay_to(js: Any, outbox: HqOutbox, store: str) -> bool:
    """Publish the store's pending statuses and replies into its stream, each row deleted after its ack;
    False if the store's stream could not take them (not made yet, link down): the rows wait."""
    try:
        while rows := await asyncio.to_thread(outbox.pending, store):
            for rid, kind, body in rows:
                await js.publish(f"{whatsapp_subject(store)}.{kind}", body, timeout=PUBLISH_TIMEOUT_S,
                                 headers={"Nats-Msg-Id": f"hq:{rid}"})
                await asyncio.to_thread(outbox.relayed, rid)
    except Exception as exc:  # noqa: BLE001 (the requests are pulled all the same)
        log.warning("hq whatsapp: store %s: relay waits: %s", store, exc)
        return False
    return True


async def serve_store(outbox: HqOutbox, nats_url: str | list[str], password: str, store: str,
                      stop: asyncio.Event) -> None:
    """One store's link for the outbox: pull its message requests, push its statuses and replies."""
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import ConsumerConfig

    def failed(exc: Exception) -> None:
        log.warning("hq whatsapp: store %s: %s (retrying)", store, exc)

    async with connected(nats_url, stop, failed, user=HQ_USER, password=password,
                         inbox_prefix=reply_prefix(store).encode()) as nc:
        if nc is None:
            return
        js = nc.jetstream(domain=store)
        sub, relay_at = None, 0.0
        while not stop.is_set():
            try:
                if sub is None:
                    sub = await js.pull_subscribe(f"{subject_prefix(store)}.events.{REQUEST_KIND}", durable=CONSUMER,
                                                  stream=stream_name(store), config=ConsumerConfig(ack_wait=ACK_WAIT_S))
                if time.monotonic() >= relay_at and not await _relay_to(js, outbox, store):
                    relay_at = time.monotonic() + RETRY_S
                msgs = await sub.fetch(FETCH_BATCH, timeout=FETCH_WAIT_S)
            except (TimeoutError, NatsTimeout):
                continue
            except Exception as exc:  # noqa: BLE001 (link down, stream not made yet: the rows wait)
                failed(exc)
                sub = None
                await sleep_unless(stop, RETRY_S)
                continue
            for m in msgs:
                await asyncio.to_thread(outbox.take, store, m.subject, (m.headers or {}).get("Nats-Msg-Id"), m.data)
                await m.ack()


def keep_sending(worker: OutboxWorker, halt: threading.Event) -> None:
    """The worker until `halt`, restarted after a failure (the row stays for the next round), as in a store."""
    while not halt.is_set():
        try:
            worker.run(stop=halt)
            if worker.halted is not None:
                log.error("hq whatsapp: outbox halted: %s", worker.halted)
                return
        except Exception:  # noqa: BLE001 (a database or HTTP hiccup must not stop the number's outbox)
            log.exception("hq whatsapp: outbox worker failed; restarting in %s s", RETRY_S)
            halt.wait(RETRY_S)


def webhook_app(outbox: HqOutbox, app_secret: str) -> Any:
    """The signed webhook receiver (cloud_sync.webhook) on HQ's outbox."""
    from fastapi import FastAPI

    from cloud_sync.webhook import WebhookHandlers, create_webhook_router

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(create_webhook_router(
        app_secret=app_secret, verify_token=outbox.cfg.verify_token, path=WEBHOOK_PATH,
        handlers=WebhookHandlers(on_status=outbox.on_status, on_message=outbox.on_message)))
    return app


async def run(outbox: HqOutbox, nats_url: str | list[str], password: str, stores: list[str],
              stop: asyncio.Event) -> None:
    """`instore hq`'s WhatsApp part: the stores' links, the worker thread and the webhook receiver, until `stop`."""
    from pathlib import Path

    import uvicorn

    cfg = outbox.cfg
    token = Path(cfg.token_file).read_text(encoding="utf-8").strip()
    secret = Path(cfg.app_secret_file).read_text(encoding="utf-8").strip()
    halt = threading.Event()
    with CloudApiClient(cfg.base_url, cfg.version, cfg.phone_number_id, token) as client:
        worker = outbox.worker(client)
        thread = threading.Thread(target=keep_sending, args=(worker, halt), name="hq-wa-outbox", daemon=True)
        thread.start()
        server = uvicorn.Server(uvicorn.Config(webhook_app(outbox, secret), host=cfg.webhook_host,
                                               port=cfg.webhook_port, log_level="warning", lifespan="off"))
        serving = asyncio.create_task(server.serve())
        try:
            await asyncio.gather(*(serve_store(outbox, nats_url, password, s, stop) for s in stores))
        finally:
            server.should_exit = True
            halt.set()
            await serving
            await asyncio.to_thread(thread.join, 10)
            worker.close()


# counter in HqOutbox.metrics -> (Prometheus name, help); rendered with _total
OUTBOX_COUNTERS = {
    "queued": ("instore_hq_whatsapp_queued", "Stores' message requests queued in HQ's outbox"),
    "duplicate": ("instore_hq_whatsapp_duplicates", "Message requests already queued (their key is known)"),
    "forged": ("instore_hq_whatsapp_forged", "Message requests naming another store than their link's (refused)"),
    "bad": ("instore_hq_whatsapp_bad", "Malformed message requests (refused)"),
    "sent": ("instore_hq_whatsapp_sent", "Messages the Cloud API accepted"),
    "rate_limited": ("instore_hq_whatsapp_rate_limited", "Sends that waited for the number's rate"),
    "budget_deferred": ("instore_hq_whatsapp_budget_deferred", "Sends deferred by the 24-hour recipient budget"),
    "relayed": ("instore_hq_whatsapp_relayed", "Statuses and replies delivered into their store's stream"),
    "unrouted": ("instore_hq_whatsapp_unrouted", "Statuses and replies no store owns (kept at HQ)"),
}
ROWS = ("instore_hq_whatsapp_outbox_rows", "HQ's outbox rows by status (pending: queued, failed: given up)")


class OutboxCollector:
    """HQ's outbox on /metrics: its counters since start and its rows per status, read at scrape time."""

    def __init__(self, outbox: HqOutbox):
        self.outbox = outbox

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        counters, rows = self.outbox.metrics()
        for key, (name, doc) in OUTBOX_COUNTERS.items():
            yield CounterMetricFamily(name, doc, value=counters[key])
        family = GaugeMetricFamily(*ROWS, labels=["status"])
        for status in sorted({"pending", "failed", *rows}):
            family.add_metric([status], rows.get(status, 0))
        yield family
