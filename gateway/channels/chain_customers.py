"""The chain's customers, both ways between a store and HQ (docs/chain.md, "Back to the stores").

Up: a store's own consent changes and new identity keys leave as a `customer` chain event, a
snapshot of that customer (`snapshot`, found by `changed_customers` from a cursor, as the event
log is). Down: HQ keeps the chain's record of every customer in the key-value bucket
`chain-customers`; each store's NATS mirrors it into the store's own domain, so it is on the
store's disk through an outage, and `CustomerSync` applies it to the gateway's database
(`apply_record`): a customer enrolled elsewhere is recognised here, a consent withdrawn at HQ
stops recognition here, a key deleted at HQ (an erasure) erases the customer here. Consent rows
written from HQ's record carry the method `chain` and do not travel up again.

An erasure made here goes up as an `erasure` event (the id and the time, nothing else), noted
in `chain_erasures` by the consent hooks until HQ's purge of that key comes back: until then
HQ's record of that customer is not applied here, so it cannot bring them back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlite_utils
from prometheus_client import CollectorRegistry, Gauge

from firmware_config.nats import CUSTOMERS_BUCKET, CUSTOMERS_BYTES, HQ_DOMAIN, customers_stream, subject_prefix
from firmware_config.store import Chain
from gateway.channels.chain_publish import Cursor, Generation, connected, sleep_unless
from gateway.storage import consent
from gateway.storage.customers import Identity, has_consent

log = logging.getLogger("instore.chain")

CHAIN_METHOD = "chain"  # consent rows written from HQ's record: the store did not collect them
PROFILE = ("name", "language", "sizes", "brands", "colours", "updated_at")  # what HQ keeps of a profile
IDENTITY = ("kind", "value", "k", "epoch", "carrier", "adverts_per_s")
_INSERT_IDENTITY = (f"INSERT OR IGNORE INTO identities (customer_id, {', '.join(IDENTITY)}) "
                    f"VALUES (?, {', '.join('?' * len(IDENTITY))})")
FETCH_BATCH = 256  # bucket entries applied per pull
FETCH_WAIT_S = 1.0  # a pull waits this long for a change before asking again
RETRY_S = 1.0  # back-off after the store's NATS failed
CONSENT_CURSOR = "customers:consents"  # chain_cursor rows: the last consent and identity row sent up
IDENTITY_CURSOR = "customers:identities"
ERASURE_CURSOR = "customers:erasures"  # the last chain_erasures row sent up


def _rows(db: sqlite_utils.Database, sql: str, params: list) -> list[dict]:
    cur = db.execute(sql, params)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def snapshot(db: sqlite_utils.Database, customer_id: str) -> dict | None:
    """What HQ learns of a customer: profile, the latest consent per purpose, identity keys.
    Never the WhatsApp number, notes or history: those stay with the store that has them."""
    found = _rows(db, f"SELECT id, {', '.join(PROFILE)} FROM customers WHERE id = ?", [customer_id])
    if not found:
        return None
    record = found[0]
    for k in ("sizes", "brands", "colours"):
        record[k] = json.loads(record[k] or "null")
    record["consent"] = {}
    for purpose in consent.PURPOSES:
        row = db.execute("SELECT granted, at FROM consents WHERE customer_id = ? AND purpose = ? "
                         "ORDER BY at DESC, id DESC LIMIT 1", [customer_id, purpose]).fetchone()
        if row is not None:
            record["consent"][purpose] = {"granted": bool(row[0]), "at": row[1]}
    record["identities"] = _rows(db, f"SELECT {', '.join(IDENTITY)} FROM identities WHERE customer_id = ? "
                                 "ORDER BY id", [customer_id])
    return record


def changed_customers(db: sqlite_utils.Database, after_consent: int, after_identity: int) -> tuple[list[str], int, int]:
    """Customers with a consent row of the store's own or a new identity since the cursors; new cursors."""
    consents = db.execute("SELECT id, customer_id FROM consents WHERE id > ? AND method != ? ORDER BY id",
                          [after_consent, CHAIN_METHOD]).fetchall()
    idents = db.execute("SELECT id, customer_id FROM identities WHERE id > ? ORDER BY id", [after_identity]).fetchall()
    ids = list(dict.fromkeys([r[1] for r in consents] + [r[1] for r in idents]))
    return ids, (consents[-1][0] if consents else after_consent), (idents[-1][0] if idents else after_identity)


@dataclass(frozen=True, slots=True)
class StoreSide:
    """What applying HQ's record needs from the gateway: its database, lock, core and consent hooks."""

    db: sqlite_utils.Database
    lock: threading.RLock
    core: consent.Forgetter
    hooks: consent.ConsentHooks
    recognise: Callable[[Identity], None]


