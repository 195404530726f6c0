"""`instore hq`: pulls every store's stream across its leaf link into the chain CRM (docs/chain.md).

Per store, a connection replying on `_HQ.<store>.>` and a durable pull consumer in the store's
JetStream domain; a store's identity is the link, never the payload (`classify` flags events
naming another store). Each fetched batch goes to PostgreSQL in one transaction keyed by (store,
message id) and only then is acknowledged, by one cumulative ack. Customer snapshots from stores
merge into HQ's record and go back to every store through the mirrored key-value bucket; an
erasure leaves a tombstone that refuses later snapshots of that customer. Sales and footfall hours
also land in tables of their own (`chain_sales`, `chain_footfall`) for the chain dashboard
(instore.hq_dashboard); an erased customer's sales stay there without their id. The stores' EPCIS
events are captured in `chain_epcis` (instore.hq_epcis). docs/chain.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from firmware_config.nats import CUSTOMERS_BUCKET, HQ_USER, reply_prefix, stream_name, subject_prefix
from firmware_config.store import Identifier
from firmware_config.validate import ConfigError, key_lines, model_problems, syntax_problem
from gateway.channels.chain_publish import connected, sleep_unless
from instore import hq_epcis, hq_outbox
from instore.hq_acks import CumulativeAcks
from instore.hq_metrics import StoreStats

log = logging.getLogger("instore.hq")

CONSUMER = "hq"  # HQ's durable consumer on every store's stream
# Messages per pull request: JetStream's default cap of unacknowledged messages per consumer, so one
# batch, one PostgreSQL transaction and one acknowledgement carry everything that waits.
FETCH_BATCH = 1000
FETCH_WAIT_S = 0.5  # a pull with nothing waiting expires after this and asks again (lag reads 0)
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
CREATE TABLE IF NOT EXISTS chain_profiles (
  customer_id TEXT PRIMARY KEY, record JSONB NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS chain_erasures (
  customer_id TEXT PRIMARY KEY, erased_at DOUBLE PRECISION NOT NULL, by_store TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chain_sales (
  store TEXT NOT NULL, msg_id TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, amount_cents BIGINT NOT NULL,
  currency TEXT NOT NULL, customer_id TEXT, PRIMARY KEY (store, msg_id)
);
CREATE INDEX IF NOT EXISTS chain_sales_ts ON chain_sales (ts);
CREATE INDEX IF NOT EXISTS chain_events_day ON chain_events (ts) WHERE kind IN ('entry', 'visit', 'fitting');
CREATE INDEX IF NOT EXISTS chain_sales_customer ON chain_sales (customer_id);
CREATE TABLE IF NOT EXISTS chain_footfall (
  store TEXT NOT NULL, hour DOUBLE PRECISION NOT NULL, visitors_in DOUBLE PRECISION NOT NULL,
  visitors_out DOUBLE PRECISION NOT NULL, msg_id TEXT NOT NULL, PRIMARY KEY (store, hour)
);
CREATE TABLE IF NOT EXISTS chain_epcis (
  store TEXT NOT NULL, msg_id TEXT NOT NULL, event_time DOUBLE PRECISION NOT NULL, epcs TEXT[] NOT NULL,
  biz_step TEXT NOT NULL, disposition TEXT, read_point TEXT NOT NULL, biz_location TEXT, event JSONB NOT NULL,
  PRIMARY KEY (store, msg_id)
);
CREATE INDEX IF NOT EXISTS chain_epcis_epcs ON chain_epcis USING GIN (epcs);
CREATE INDEX IF NOT EXISTS chain_epcis_time ON chain_epcis (event_time);
"""
# The per-customer counter each chain kind bumps (gateway.channels.chain_publish.CHAIN_KINDS).
COUNTERS = {"entry": "entries", "visit": "visits", "fitting": "fittings", "follow_up": "follow_ups"}
PROFILE = ("name", "language", "sizes", "brands", "colours", "updated_at")  # gateway.channels.chain_customers.PROFILE
OPERATOR = "hq"  # `by_store` of an erasure made at HQ (`instore hq --erase`)
SALE, FOOTFALL = "sale", "footfall"  # chain kinds with tables of their own (gateway.channels.chain_sales)


class HqConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nats_url: str | list[str] = "nats://127.0.0.1:4222"  # the production cluster: every node's
    replicas: Annotated[int, Field(ge=1, le=5)] = 1  # of HQ's customer bucket: 3 on the production cluster
    password_file: str  # the `hq` line of chain-credentials.toml, alone in a file
    postgres: str  # a libpq connection string
    stores: Annotated[list[Identifier], Field(min_length=1)]
    whatsapp: hq_outbox.HqWhatsApp | None = None  # the chain's number: its one outbox (hq_workers.serve)
    metrics_host: str = "127.0.0.1"  # /metrics and /healthz (instore.hq_metrics)
    metrics_port: int = Field(9464, ge=0, le=65535)  # 0: any free port
    # /dashboard on the metrics port, for whoever sends this token (a file relative to hq.toml); unset: no dashboard
    dashboard_token_file: str | None = None
    timezone: str = "UTC"  # the chain's days on the dashboard (an IANA name)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as Europe/Berlin)") from None
        return v


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


def erasure(ev: Classified) -> tuple[str, float] | None:
    """(customer id, when) of a store's erasure for HQ to apply; None for any other, forged or malformed event."""
    customer, ts = ev.body.get("customer_id"), ev.body.get("ts")
    if ev.kind != "erasure" or ev.forged or not isinstance(customer, str) or not isinstance(ts, int | float):
        return None
    return customer, float(ts)


def _lock_customer(conn, customer_id: object) -> None:  # noqa: ANN001
    """Serialise one customer's erasure with the snapshots and events of them (until the transaction ends)."""
    if isinstance(customer_id, str):
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [customer_id])


def erased_at(conn, customer_id: object) -> float | None:  # noqa: ANN001
    """When the customer was erased at HQ (their tombstone), or None."""
    if not isinstance(customer_id, str):
        return None
    row = conn.execute("SELECT erased_at FROM chain_erasures WHERE customer_id = %s", [customer_id]).fetchone()
    return None if row is None else float(row[0])


INSERT_EVENTS = (
    "INSERT INTO chain_events (store, msg_id, event_id, kind, customer_id, ts, body, forged) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[], %s::float8[], "
    "%s::jsonb[], %s::text[]) ON CONFLICT DO NOTHING RETURNING msg_id"
)
UPSERT_CUSTOMERS = (
    "INSERT INTO chain_customers (customer_id, first_seen, last_seen, last_store, events, entries, visits, "
    "fittings, follow_ups) SELECT c, f, l, %s, n, e, v, fi, fu FROM unnest(%s::text[], %s::float8[], %s::float8[], "
    "%s::int[], %s::int[], %s::int[], %s::int[], %s::int[]) AS t(c, f, l, n, e, v, fi, fu) "
    "ON CONFLICT (customer_id) DO UPDATE SET events = chain_customers.events + excluded.events, "
    "entries = chain_customers.entries + excluded.entries, visits = chain_customers.visits + excluded.visits, "
    "fittings = chain_customers.fittings + excluded.fittings, "
    "follow_ups = chain_customers.follow_ups + excluded.follow_ups, "
    "first_seen = LEAST(chain_customers.first_seen, excluded.first_seen), "
    "last_seen = GREATEST(chain_customers.last_seen, excluded.last_seen), "
    "last_store = CASE WHEN excluded.last_seen >= chain_customers.last_seen "
    "THEN excluded.last_store ELSE chain_customers.last_store END"
)
# Advisory locks in one order (by hash), so two workers' batches never wait on each other in a cycle.
LOCK_CUSTOMERS = ("SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtext(c) AS h "
                  "FROM unnest(%s::text[]) AS c ORDER BY h) AS locks")


def _customer(ev: Classified) -> str | None:
    c = ev.body.get("customer_id")
    return c if isinstance(c, str) else None


def _ts(ev: Classified) -> float | None:
    ts = ev.body.get("ts")
    return float(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) else None


