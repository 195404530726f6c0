"""The store's EPCIS events leave through the chain and are captured at HQ (docs/chain.md, "EPCIS capture"):
exactly the store's own export, once each (also after a publisher restart), answered per EPC and store
as an EPCIS 2.0 document, a malformed event counted without stopping the feed. Real NATS and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import nats
import psycopg
import pytest
from jsonschema import Draft7Validator, FormatChecker

from firmware_config.nats import HQ_USER, stream_name
from gateway.channels import chain_epcis
from gateway.channels.chain_epcis import EPCIS_CURSOR, EpcisFeed, epcis_messages, whole_times
from gateway.channels.chain_publish import ChainPublisher, Cursor, PublisherThread
from gateway.events import EventLog
from gateway.storage.db import open_db
from gateway.storage.epcis import LogRow, epc_uri, epcis_document
from instore.hq import Classified, Hq, HqConfig, classify
from instore.hq_epcis import EpcisQuery, epcis_row, malformed, query_epc
from instore.hq_metrics import MetricsServer
from tests.chain_env import Chain, running_chain
from tests.test_chain_customers import Loop, _wait_for
from tests.test_rfid_epcis import EPCIS_ASSETS

STORES = ["a", "b"]
T0 = 1_714_557_600.0  # 2024-05-01 10:00:00 UTC
TOKEN = "epcis-token"


def sgtin(serial: int) -> str:
    """An SGTIN-96 in hex (the test assets' GTIN), with its serial."""
    return f"3034f7e0c80008c0{serial:08x}"


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = json.loads((EPCIS_ASSETS / "EPCIS-JSON-Schema.json").read_text(encoding="utf-8"))
    return Draft7Validator(schema, format_checker=FormatChecker())


OBSERVED = [
    LogRow(1, T0, "item_shown", sgtin(1), "fr1", "fitting_room"),
    LogRow(2, T0, "item_shown", sgtin(2), "fr1", "fitting_room"),
    LogRow(3, T0 + 5, "item_gone", sgtin(1), "fr1", "fitting_room"),
    LogRow(4, T0 + 9, "returned", sgtin(1), "shelf-w1", "shelf"),
    LogRow(5, T0 + 9, "item_shown", "e2801160600002", "fr2", "fitting_room"),  # no pure-identity URI
]


def test_the_messages_carry_the_events_the_store_exports_and_nothing_else() -> None:
    messages, skipped = epcis_messages("a", "g1", OBSERVED, "Europe/Berlin")
    export = epcis_document(OBSERVED, store="a", timezone="Europe/Berlin", created=0)["epcisBody"]["eventList"]
    bodies = [json.loads(payload) for _, _, payload in messages]
    assert [b["data"] for b in bodies] == export and len(export) == 2 and skipped == 1
    assert {s for s, _, _ in messages} == {"chain.a.events.epcis"}
    assert [m for _, m, _ in messages] == [f"a:g1:epcis:{e['eventID'].removeprefix('urn:uuid:')}" for e in export]
    assert [(b["ts"], b["customer_id"], b["kind"]) for b in bodies] == [(T0, None, "epcis"), (T0 + 9, None, "epcis")]
    for subject, msg_id, payload in messages:
        ev = classify("a", subject, msg_id, payload)
        assert ev.forged is None and epcis_row(ev) is not None and not malformed(ev)


def test_a_round_never_splits_the_decisions_of_one_time() -> None:
    rows = [LogRow(i, t, "item_shown", sgtin(i), "fr1", "fitting_room") for i, t in enumerate([1.0, 1.0, 2.0, 2.0])]
    assert whole_times(rows, full=True) == rows[:2]  # more of t=2 may lie past the limit
    assert whole_times(rows, full=False) == rows
    assert whole_times(rows[2:], full=True) == rows[2:]  # one time alone: sent, or the feed would stall


def _classified(data: object, store: str = "a") -> Classified:
    body = {"store": store, "generation": "g", "kind": "epcis", "ts": T0, "customer_id": None, "data": data}
    return classify("a", "chain.a.events.epcis", "a:g:epcis:x", json.dumps(body).encode())


def test_malformed_and_forged_epcis_events_stay_out_of_the_capture() -> None:
    [(_, _, payload)], _ = epcis_messages("a", "g", OBSERVED[:1], "UTC")
    good = json.loads(payload)["data"]
    row = epcis_row(_classified(good))
    assert row is not None and row[2:8] == (T0, [epc_uri(sgtin(1))], "sensor_reporting", "sellable_accessible",
                                            "urn:instore:a:place:fr1", "urn:instore:a:store")
    for bad in (None, {**good, "type": "AggregationEvent"}, {**good, "epcList": []},
                {**good, "epcList": [sgtin(1)]}, {**good, "eventTime": "yesterday"},
                {**good, "eventTime": "2024-05-01T10:00:00"}, {**good, "readPoint": None},
                {**good, "bizStep": 3}):
        assert epcis_row(_classified(bad)) is None and malformed(_classified(bad)), bad
    forged = _classified(good, store="b")
    assert forged.forged and epcis_row(forged) is None and not malformed(forged)  # counted as forged instead


def test_the_query_names_a_garment_as_a_uri_or_in_hex() -> None:
    assert query_epc(sgtin(1)) == epc_uri(sgtin(1)) == query_epc(epc_uri(sgtin(1)))
    assert query_epc(None) is None
    with pytest.raises(ValueError, match="epc: 'zz'"):
        query_epc("zz")


def test_the_feed_reads_after_its_cursor_in_whole_instants_and_a_restored_database_sends_nothing_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = EventLog(open_db(tmp_path / "a.db"), threading.RLock())
    monkeypatch.setattr(chain_epcis, "BATCH", 2)
    _observe(events, (T0, "item_shown", sgtin(1), "fr1", "fitting_room"),
             (T0 + 1, "item_shown", sgtin(2), "shelf-w1", "shelf"),
             (T0 + 1, "item_shown", sgtin(3), "shelf-w1", "shelf"),
             (T0 + 2, "item_shown", "e2801160600002", "fr1", "fitting_room"))
    feed = EpcisFeed("a", events.db, events.lock, "UTC")

    def send() -> list[list[str]]:  # as publish_pending, without NATS: the EPC lists of one round
        last, messages = feed.pending()
        feed.cursor.set(last or feed.cursor.get())
        return [json.loads(payload)["data"]["epcList"] for _, _, payload in messages]

    assert send() == [[epc_uri(sgtin(1))]]  # rows 1-2 read, row 2's instant may go on past the limit
    assert send() == [[epc_uri(sgtin(2)), epc_uri(sgtin(3))]]  # one event, not split over two rounds
    assert send() == [] and feed.cursor.get() == 4 and feed.skipped == 1  # not an SGTIN: not sent
    assert feed.pending() == (0, [])
    events.db.execute("UPDATE chain_cursor SET last_id = 0 WHERE stream = ?", [EPCIS_CURSOR])  # the backup's
    restored = EpcisFeed("a", events.db, events.lock, "UTC")
    restored.restored()
    _observe(events, (T0 + 3, "returned", sgtin(1), "shelf-w1", "shelf"))
    last, messages = restored.pending()
    assert last == 5 and len(messages) == 1  # only what came after the restore


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    with running_chain(tmp_path_factory.mktemp("chain"), STORES) as c:
        yield c


def _observe(events: EventLog, *rows: tuple[float, str, str, str, str]) -> None:
    """Decisions of the item engine, as gateway.ingest.rfid_service logs them: (t, kind, epc, place, kind)."""
    with events.lock:
        events.db.table("rfid_log").insert_all([{"t": t, "kind": k, "epc": e, "gtin": None, "place": p,
                                                 "place_kind": pk, "session": None} for t, k, e, p, pk in rows])


def _export(events: EventLog, store: str) -> list[dict]:
    """What the store's own /epcis/events exports (gateway.web.routes_rfid), oldest first."""
    with events.lock:
        rows = [LogRow(*r) for r in events.db.execute(
            "SELECT id, t, kind, epc, place, place_kind FROM rfid_log ORDER BY t, id")]
    return epcis_document(rows, store=store, timezone="UTC", created=0)["epcisBody"]["eventList"]


def _captured(dsn: str, store: str) -> list[dict]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT event FROM chain_epcis WHERE store = %s ORDER BY event_time, "
                                           "msg_id", [store])]