def _ensure_customer(db: sqlite_utils.Database, customer_id: str, record: dict) -> None:
    """A customer new to this store gets HQ's profile; a known one keeps the store's own."""
    db.execute(
        "INSERT OR IGNORE INTO customers (id, name, whatsapp, language, sizes, brands, colours, notes, created_at, "
        "updated_at) VALUES (?, ?, '', ?, ?, ?, ?, '', ?, ?)",
        [customer_id, record.get("name") or "", record.get("language") or "en",
         *(json.dumps(record.get(k) or d) for k, d in (("sizes", {}), ("brands", []), ("colours", []))),
         record.get("updated_at") or 0.0, record.get("updated_at") or 0.0])


def _apply_consents(side: StoreSide, customer_id: str, record: dict) -> None:
    """HQ's consent per purpose, where it is newer than the store's own and differs from it."""
    for purpose, state in (record.get("consent") or {}).items():
        if purpose not in consent.PURPOSES:
            continue
        row = side.db.execute("SELECT granted, at FROM consents WHERE customer_id = ? AND purpose = ? "
                              "ORDER BY at DESC, id DESC LIMIT 1", [customer_id, purpose]).fetchone()
        if row is not None and (bool(row[0]) == state["granted"] or row[1] >= state["at"]):
            continue
        consent.set_consent(side.db, side.core, side.hooks, customer_id, purpose, bool(state["granted"]),
                            now=float(state["at"]), method=CHAIN_METHOD, wording="")


def apply_record(side: StoreSide, customer_id: str, record: dict | None) -> None:
    """Bring the store in line with HQ's record of one customer (None: erased at HQ, which also
    settles an erasure made here). A customer erased here and not yet at HQ is not brought back."""
    with side.lock:
        if record is None:
            consent.erase_customer(side.db, side.core, side.hooks, customer_id)
            side.db.execute("DELETE FROM chain_erasures WHERE erased = ?", [customer_id])
            return
        if side.db.execute("SELECT 1 FROM chain_erasures WHERE erased = ?", [customer_id]).fetchone():
            return
        recognised = has_consent(side.db, customer_id, "recognition")
        with consent.transaction(side.db):
            _ensure_customer(side.db, customer_id, record)
            _apply_consents(side, customer_id, record)
            new = []
            for ident in record.get("identities") or []:
                cur = side.db.execute(_INSERT_IDENTITY, [customer_id, *(ident.get(k) for k in IDENTITY)])
                if cur.rowcount:
                    new.append(Identity(customer_id, *(ident.get(k) for k in IDENTITY)))
        if not has_consent(side.db, customer_id, "recognition"):
            return
        known = [] if recognised else [
            Identity(*r) for r in side.db.execute(
                f"SELECT customer_id, {', '.join(IDENTITY)} FROM identities WHERE customer_id = ?", [customer_id])]
        for ident in {i.value: i for i in known + new}.values():
            side.recognise(ident)


def bucket_entry(subject: str, headers: dict | None, data: bytes) -> tuple[str, dict | None]:
    """(customer id, record or None when deleted or purged) from one message of the bucket's stream."""
    key = subject.removeprefix(f"$KV.{CUSTOMERS_BUCKET}.")
    if (headers or {}).get("KV-Operation") in ("DEL", "PURGE"):
        return key, None
    return key, json.loads(data)


