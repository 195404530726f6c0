"""Store -> HQ over REAL NATS leaf nodes (TLS, generated configs) into a REAL PostgreSQL.

Two stores (a, b) each run their generated leaf config; HQ runs its generated config; the
gateway side is the real event log and `ChainPublisher`, HQ the real `instore hq` loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path

import nats
import psycopg
import pytest

from firmware_config.nats import HQ_USER, reply_prefix, store_user
from gateway.channels.chain_publish import ChainPublisher, Cursor, Generation, PublisherThread
from gateway.events import EventLog
from gateway.service import build_gateway
from gateway.storage.db import open_db
from instore.hq import Hq, HqConfig
from tests.chain_env import Chain, running_chain

CUT_S = 5.0  # the link cut of the first slice
ARRIVE_S = 20.0  # generous bound for events to reach HQ after the link is back


class Background:
    """An async task in its own thread and event loop (as the gateway and HQ run them)."""

    def __init__(self, make: Callable[[asyncio.Event], Coroutine]):
        self._stopping = threading.Event()

        def main() -> None:
            async def go() -> None:
                stop = asyncio.Event()
                task = asyncio.create_task(make(stop))
                while not self._stopping.is_set() and not task.done():
                    await asyncio.sleep(0.05)
                stop.set()
                await task

            asyncio.run(go())

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.thread.join(15)
        assert not self.thread.is_alive()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    with running_chain(tmp_path_factory.mktemp("chain"), ["a", "b"]) as c:
        yield c


def _publisher(chain: Chain, sid: str, db_path: Path) -> tuple[ChainPublisher, PublisherThread]:
    db = open_db(db_path)
    lock = threading.RLock()
    store = chain.stores[sid]
    assert store.chain is not None
    pub = ChainPublisher(sid, store.chain, EventLog(db, lock), Cursor(db, lock, f"chain-{sid}"))
    thread = PublisherThread(pub)
    thread.start()
    return pub, thread


def _hq(chain: Chain, stores: list[str]) -> tuple[Hq, Background]:
    cfg = HqConfig(nats_url=f"nats://127.0.0.1:{chain.hq_port}", password_file="unused", postgres=chain.dsn,
                   stores=stores)
    hq = Hq(cfg, chain.passwords[HQ_USER])
    return hq, Background(hq.run)


def _rows(chain: Chain, sql: str, params: list | None = None) -> list[tuple]:
    with psycopg.connect(chain.dsn) as conn:
        return conn.execute(sql, params or []).fetchall()


def _wait_for(what: Callable[[], bool], timeout_s: float = ARRIVE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _gateway_db(db_path: Path, first_id: int) -> EventLog:
    """A gateway database whose event ids start at `first_id`: the tests share each store's
    stream, and a store's event ids never restart over its life (docs/chain.md)."""
    db = open_db(db_path)
    db.execute("INSERT INTO events (id, ts, kind, customer_id, data) VALUES (?, 0, 'note', NULL, '{}')",
               [first_id - 1])
    return EventLog(db, threading.RLock())


def _entry(log: EventLog, customer: str | None, t: float) -> int:
    return log.append(t, "entered", customer, {"zone": "entrance", "customer": {"name": customer}}).id


def test_store_event_reaches_the_chain_crm_exactly_once_and_nothing_else_leaves(chain: Chain, tmp_path: Path) -> None:
    db_path = tmp_path / "gw.db"
    log = _gateway_db(db_path, 1000)
    entry = _entry(log, "c-1", 100.0)
    _entry(log, None, 101.0)  # an anonymous device: stays in the store
    log.append(102.0, "note", "c-1", {"text": "likes linen"})  # staff note: stays
    log.append(103.0, "task", "c-1", {"kind": "followup", "title": "call back"})
    pub, pub_bg = _publisher(chain, "a", db_path)
    hq, hq_bg = _hq(chain, ["a"])
    try:
        _wait_for(lambda: bool(_rows(chain, "SELECT 1 FROM chain_customers WHERE customer_id = 'c-1' "
                                     "AND follow_ups = 1")))
        time.sleep(1.0)  # anything extra (a duplicate, a skipped kind) would arrive by now
    finally:
        pub_bg.stop()
        hq_bg.stop()
    rows = _rows(chain, "SELECT msg_id, kind, customer_id FROM chain_events WHERE store = 'a' ORDER BY event_id")
    gen = Generation(log.db, log.lock).get()
    assert rows == [(f"a:{gen}:{entry}", "entry", "c-1"), (f"a:{gen}:{entry + 3}", "follow_up", "c-1")]
    assert _rows(chain, "SELECT entries, follow_ups, events, last_store FROM chain_customers "
                 "WHERE customer_id = 'c-1'") == [(1, 1, 2, "a")]
    assert (pub.published, pub.skipped, hq.recorded, hq.duplicates, hq.forged) == (2, 3, 2, 0, 0)


