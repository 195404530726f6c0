"""`instore hq`: pulls every store's stream across its leaf link into the chain CRM (docs/chain.md).

Per store, a connection replying on `_HQ.<store>.>` and a durable pull consumer in the store's
JetStream domain; a store's identity is the link, never the payload (`classify` flags events
naming another store). Each event goes to PostgreSQL in one transaction keyed by (store, message
id) and only then is acknowledged, so a redelivery changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from firmware_config.nats import HQ_USER, reply_prefix, stream_name, subject_prefix
from firmware_config.store import Identifier
from firmware_config.validate import ConfigError, key_lines, model_problems, syntax_problem
from gateway.chain_publish import connected, sleep_unless

log = logging.getLogger("instore.hq")

CONSUMER = "hq"  # HQ's durable consumer on every store's stream
FETCH_BATCH = 256  # messages per pull request: large enough to catch up at many times the live rate
FETCH_WAIT_S = 1.0  # a pull waits this long for messages before asking again
RETRY_S = 1.0  # back-off after the link or PostgreSQL failed
# A batch delivered into a link that then dropped is sent again after this long: the bound on how
# late HQ resumes after a cut. Short is harmless: a redelivery is a duplicate HQ already ignores.
ACK_WAIT_S = 5.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS chain_events (
  store TEXT NOT NULL, msg_id TEXT NOT NULL, event_id BIGINT, kind TEXT NOT NULL, customer_id TEXT,
  ts DOUBLE PRECISION, body JSONB NOT NULL, forged TEXT, received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (store, msg_id)
);
CREATE TABLE IF NOT EXISTS chain_customers (
  customer_id TEXT PRIMARY KEY, first_seen DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL,
  last_store TEXT NOT NULL, entries INTEGER NOT NULL DEFAULT 0, visits INTEGER NOT NULL DEFAULT 0,
  fittings INTEGER NOT NULL DEFAULT 0, follow_ups INTEGER NOT NULL DEFAULT 0, events INTEGER NOT NULL DEFAULT 0
);
"""
# The per-customer counter each chain kind bumps (gateway.chain_publish.CHAIN_KINDS).
COUNTERS = {"entry": "entries", "visit": "visits", "fitting": "fittings", "follow_up": "follow_ups"}


class HqConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nats_url: str = "nats://127.0.0.1:4222"
    password_file: str  # the `hq` line of chain-credentials.toml, alone in a file
    postgres: str  # a libpq connection string
    stores: Annotated[list[Identifier], Field(min_length=1)]


def load_config(path: str | Path) -> HqConfig:
    """Parse an HQ config; every problem as file:line: key: message."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([syntax_problem(exc, text, str(path))]) from None
    problems = model_problems(data, HqConfig, str(path), key_lines(text))
    if problems:
        raise ConfigError(problems)
    return HqConfig.model_validate(data)


@dataclass(frozen=True, slots=True)
class Classified:
    """One message as HQ records it; `forged` says why its claimed store is not the link's."""

    store: str
    msg_id: str
    body: dict
    kind: str
    forged: str | None


def classify(link_store: str, subject: str, msg_id: str | None, data: bytes) -> Classified:
    """Take the store from the link; flag any other store named in the subject, id or payload."""
    try:
        body = json.loads(data)
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        body = {"unreadable": str(exc)}
    reasons = []
    if not subject.startswith(f"{subject_prefix(link_store)}.events."):
        reasons.append(f"subject {subject!r}")
    if msg_id is None or not msg_id.startswith(f"{link_store}:"):
        reasons.append(f"message id {msg_id!r}")
    if body.get("store") != link_store:
        reasons.append(f"payload store {body.get('store')!r}")
    kind = str(body.get("kind", subject.rsplit(".", 1)[-1]))
    # An id without the link's prefix is kept under its own name: it cannot shadow a real event.
    return Classified(link_store, msg_id or subject, body, kind, "; ".join(reasons) or None)