class CustomerSync:
    """Both directions for one store: snapshots up with the event stream, HQ's bucket down."""

    def __init__(self, store_id: str, chain: Chain, side: StoreSide, registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time):
        self.store_id, self.chain, self.side, self.clock = store_id, chain, side, clock
        self.applied_cursor = Cursor(side.db, side.lock, customers_stream())  # the bucket's last applied seq
        self.consent_cursor = Cursor(side.db, side.lock, CONSENT_CURSOR)
        self.identity_cursor = Cursor(side.db, side.lock, IDENTITY_CURSOR)
        self.erasure_cursor = Cursor(side.db, side.lock, ERASURE_CURSOR)
        self.generation = Generation(side.db, side.lock)
        self.applied = 0
        self.sent = 0
        self.erasures_sent = 0
        self.failures = 0
        side.hooks.register_erase(self._note_erasure)
        if registry is not None:  # read at scrape time, as the publisher's
            for name, doc, read in (
                ("applied", "Entries of HQ's customer bucket applied here, since start", lambda: self.applied),
                ("sent", "Customer snapshots sent to HQ, since start", lambda: self.sent),
                ("erasures_sent", "Erasures made here sent to HQ, since start", lambda: self.erasures_sent),
                ("failures", "Failed reads of the bucket or malformed entries, since start", lambda: self.failures),
            ):
                Gauge(f"instore_gateway_chain_customers_{name}", doc, registry=registry).set_function(read)

    async def publish_changes(self, js) -> int:  # noqa: ANN001 (nats.js.JetStreamContext)
        """Send a snapshot of every customer whose consent or keys changed here; cursors after each ack."""
        with self.side.lock:
            ids, consents, idents = changed_customers(self.side.db, self.consent_cursor.get(),
                                                      self.identity_cursor.get())
            records = [r for r in (snapshot(self.side.db, c) for c in ids) if r is not None]
        msg_id = f"{self.store_id}:{self.generation.get()}:customer:{consents}.{idents}"
        for record in records:
            body = {"store": self.store_id, "kind": "customer", "customer_id": record["id"], "data": record}
            await js.publish(f"{subject_prefix(self.store_id)}.events.customer", json.dumps(body).encode(),
                             headers={"Nats-Msg-Id": f"{msg_id}:{record['id']}"})
            self.sent += 1
        self.consent_cursor.set(consents)
        self.identity_cursor.set(idents)
        return len(records)

    def _note_erasure(self, customer_id: str) -> None:
        """The consent hook of an erasure here: note it for HQ (an erasure from HQ clears it again)."""
        with self.side.lock:
            self.side.db.execute("INSERT INTO chain_erasures (erased, at) VALUES (?, ?)", [customer_id, self.clock()])

    async def publish_erasures(self, js) -> int:  # noqa: ANN001 (nats.js.JetStreamContext)
        """Send every erasure made here since the cursor as an `erasure` event; the cursor after each ack."""
        with self.side.lock:
            rows = self.side.db.execute("SELECT seq, erased, at FROM chain_erasures WHERE seq > ? ORDER BY seq",
                                        [self.erasure_cursor.get()]).fetchall()
        for seq, customer_id, at in rows:
            body = {"store": self.store_id, "kind": "erasure", "customer_id": customer_id, "ts": at}
            await js.publish(f"{subject_prefix(self.store_id)}.events.erasure", json.dumps(body).encode(),
                             headers={"Nats-Msg-Id": f"{self.store_id}:{self.generation.get()}:erasure:{seq}"})
            self.erasure_cursor.set(seq)
            self.erasures_sent += 1
        return len(rows)

    async def ensure_mirror(self, js) -> None:  # noqa: ANN001
        """The store's copy of HQ's bucket: a mirror in the store's domain, kept up by its NATS. Made
        once: adding it again is refused for its storage reservation, which the first one holds."""
        from nats.js.api import ExternalStream, StorageType, StreamConfig, StreamSource
        from nats.js.errors import NotFoundError

        try:
            await js.stream_info(customers_stream())
            return
        except NotFoundError:
            pass
        await js.add_stream(StreamConfig(
            name=customers_stream(), storage=StorageType.FILE, max_msgs_per_subject=1, max_bytes=CUSTOMERS_BYTES,
            mirror=StreamSource(name=customers_stream(), external=ExternalStream(api=f"$JS.{HQ_DOMAIN}.API")),
        ))

    async def run(self, stop: asyncio.Event) -> None:
        url = f"nats://{self.chain.nats_host}:{self.chain.nats_port}"
        async with connected(url, stop, self._failed) as nc:
            if nc is not None:
                await self._loop(nc.jetstream(), stop)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        log.warning("chain customers: store NATS unreachable or failing (retrying): %s", exc)

    async def _loop(self, js, stop: asyncio.Event) -> None:  # noqa: ANN001
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        sub = None
        while not stop.is_set():
            try:
                if sub is None:
                    await self.ensure_mirror(js)
                    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, ack_policy=AckPolicy.NONE,
                                            opt_start_seq=self.applied_cursor.get() + 1, inactive_threshold=60.0)
                    sub = await js.pull_subscribe(f"$KV.{CUSTOMERS_BUCKET}.>", stream=customers_stream(),
                                                  config=config)
                await self.publish_changes(js)
                await self.publish_erasures(js)
                msgs = await sub.fetch(FETCH_BATCH, timeout=FETCH_WAIT_S)
            except (TimeoutError, NatsTimeout):
                continue
            except Exception as exc:  # noqa: BLE001 (the store's NATS restarting: start over from the cursor)
                self._failed(exc)
                sub = None
                await sleep_unless(stop, RETRY_S)
                continue
            for m in msgs:
                self._take(m.subject, m.headers, m.data, m.metadata.sequence.stream)

    def _take(self, subject: str, headers: dict | None, data: bytes, seq: int) -> None:
        try:
            customer_id, record = bucket_entry(subject, headers, data)
            apply_record(self.side, customer_id, record)
            self.applied += 1
        except (ValueError, KeyError, TypeError) as exc:  # a malformed entry: skipped, never the ones after it
            self._failed(exc)
        self.applied_cursor.set(seq)