def test_gateway_with_a_chain_section_publishes_while_it_serves(chain: Chain, tmp_path: Path, serve) -> None:  # noqa: ANN001
    _gateway_db(tmp_path / "gw.db", 2000)
    app, core = build_gateway(chain.stores["a"], db_path=tmp_path / "gw.db")
    hq, hq_bg = _hq(chain, ["a"])
    try:
        serve(app)
        core.events.append(500.0, "entered", "served-1", {"zone": "entrance"})
        _wait_for(lambda: bool(_rows(chain, "SELECT 1 FROM chain_customers WHERE customer_id = 'served-1'")))
    finally:
        hq_bg.stop()
    assert _rows(chain, "SELECT store, kind FROM chain_events WHERE customer_id = 'served-1'") == [("a", "entry")]
    metrics = core.metrics.render().decode()
    assert "instore_gateway_chain_published 1.0" in metrics
    assert "instore_gateway_chain_skipped 1.0" in metrics  # the seed row (a staff note)
    assert "instore_gateway_chain_backlog 0.0" in metrics
    assert "instore_gateway_chain_customers_failures 0.0" in metrics  # the customer bucket: mirrored, read


def test_cut_with_gateway_restart_and_store_server_kill_loses_and_duplicates_nothing(
    chain: Chain, tmp_path: Path
) -> None:
    db_path = tmp_path / "gw.db"
    log = _gateway_db(db_path, 3000)
    ids = [_entry(log, f"cut-{i}", 200.0 + i) for i in range(5)]
    pub, pub_bg = _publisher(chain, "b", db_path)
    hq, hq_bg = _hq(chain, ["b"])
    count = "SELECT count(*), count(DISTINCT msg_id) FROM chain_events WHERE store = 'b'"
    try:
        _wait_for(lambda: _rows(chain, count)[0][0] == len(ids))
        chain.hq.stop()  # the WAN link is down: the store keeps its events on its own disk
        cut_started = time.monotonic()
        ids += [_entry(log, f"cut-{i}", 300.0 + i) for i in range(5, 25)]
        time.sleep(1.0)
        pub_bg.stop()  # the gateway restarts mid-cut...
        before_restart = pub.published
        ids += [_entry(log, f"cut-{i}", 300.0 + i) for i in range(25, 40)]
        pub, pub_bg = _publisher(chain, "b", db_path)  # ...and resumes from its cursor
        ids += [_entry(log, f"cut-{i}", 300.0 + i) for i in range(40, 45)]
        _wait_for(lambda: before_restart + pub.published == len(ids))
        chain.leafs["b"].stop(kill=True)  # the store's NATS killed mid-cut: synced writes survive it
        ids += [_entry(log, f"cut-{i}", 300.0 + i) for i in range(45, 50)]
        chain.leafs["b"].start()
        time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_started)))
        chain.hq.start()
        _wait_for(lambda: _rows(chain, count)[0][0] >= len(ids))
        time.sleep(1.0)
    finally:
        pub_bg.stop()
        hq_bg.stop()
        for server in (chain.hq, chain.leafs["b"]):
            if server.proc is None:
                server.start()
    got = _rows(chain, "SELECT event_id FROM chain_events WHERE store = 'b' ORDER BY event_id")
    assert [r[0] for r in got] == ids  # every event once, none twice
    assert before_restart + pub.published == len(ids)  # the cursor: nothing published twice, even to the store
    assert _rows(chain, "SELECT count(*) FROM chain_customers WHERE customer_id LIKE %s", ["cut-%"]) == [(50,)]


def test_a_gateway_database_restored_from_an_older_backup_gets_a_new_generation(chain: Chain, tmp_path: Path) -> None:
    log = _gateway_db(tmp_path / "gw.db", 5000)
    before = [_entry(log, f"restore-{i}", 600.0 + i) for i in range(2)]
    backup = tmp_path / "backup.db"
    log.db.conn.execute("VACUUM INTO ?", [str(backup)])  # the nightly backup
    _, pub = _publisher(chain, "a", tmp_path / "gw.db")
    hq, hq_bg = _hq(chain, ["a"])
    count = "SELECT count(*) FROM chain_events WHERE customer_id LIKE 'restore-%%'"
    try:
        after = [_entry(log, f"restore-{i}", 610.0 + i) for i in range(2, 5)]
        _wait_for(lambda: _rows(chain, count) == [(5,)])
        pub.stop()  # the gateway's disk dies; its database comes back from the backup...
        restored = EventLog(open_db(backup), threading.RLock())
        old_generation = Generation(restored.db, restored.lock).get()
        _, pub = _publisher(chain, "a", backup)
        reused = [_entry(restored, f"restore-{i}", 700.0 + i) for i in range(5, 7)]  # ...and numbers events again
        _wait_for(lambda: _rows(chain, count) == [(7,)])
        time.sleep(1.0)  # a repeat of the two events in the backup would arrive by now
    finally:
        pub.stop()
        hq_bg.stop()
    assert reused == after[:2]  # the same event ids as events HQ already holds
    assert Generation(restored.db, restored.lock).get() != old_generation
    got = _rows(chain, "SELECT event_id, customer_id FROM chain_events WHERE customer_id LIKE 'restore-%%' "
                "ORDER BY ts")
    assert got == [(i, f"restore-{n}") for n, i in enumerate(before + after + reused)]
    assert hq.duplicates == 0