def record(conn, ev: Classified) -> bool:  # noqa: ANN001 (psycopg.Connection)
    """Insert the event and, once, its effect on the customer record; False if already there."""
    body = ev.body
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO chain_events (store, msg_id, event_id, kind, customer_id, ts, body, forged) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            [ev.store, ev.msg_id, body.get("id") if isinstance(body.get("id"), int) else None, ev.kind,
             body.get("customer_id"), body.get("ts"), json.dumps(body), ev.forged],
        ).fetchone()
        customer, ts = body.get("customer_id"), body.get("ts")
        if row is None or ev.forged or not isinstance(customer, str) or not isinstance(ts, int | float):
            return row is not None
        counter = COUNTERS.get(ev.kind)
        bump = f", {counter} = chain_customers.{counter} + 1" if counter else ""
        conn.execute(
            f"INSERT INTO chain_customers (customer_id, first_seen, last_seen, last_store, events"
            f"{', ' + counter if counter else ''}) VALUES (%s, %s, %s, %s, 1{', 1' if counter else ''}) "
            f"ON CONFLICT (customer_id) DO UPDATE SET events = chain_customers.events + 1{bump}, "
            "first_seen = LEAST(chain_customers.first_seen, excluded.first_seen), "
            "last_seen = GREATEST(chain_customers.last_seen, excluded.last_seen), "
            "last_store = CASE WHEN excluded.last_seen >= chain_customers.last_seen "
            "THEN excluded.last_store ELSE chain_customers.last_store END",
            [customer, ts, ts, ev.store],
        )
    return True


class Hq:
    """Pulls each store's stream into PostgreSQL; counters say what happened."""

    def __init__(self, config: HqConfig, password: str):
        self.config, self.password = config, password
        self.recorded = 0
        self.duplicates = 0
        self.forged = 0
        self.failures = 0

    async def pull_store(self, store: str, stop: asyncio.Event) -> None:
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.api import ConsumerConfig

        db = Postgres(self.config.postgres)
        async with connected(self.config.nats_url, stop, self._failed, user=HQ_USER, password=self.password,
                             inbox_prefix=reply_prefix(store).encode()) as nc:
            if nc is None:
                return
            js = nc.jetstream(domain=store)
            sub = None
            while not stop.is_set():
                try:
                    if sub is None:
                        sub = await js.pull_subscribe(f"{subject_prefix(store)}.events.>", durable=CONSUMER,
                                                      stream=stream_name(store),
                                                      config=ConsumerConfig(ack_wait=ACK_WAIT_S))
                    msgs = await sub.fetch(FETCH_BATCH, timeout=FETCH_WAIT_S)
                except (TimeoutError, NatsTimeout):
                    continue
                except Exception as exc:  # noqa: BLE001 (the link is down or the stream not yet made)
                    self._failed(exc)
                    sub = None
                    await sleep_unless(stop, RETRY_S)
                    continue
                for m in msgs:
                    try:
                        await self._take(store, db, m)
                    except Exception as exc:  # noqa: BLE001 (PostgreSQL away: the rest stays unacknowledged
                        self._failed(exc)  # and comes again after ACK_WAIT_S)
                        db.reset()
                        await sleep_unless(stop, RETRY_S)
                        break
        db.reset()

    async def _take(self, store: str, db: Postgres, m) -> None:  # noqa: ANN001 (nats Msg)
        ev = classify(store, m.subject, (m.headers or {}).get("Nats-Msg-Id"), m.data)
        if await asyncio.to_thread(lambda: record(db.get(), ev)):
            self.recorded += 1
            if ev.forged:
                self.forged += 1
                log.warning("hq: store %s: forged store identity (%s)", store, ev.forged)
        else:
            self.duplicates += 1
        await m.ack()

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        log.warning("hq: %s (retrying)", exc)

    async def run(self, stop: asyncio.Event) -> None:
        schema = Postgres(self.config.postgres)
        while not stop.is_set():
            try:
                await asyncio.to_thread(lambda: schema.get().execute(SCHEMA))
                break
            except Exception as exc:  # noqa: BLE001 (PostgreSQL not up yet)
                self._failed(exc)
                await sleep_unless(stop, RETRY_S)
        schema.reset()
        await asyncio.gather(*(self.pull_store(s, stop) for s in self.config.stores))


class Postgres:
    """One connection, made on first use and again after `reset` (it broke, PostgreSQL restarted)."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.conn: Any = None

    def get(self) -> Any:  # psycopg.Connection, imported lazily like nats
        import psycopg

        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.dsn, autocommit=True)
        return self.conn

    def reset(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