def event_columns(evs: list[Classified]) -> list[list]:
    """The events as `INSERT_EVENTS`'s column arrays."""
    ids = [ev.body.get("id") for ev in evs]
    return [[ev.store for ev in evs], [ev.msg_id for ev in evs],
            [i if isinstance(i, int) and not isinstance(i, bool) else None for i in ids], [ev.kind for ev in evs],
            [_customer(ev) for ev in evs], [_ts(ev) for ev in evs], [json.dumps(ev.body) for ev in evs],
            [ev.forged for ev in evs]]


def customer_totals(evs: list[Classified]) -> list[list]:
    """What newly recorded events of one store add to each customer, as `UPSERT_CUSTOMERS`'s column arrays
    (the same sums, minima and maxima as recording them one by one)."""
    totals: dict[str, list] = {}
    for ev in evs:
        customer, ts = _customer(ev), _ts(ev)
        if ev.forged or customer is None or ts is None:
            continue
        t = totals.setdefault(customer, [ts, ts, 0, 0, 0, 0, 0])
        t[0], t[1], t[2] = min(t[0], ts), max(t[1], ts), t[2] + 1
        if ev.kind in COUNTERS:
            t[3 + list(COUNTERS).index(ev.kind)] += 1
    return [list(totals), *(list(col) for col in zip(*totals.values(), strict=True))] if totals else []


INSERT_SALES = (
    "INSERT INTO chain_sales (store, msg_id, ts, amount_cents, currency, customer_id) SELECT * FROM unnest("
    "%s::text[], %s::text[], %s::float8[], %s::bigint[], %s::text[], %s::text[]) ON CONFLICT DO NOTHING"
)
# An hour is the store's first word on it: a database made anew sends it under a new message id, counted once.
INSERT_FOOTFALL = (
    "INSERT INTO chain_footfall (store, msg_id, hour, visitors_in, visitors_out) SELECT * FROM unnest("
    "%s::text[], %s::text[], %s::float8[], %s::float8[], %s::float8[]) ON CONFLICT DO NOTHING"
)