async def _violations(chain: Chain, user: str, attempts: Callable[[nats.NATS], Coroutine]) -> list[str]:
    errors: list[str] = []

    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    nc = await nats.connect(f"nats://127.0.0.1:{chain.hq_port}", user=user, password=chain.passwords[user],
                            error_cb=on_error, allow_reconnect=False)
    try:
        await attempts(nc)
        await nc.flush()
        await asyncio.sleep(0.3)
    finally:
        await nc.close()
    return errors


def test_a_store_cannot_write_or_read_another_store_or_hq_inboxes(chain: Chain) -> None:
    async def cross(nc: nats.NATS) -> None:
        await nc.publish("chain.b.events.entry", b"{}")
        await nc.publish("$JS.b.API.STREAM.INFO.chain-b", b"")
        await nc.publish("$KV.chain-customers.c-1", b"{}")  # the customer bucket: HQ writes it, stores mirror it
        await nc.publish("$JS.hq.API.STREAM.PURGE.KV_chain-customers", b"")
        await nc.publish("$JS.hq.API.CONSUMER.DELETE.KV_chain-customers.mirror-of-b", b"")
        for subject in ("chain.b.>", f"{reply_prefix('b')}.>", "_INBOX.>", "$JS.b.API.>", "$JS.ACK.chain-b.>", ">"):
            await nc.subscribe(subject)

    async def own(nc: nats.NATS) -> None:
        await nc.publish("chain.a.events.entry", b"{}")
        await nc.subscribe("$JS.a.API.>")

    errors = asyncio.run(_violations(chain, store_user("a"), cross))
    assert errors == [
        'nats: permissions violation for publish to "chain.b.events.entry"',
        'nats: permissions violation for publish to "$js.b.api.stream.info.chain-b"',
        'nats: permissions violation for publish to "$kv.chain-customers.c-1"',
        # HQ names its own domain's API without the domain in the refusal
        'nats: permissions violation for publish to "$js.api.stream.purge.kv_chain-customers"',
        'nats: permissions violation for publish to "$js.api.consumer.delete.kv_chain-customers.mirror-of-b"',
        'nats: permissions violation for subscription to "chain.b.>"',
        'nats: permissions violation for subscription to "_hq.b.>"',
        'nats: permissions violation for subscription to "_inbox.>"',
        'nats: permissions violation for subscription to "$js.b.api.>"',
        'nats: permissions violation for subscription to "$js.ack.chain-b.>"',
        'nats: permissions violation for subscription to ">"',
    ]
    assert asyncio.run(_violations(chain, store_user("a"), own)) == []


def test_forged_store_id_is_flagged_counted_and_kept_out_of_the_customer_record(chain: Chain) -> None:
    async def forge() -> None:
        nc = await nats.connect(f"nats://127.0.0.1:{chain.leafs['a'].port}")
        body = {"store": "b", "id": 990001, "ts": 1.0, "kind": "entry", "customer_id": "victim", "data": {}}
        await nc.jetstream().publish("chain.a.events.entry", json.dumps(body).encode(),
                                     headers={"Nats-Msg-Id": "b:990001"})
        await nc.close()

    asyncio.run(forge())
    hq, hq_bg = _hq(chain, ["a"])
    try:
        _wait_for(lambda: hq.forged >= 1)
    finally:
        hq_bg.stop()
    rows = _rows(chain, "SELECT store, forged FROM chain_events WHERE event_id = 990001")
    assert rows == [("a", "message id 'b:990001'; payload store 'b'")]
    assert _rows(chain, "SELECT 1 FROM chain_customers WHERE customer_id = 'victim'") == []
    assert _rows(chain, "SELECT 1 FROM chain_events WHERE store = 'b' AND event_id = 990001") == []


def test_hq_rides_out_its_postgres_connection_dropping(chain: Chain, tmp_path: Path) -> None:
    log = _gateway_db(tmp_path / "gw.db", 4000)
    _, pub = _publisher(chain, "a", tmp_path / "gw.db")
    hq, hq_bg = _hq(chain, ["a"])
    seen = "SELECT count(*) FROM chain_events WHERE customer_id = %s"
    try:
        _entry(log, "pg-1", 1.0)
        _wait_for(lambda: _rows(chain, seen, ["pg-1"]) == [(1,)])
        killed = _rows(chain, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'")
        assert killed  # HQ's connection was cut (as by a PostgreSQL restart)
        _entry(log, "pg-2", 2.0)
        _wait_for(lambda: _rows(chain, seen, ["pg-2"]) == [(1,)])
    finally:
        pub.stop()
        hq_bg.stop()
    assert hq.failures >= 1
    assert _rows(chain, seen, ["pg-1"]) == [(1,)]