def _count(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute(sql).fetchone()[0])


async def _publish(port: int, subject: str, msg_id: str, body: dict) -> None:
    """A message on the store's own NATS, as a faulty gateway would send it."""
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        await nc.jetstream().publish(subject, json.dumps(body).encode(), headers={"Nats-Msg-Id": msg_id})
    finally:
        await nc.close()


def _publisher(chain: Chain, sid: str, events: EventLog) -> PublisherThread:
    store = chain.stores[sid]
    assert store.chain is not None
    thread = PublisherThread(ChainPublisher(sid, store.chain, events, Cursor(events.db, events.lock, stream_name(sid)),
                                            timezone="UTC"))
    thread.start()
    return thread


def test_epcis_events_reach_hq_once_and_answer_where_a_garment_was_seen(chain: Chain, tmp_path: Path,
                                                                        validator: Draft7Validator) -> None:
    logs = {s: EventLog(open_db(tmp_path / f"{s}.db"), threading.RLock()) for s in STORES}
    _observe(logs["a"], (T0, "item_shown", sgtin(1), "fr1", "fitting_room"),
             (T0 + 10, "returned", sgtin(1), "shelf-w1", "shelf"),
             (T0 + 10, "item_shown", sgtin(2), "shelf-w1", "shelf"),
             (T0 + 20, "item_gone", sgtin(2), "shelf-w1", "shelf"))
    _observe(logs["b"], (T0 + 100, "item_shown", sgtin(1), "shelf-3", "shelf"),  # the garment went to store b
             (T0 + 110, "item_shown", sgtin(3), "fr1", "fitting_room"))
    loop = Loop()
    hq = Hq(HqConfig(nats_url=f"nats://127.0.0.1:{chain.hq_port}", password_file="unused", postgres=chain.dsn,
                     stores=STORES), chain.passwords[HQ_USER])
    stop_hq = loop.start(hq.run)
    threads = [_publisher(chain, s, logs[s]) for s in STORES]
    try:
        _wait_for(lambda: _count(chain.dsn, "SELECT count(*) FROM chain_epcis") == 4)
        for s in STORES:
            assert _captured(chain.dsn, s) == _export(logs[s], s)

        # a's gateway restarts having lost its cursor (killed between JetStream's ack and the cursor write),
        # after a faulty message and a forged one, then observes the garment back in a's fitting room
        threads[0].stop()
        with logs["a"].lock:
            logs["a"].db.execute("UPDATE chain_cursor SET last_id = 0 WHERE stream = ?", [EPCIS_CURSOR])
        port = chain.stores["a"].chain.nats_port  # type: ignore[union-attr]  # a chain store
        envelope = {"store": "a", "generation": "g", "kind": "epcis", "ts": T0, "customer_id": None}
        loop.call(_publish(port, "chain.a.events.epcis", "a:g:epcis:broken", {**envelope, "data": {"epcList": 1}}))
        loop.call(_publish(port, "chain.a.events.epcis", "a:g:epcis:forged",
                           {**envelope, "store": "b", "data": _export(logs["a"], "a")[0]}))
        _observe(logs["a"], (T0 + 200, "item_shown", sgtin(1), "fr2", "fitting_room"))
        threads[0] = _publisher(chain, "a", logs["a"])
        _wait_for(lambda: _count(chain.dsn, "SELECT count(*) FROM chain_epcis") == 5)
        time.sleep(0.5)  # anything sent twice would land now
        assert _captured(chain.dsn, "a") == _export(logs["a"], "a") and len(_export(logs["a"], "a")) == 3
        assert _count(chain.dsn, "SELECT count(*) FROM chain_events WHERE kind = 'epcis'") == 7  # 5, broken, forged
        assert (hq.stats["a"].epcis_malformed, hq.stats["a"].forged, hq.stats["b"].epcis_malformed) == (1, 1, 0)
    finally:
        for thread in threads:
            thread.stop()
        stop_hq()
        loop.close()

    query = EpcisQuery(chain.dsn, STORES, TOKEN, ZoneInfo("UTC"), lambda: T0 + 1000)
    auth = {"authorization": f"Bearer {TOKEN}"}

    def ask(q: str) -> list[tuple[str, str]]:
        status, body, kind, _ = query(f"/epcis/events?{q}", auth)
        assert (status, kind) == (200, "application/ld+json"), body
        doc = json.loads(body)
        assert [e.message for e in validator.iter_errors(doc)] == []
        return [(e["bizLocation"]["id"], e["readPoint"]["id"].rsplit(":", 1)[1]) for e in doc["epcisBody"]["eventList"]]

    journey = [("urn:instore:a:store", "fr1"), ("urn:instore:a:store", "shelf-w1"), ("urn:instore:b:store", "shelf-3"),
               ("urn:instore:a:store", "fr2")]
    assert ask(f"epc={sgtin(1)}") == ask(f"epc={epc_uri(sgtin(1))}") == journey
    assert ask(f"epc={sgtin(1)}&store=b") == [("urn:instore:b:store", "shelf-3")]
    assert ask(f"epc={sgtin(1)}&from={T0 + 150}") == [("urn:instore:a:store", "fr2")]
    assert ask(f"epc={sgtin(1)}&from=2024-05-01T10:00:05Z&until=2024-05-01T10:01:40") == journey[1:2]
    assert ask("store=b") == [("urn:instore:b:store", "shelf-3"), ("urn:instore:b:store", "fr1")]
    assert ask(f"epc={sgtin(9)}") == []
    assert query("/epcis/events", {})[0] == 401
    for bad in ("epc=zz", "store=c", "from=soon"):
        status, body, _, _ = query(f"/epcis/events?{bad}", auth)
        assert status == 400 and bad.split("=")[0].encode() in body

    with MetricsServer("127.0.0.1", 0, dict, lambda: {"ok": True}, epcis=query) as server:
        r = httpx.get(f"http://127.0.0.1:{server.port}/epcis/events?epc={sgtin(3)}", headers=auth, timeout=10)
        assert r.status_code == 200 and len(r.json()["epcisBody"]["eventList"]) == 1
        assert httpx.get(f"http://127.0.0.1:{server.port}/dashboard", timeout=10).status_code == 404