def _number(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def sale_columns(evs: list[Classified]) -> list[list]:
    """The well-formed sales among newly recorded events as `INSERT_SALES`'s column arrays (none: [])."""
    rows = []
    for ev in evs:
        data, ts = ev.body.get("data"), _ts(ev)
        if ev.kind != SALE or ev.forged or ts is None or not isinstance(data, dict):
            continue
        cents, currency = data.get("amount_cents"), data.get("currency")
        if isinstance(cents, int) and not isinstance(cents, bool) and isinstance(currency, str):
            rows.append((ev.store, ev.msg_id, ts, cents, currency, _customer(ev)))
    return [list(col) for col in zip(*rows, strict=True)]


def footfall_columns(evs: list[Classified]) -> list[list]:
    """The well-formed footfall hours among newly recorded events as `INSERT_FOOTFALL`'s column arrays."""
    rows = []
    for ev in evs:
        data = ev.body.get("data")
        if ev.kind != FOOTFALL or ev.forged or not isinstance(data, dict):
            continue
        hour, vin, vout = _number(data.get("hour")), _number(data.get("in")), _number(data.get("out"))
        if hour is not None and vin is not None and vout is not None:
            rows.append((ev.store, ev.msg_id, hour, vin, vout))
    return [list(col) for col in zip(*rows, strict=True)]


def anonymous(ev: Classified) -> Classified:
    """A sale of a customer erased at HQ: kept for the chain's figures, without who bought."""
    return Classified(ev.store, ev.msg_id, {**ev.body, "customer_id": None}, ev.kind, ev.forged)


def record_batch(conn, evs: list[Classified]) -> list[str]:  # noqa: ANN001 (psycopg.Connection)
    """Insert one store's events and, once each, their effect on the customer records, in ONE transaction:
    per event `recorded`, `duplicate` if already there (or earlier in `evs`), `erased` (not recorded) if it
    names a customer erased at HQ. A crash before the commit leaves nothing; after it, a redelivery is all
    duplicates."""
    customers = sorted({c for ev in evs if (c := _customer(ev)) is not None})
    with conn.transaction():
        conn.execute(LOCK_CUSTOMERS, [customers])
        erased = {r[0] for r in conn.execute("SELECT customer_id FROM chain_erasures WHERE customer_id = ANY(%s)",
                                             [customers])}
        evs = [anonymous(ev) if ev.kind == SALE and _customer(ev) in erased else ev for ev in evs]
        kept = [ev for ev in evs if _customer(ev) not in erased]
        inserted = {r[0] for r in conn.execute(INSERT_EVENTS, event_columns(kept))} if kept else set()
        outcomes, fresh = [], []
        for ev in evs:
            if _customer(ev) in erased:
                outcomes.append("erased")
            elif ev.msg_id in inserted:
                inserted.discard(ev.msg_id)  # a second copy in the same batch is a duplicate
                outcomes.append("recorded")
                fresh.append(ev)
            else:
                outcomes.append("duplicate")
        totals = customer_totals(fresh)
        if totals:
            conn.execute(UPSERT_CUSTOMERS, [evs[0].store, *totals])
        for sql, columns in ((INSERT_SALES, sale_columns(fresh)), (INSERT_FOOTFALL, footfall_columns(fresh))):
            if columns:
                conn.execute(sql, columns)
        hq_epcis.record(conn, fresh)
    return outcomes


def merge_profile(old: dict | None, snapshot: dict, store: str, erased: float | None = None) -> dict | None:
    """HQ's record of a customer after one store's snapshot: the newer profile, the newest consent
    per purpose, every identity key either side knows; `home` is the store that sent it first.
    None if the customer was `erased` at HQ: no snapshot brings them back, however new (its store
    had not heard of the erasure yet)."""
    if erased is not None:
        return None
    old = old or {"consent": {}, "identities": [], "home": store}
    newer = snapshot if (snapshot.get("updated_at") or 0) >= (old.get("updated_at") or 0) else old
    consents: dict[str, dict] = dict(old["consent"])
    for purpose, state in (snapshot.get("consent") or {}).items():
        if purpose not in consents or state["at"] > consents[purpose]["at"]:
            consents[purpose] = state
    merged: dict[str, Any] = {k: newer.get(k) for k in PROFILE}
    merged.update(id=snapshot["id"], home=old["home"], consent=consents)
    known = {i["value"] for i in old["identities"]}
    added = [i for i in snapshot.get("identities") or [] if i["value"] not in known]
    merged["identities"] = [*old["identities"], *added]
    return merged


def bucket_value(record: dict) -> bytes:
    """What the stores get: the record, with identity keys only while recognition is granted."""
    granted = (record["consent"].get("recognition") or {}).get("granted")
    return json.dumps({**record, "identities": record["identities"] if granted else []}).encode()


def save_profile(conn, store: str, snapshot: dict) -> dict | None:  # noqa: ANN001 (psycopg.Connection)
    """Merge one store's snapshot into the customer's record in PostgreSQL; the record as saved
    (None: the customer was erased at HQ)."""
    with conn.transaction():
        _lock_customer(conn, snapshot["id"])
        row = conn.execute("SELECT record FROM chain_profiles WHERE customer_id = %s FOR UPDATE",
                           [snapshot["id"]]).fetchone()
        record = merge_profile(row[0] if row else None, snapshot, store, erased_at(conn, snapshot["id"]))
        if record is None:
            return None
        conn.execute("INSERT INTO chain_profiles (customer_id, record) VALUES (%s, %s) ON CONFLICT (customer_id) "
                     "DO UPDATE SET record = excluded.record, updated_at = now()", [record["id"], json.dumps(record)])
    return record


def withdraw_consent(conn, customer_id: str, purpose: str, now: float) -> dict | None:  # noqa: ANN001
    """Record a withdrawal at HQ; the record as saved, or None if HQ has no such customer."""
    with conn.transaction():
        row = conn.execute("SELECT record FROM chain_profiles WHERE customer_id = %s FOR UPDATE",
                           [customer_id]).fetchone()
        if row is None:
            return None
        record = row[0]
        record["consent"][purpose] = {"granted": False, "at": now}
        conn.execute("UPDATE chain_profiles SET record = %s, updated_at = now() WHERE customer_id = %s",
                     [json.dumps(record), customer_id])
    return record


def erase_customer(conn, customer_id: str, at: float, by: str) -> int:  # noqa: ANN001
    """Delete the customer's record, counters and events at HQ and keep their tombstone (the first
    erasure's time and who asked); rows deleted. Their sales stay in the chain's figures, without their id."""
    with conn.transaction():
        _lock_customer(conn, customer_id)
        conn.execute("UPDATE chain_sales SET customer_id = NULL WHERE customer_id = %s", [customer_id])
        conn.execute("INSERT INTO chain_erasures (customer_id, erased_at, by_store) VALUES (%s, %s, %s) "
                     "ON CONFLICT DO NOTHING", [customer_id, at, by])
        return sum(conn.execute(f"DELETE FROM {table} WHERE customer_id = %s", [customer_id]).rowcount
                   for table in ("chain_profiles", "chain_customers", "chain_events"))


async def _subscribe(js, store: str) -> tuple[Any, CumulativeAcks | None]:  # noqa: ANN001 (JetStreamContext)
    """HQ's durable pull consumer on the store's stream, and its cumulative acknowledgements from
    the consumer's ack floor; None when it acknowledges each message (a consumer an earlier HQ made
    keeps its explicit acks: JetStream cannot change an ack policy)."""
    from nats.js.api import AckPolicy, ConsumerConfig

    sub = await js.pull_subscribe(f"{subject_prefix(store)}.events.>", durable=CONSUMER, stream=stream_name(store),
                                  config=ConsumerConfig(ack_wait=ACK_WAIT_S, ack_policy=AckPolicy.ALL))
    info = await sub.consumer_info()
    if info.config.ack_policy != AckPolicy.ALL:
        return sub, None
    return sub, CumulativeAcks(info.ack_floor.stream_seq if info.ack_floor else 0)


async def acknowledge(js, store: str, msgs: list[Any], acks: CumulativeAcks | None) -> None:  # noqa: ANN001
    """Acknowledge handled messages: each one, or under ack policy `all` the newest one at or below
    the floor of what was handled without a hole (instore.hq_acks). While a hole waits, the stream's
    first sequence is asked once per ack wait."""
    if acks is None:
        for m in msgs:
            await m.ack()
        return
    floor = acks.handled(m.metadata.sequence.stream for m in msgs)
    if acks.holes and time.monotonic() - acks.asked_at >= ACK_WAIT_S:
        acks.asked_at = time.monotonic()
        floor = acks.stream_starts_at((await js.stream_info(stream_name(store))).state.first_seq)
    below = [m for m in msgs if m.metadata.sequence.stream <= floor]
    if below:
        await max(below, key=lambda m: m.metadata.sequence.stream).ack()


async def pull(nats_url: str | list[str], password: str, store: str, stop: asyncio.Event,
               take: Callable[[list[Any]], Awaitable[int]], on_failure: Callable[[Exception], None],
               **options: Any) -> None:
    """HQ's durable pull of one store's stream through the store's domain, with HQ's inbox prefix
    for that store, until `stop`. Each batch goes to `take`, which says how many of its first
    messages it handled; those are acknowledged (the rest come again after ACK_WAIT_S). An empty
    batch: nothing was waiting."""
    from nats.errors import TimeoutError as NatsTimeout

    async with connected(nats_url, stop, on_failure, user=HQ_USER, password=password,
                         inbox_prefix=reply_prefix(store).encode(), **options) as nc:
        if nc is None:
            return
        js = nc.jetstream(domain=store)
        sub, acks = None, None
        while not stop.is_set():
            try:
                if sub is None:
                    sub, acks = await _subscribe(js, store)
                msgs = await sub.fetch(FETCH_BATCH, timeout=FETCH_WAIT_S)
            except (TimeoutError, NatsTimeout):
                await take([])
                continue
            except Exception as exc:  # noqa: BLE001 (the link is down or the stream not yet made)
                on_failure(exc)
                sub = None
                await sleep_unless(stop, RETRY_S)
                continue
            handled = msgs[:await take(msgs)]
            try:
                await acknowledge(js, store, handled, acks)
            except Exception as exc:  # noqa: BLE001 (the link dropped: what was not acknowledged comes again)
                on_failure(exc)


def runs(evs: list[Classified]) -> list[list[Classified]]:
    """The batch cut at each erasure (applied alone, in order): everything between goes in one transaction."""
    out: list[list[Classified]] = []
    for ev in evs:
        if erasure(ev) is not None or not out or erasure(out[-1][0]) is not None:
            out.append([ev])
        else:
            out[-1].append(ev)
    return out


class Hq:
    """Pulls each store's stream into PostgreSQL and keeps the customer bucket; counters (per store in
    `stats`) say what happened."""

    def __init__(self, config: HqConfig, password: str):
        self.config, self.password = config, password
        self.stats = {s: StoreStats() for s in config.stores}
        self.erased = 0  # erasures applied, from stores and from `instore hq --erase`
        self.failures = 0
        self.kv: Any = None  # the customer bucket (nats KeyValue), once `run` has it
        self.db = Postgres(config.postgres)  # for `withdraw` and `erase`
        # ONE connection for the stores' batches (they take turns, a whole batch each), so a chain of
        # hundreds of stores stays within PostgreSQL's max_connections
        self.writes = Postgres(config.postgres)
        self.writing = asyncio.Lock()

    def _total(self, name: str) -> int:
        return sum(getattr(st, name) for st in self.stats.values())

    recorded = property(lambda self: self._total("taken"))
    duplicates = property(lambda self: self._total("duplicates"))
    forged = property(lambda self: self._total("forged"))
    refused = property(lambda self: self._total("refused"))  # events and snapshots of customers erased at HQ

    async def pull_store(self, store: str, stop: asyncio.Event) -> None:
        stats = self.stats[store]

        async def take(msgs: list[Any]) -> int:
            stats.lag = msgs[-1].metadata.num_pending if msgs else 0
            evs = [classify(store, m.subject, (m.headers or {}).get("Nats-Msg-Id"), m.data) for m in msgs]
            done = 0
            for run in runs(evs):
                try:
                    await self._write(store, run)
                except Exception as exc:  # noqa: BLE001 (PostgreSQL away: the rest stays unacknowledged
                    stats.write_errors += 1  # and comes again after ACK_WAIT_S)
                    self._failed(exc)
                    await sleep_unless(stop, RETRY_S)
                    break
                done += len(run)
            return done

        await pull(self.config.nats_url, self.password, store, stop, take, self._failed)

    async def _write(self, store: str, evs: list[Classified]) -> None:
        """`_take` on the process's one connection, a batch at a time; a failure drops the connection."""
        async with self.writing:
            try:
                await self._take(store, self.writes, evs)
            except Exception:
                self.writes.reset()
                raise

    async def _take(self, store: str, db: Postgres, evs: list[Classified]) -> None:
        """One run of `runs`: a store's erasure, or events recorded in one transaction and then their snapshots."""
        gone = erasure(evs[0])
        if gone is not None:  # a store's erasure: as an operator's at HQ (repeats are harmless)
            await self.erase(gone[0], gone[1], by=store, db=db)
            return
        evs = [ev for ev in evs if ev.kind != hq_outbox.REQUEST_KIND]  # HQ's outbox has its own consumer:
        if not evs:  # no number in the CRM
            return
        outcomes = await asyncio.to_thread(lambda: record_batch(db.get(), evs))
        for ev, outcome in zip(evs, outcomes, strict=True):
            self.stats[store].count(outcome, ev)
            if outcome == "erased":
                log.warning("hq: store %s: %s of customer %s ignored: erased at HQ", store, ev.kind,
                            ev.body.get("customer_id"))
            elif ev.forged and outcome == "recorded":
                log.warning("hq: store %s: forged store identity (%s)", store, ev.forged)
            elif outcome == "recorded" and hq_epcis.malformed(ev):
                self.stats[store].epcis_malformed += 1
                log.warning("hq: store %s: EPCIS event %s is no readable ObjectEvent; recorded, not captured",
                            store, ev.msg_id)
        for ev, outcome in zip(evs, outcomes, strict=True):
            snapshot = ev.body.get("data")
            if outcome != "erased" and ev.kind == "customer" and not ev.forged and isinstance(snapshot, dict) \
                    and snapshot.get("id"):
                # also for a repeat: the put may be what failed the first time, and putting again is harmless
                await self._put(db, store, snapshot)

    async def _put(self, db: Postgres, store: str, snapshot: dict) -> None:
        """Save a store's snapshot and put the record in the bucket, unless the customer is erased."""
        saved = await asyncio.to_thread(lambda: save_profile(db.get(), store, snapshot))
        if saved is None:  # erased since the event was recorded
            self.stats[store].refused += 1
            return
        await self.kv.put(saved["id"], bucket_value(saved))
        if await asyncio.to_thread(lambda: erased_at(db.get(), saved["id"])) is not None:
            await self.kv.purge(saved["id"])  # erased between the save and the put: the purge must be last

    async def withdraw(self, customer_id: str, purpose: str, now: float) -> bool:
        """Withdraw a consent at HQ: every store applies it from the bucket. False: no such customer."""
        saved = await asyncio.to_thread(lambda: withdraw_consent(self.db.get(), customer_id, purpose, now))
        if saved is not None:
            await self.kv.put(customer_id, bucket_value(saved))
        return saved is not None

    async def erase(self, customer_id: str, at: float, by: str = OPERATOR, db: Postgres | None = None) -> None:
        """Erase a customer at HQ and, through the bucket's purge, in every store (`db`: the caller's connection)."""
        conn = db or self.db
        await asyncio.to_thread(lambda: erase_customer(conn.get(), customer_id, at, by))
        if self.config.whatsapp is not None:  # the customer's numbers in HQ's WhatsApp outbox
            await asyncio.to_thread(hq_outbox.erase_customer, self.config.whatsapp, customer_id)
        await self.kv.purge(customer_id)
        self.erased += 1
        log.info("hq: customer %s erased (asked by %s)", customer_id, by)

    async def command(self, customer_id: str, *, erase: bool, purpose: str, now: float) -> bool:
        """One withdrawal or erasure from the command line, beside a running `instore hq`."""
        import nats

        nc = await nats.connect(self.config.nats_url, user=HQ_USER, password=self.password, allow_reconnect=False)
        try:
            self.kv = await self._bucket(nc.jetstream(), asyncio.Event())
            if erase:
                await self.erase(customer_id, now)
                return True
            return await self.withdraw(customer_id, purpose, now)
        finally:
            await nc.close()
            self.db.reset()

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        log.warning("hq: %s (retrying)", exc)

    async def make_schema(self, stop: asyncio.Event) -> None:
        """HQ's tables, once PostgreSQL answers. Run before any batch: its `CREATE INDEX` waits for
        every open write on those tables, so a worker making it beside another's batch would stall."""
        schema = Postgres(self.config.postgres)
        while not stop.is_set():
            try:
                await asyncio.to_thread(lambda: schema.get().execute(SCHEMA))
                break
            except Exception as exc:  # noqa: BLE001 (PostgreSQL not up yet)
                self._failed(exc)
                await sleep_unless(stop, RETRY_S)
        schema.reset()

    async def run(self, stop: asyncio.Event, schema: bool = True) -> None:
        """Pull every store until `stop`; `schema=False` where the supervisor made the tables already."""
        if schema:
            await self.make_schema(stop)
        async with connected(self.config.nats_url, stop, self._failed, user=HQ_USER, password=self.password) as nc:
            if nc is None:
                return
            self.kv = await self._bucket(nc.jetstream(), stop)
            await asyncio.gather(*(self.pull_store(s, stop) for s in self.config.stores))
        self.writes.reset()
        self.db.reset()

    async def _bucket(self, js, stop: asyncio.Event) -> Any:  # noqa: ANN001
        """HQ's customer bucket, made on first start; one revision per key (the stores need the latest)."""
        from nats.js.api import KeyValueConfig, StorageType

        while True:
            try:
                return await js.create_key_value(KeyValueConfig(bucket=CUSTOMERS_BUCKET, history=1,
                                                                storage=StorageType.FILE,
                                                                replicas=self.config.replicas))
            except Exception as exc:  # noqa: BLE001 (HQ's NATS starting up; a bucket that exists is returned)
                self._failed(exc)
                if stop.is_set():
                    raise
                await sleep_unless(stop, RETRY_S)


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
