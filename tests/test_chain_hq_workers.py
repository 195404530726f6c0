"""`instore hq --workers 2` on REAL NATS leaf nodes and a REAL PostgreSQL: the stores split over the
workers, a worker SIGKILLed in the middle of a batch writes nothing twice and loses nothing, and
/metrics and /healthz say what happened."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import nats
import psycopg
import pytest
from nats.js.api import StorageType, StreamConfig
from prometheus_client.parser import text_string_to_metric_families

from firmware_config.nats import HQ_USER, stream_name, subject_prefix
from instore.broker import free_port
from instore.hq import Classified, classify, customer_totals, runs
from instore.hq_workers import shares, worker_of
from tests.chain_env import Chain, running_chain

STORES = ["a", "d"]  # worker 1 and worker 0 of two (crc32)
EVENTS = {"a": 2000, "d": 500}
CUSTOMERS = 20  # per store, so every batch touches many customer records
WAIT_S = 40.0


def test_stores_go_to_one_worker_each_by_a_stable_hash() -> None:
    stores = [f"s{i:03d}" for i in range(100)]
    split = shares(stores, 4)
    assert sorted(s for share in split for s in share) == stores  # each store exactly once
    assert all(len(share) > 10 for share in split)  # no worker left idle or swamped
    assert worker_of("s042", 4) == worker_of("s042", 4) == [i for i, sh in enumerate(split) if "s042" in sh][0]
    assert shares(["a", "d"], 2) == [["d"], ["a"]]


def test_a_batch_is_cut_at_each_erasure_and_sums_each_customers_events_as_one_by_one() -> None:
    def ev(n: int, kind: str, customer: str, ts: float) -> Classified:
        body = {"store": "a", "id": n, "kind": kind, "customer_id": customer, "ts": ts}
        return classify("a", f"chain.a.events.{kind}", f"a:1:{n}", json.dumps(body).encode())

    batch = [ev(1, "entry", "c1", 5.0), ev(2, "visit", "c1", 3.0), ev(3, "erasure", "c2", 4.0),
             ev(4, "entry", "c2", 6.0), ev(5, "fitting", "c3", 7.0)]
    assert [[e.msg_id for e in run] for run in runs(batch)] == [["a:1:1", "a:1:2"], ["a:1:3"], ["a:1:4", "a:1:5"]]
    forged = classify("a", "chain.a.events.entry", "b:1:9", b'{"store": "b", "customer_id": "c1", "ts": 9.0}')
    # columns: customer, first seen, last seen, events, entries, visits, fittings, follow-ups
    assert customer_totals([*batch[:2], forged, *batch[3:]]) == [
        ["c1", "c2", "c3"], [3.0, 6.0, 7.0], [5.0, 6.0, 7.0], [2, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    with running_chain(tmp_path_factory.mktemp("chain"), STORES) as c:
        yield c


def _wait_for(what: Callable[[], object], timeout_s: float = WAIT_S, why: Callable[[], object] = str) -> None:
    deadline = time.monotonic() + timeout_s
    while not what():
        assert time.monotonic() < deadline, f"timed out {why()}"
        time.sleep(0.2)


async def _publish(chain: Chain) -> None:
    """Each store's stream with its events, a forged one and one of a customer erased at HQ (all in d)."""
    for sid in STORES:
        nc = await nats.connect(f"nats://127.0.0.1:{chain.leafs[sid].port}")
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=stream_name(sid), subjects=[f"{subject_prefix(sid)}.events.>"],
                                         storage=StorageType.FILE))
        bodies = [(f"{sid}:1:{n}", {"store": sid, "id": n, "ts": float(n), "kind": "entry",
                                    "customer_id": f"{sid}-c{n % CUSTOMERS}"}) for n in range(EVENTS[sid])]
        if sid == "d":
            bodies += [("a:1:99", {"store": "a", "id": 99, "ts": 1.0, "kind": "entry", "customer_id": "d-c0"}),
                       ("d:1:gone", {"store": "d", "id": 9999, "ts": 1.0, "kind": "visit", "customer_id": "gone"})]
        for msg_id, body in bodies:
            await js.publish(f"{subject_prefix(sid)}.events.{body['kind']}", json.dumps(body).encode(),
                             headers={"Nats-Msg-Id": msg_id})
        await nc.close()


def _hq(chain: Chain, tmp: Path, port: int) -> subprocess.Popen:
    (tmp / "hq-password").write_text(chain.passwords[HQ_USER])
    (tmp / "hq.toml").write_text(f'nats_url = "nats://127.0.0.1:{chain.hq_port}"\npassword_file = "hq-password"\n'
                                 f'postgres = "{chain.dsn}"\nstores = {json.dumps(STORES)}\nmetrics_port = {port}\n')
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-m", "instore.cli", "hq", "--config", str(tmp / "hq.toml"),
                             "--workers", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _health(port: int) -> dict:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
    except httpx.HTTPError:
        return {}


def test_a_worker_killed_mid_batch_writes_nothing_twice_and_metrics_count_per_store(chain: Chain,
                                                                                    tmp_path: Path) -> None:
    asyncio.run(_publish(chain))
    with psycopg.connect(chain.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO chain_erasures VALUES ('gone', 1.0, 'hq')")
    blocker = psycopg.connect(chain.dsn)  # holds the customer table: every worker's first batch waits inside
    blocker.execute("LOCK TABLE chain_customers IN EXCLUSIVE MODE")  # its transaction, events inserted
    port = free_port()
    hq = _hq(chain, tmp_path, port)
    waiting = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
               "AND query LIKE 'INSERT INTO chain_customers%'")
    try:
        with psycopg.connect(chain.dsn, autocommit=True) as watch:
            sessions = "SELECT wait_event_type, left(query, 60) FROM pg_stat_activity WHERE query <> ''"
            _wait_for(lambda: watch.execute(waiting).fetchone()[0] == 2, why=lambda: watch.execute(sessions).fetchall())
            workers = _health(port)["workers"]
            assert [w["stores"] for w in workers] == [["d"], ["a"]]  # the stores split over the two workers
            os.kill(workers[1]["pid"], signal.SIGKILL)  # store a's worker dies mid-batch, nothing acknowledged
            _wait_for(lambda: _health(port).get("workers", [{}, {}])[1].get("restarts") == 1)
            blocker.rollback()
            count = "SELECT store, count(*) FROM chain_events GROUP BY store ORDER BY store"
            _wait_for(lambda: watch.execute(count).fetchall() == [("a", 2000), ("d", 501)])
            _wait_for(lambda: _health(port).get("ok"))
            time.sleep(2 * 1.0)  # two counter pushes: the workers' latest counts reach /metrics
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            per_customer = watch.execute("SELECT customer_id, events, entries FROM chain_customers "
                                         "ORDER BY customer_id").fetchall()
    finally:
        blocker.close()
        hq.send_signal(signal.SIGTERM)
        assert hq.wait(20) == 0
    expected = sorted((f"{sid}-c{c}", EVENTS[sid] // CUSTOMERS, EVENTS[sid] // CUSTOMERS)
                      for sid in STORES for c in range(CUSTOMERS))
    assert per_customer == expected  # each event counted once in its customer's record; the forged one not
    m = {f'{s.name}{{store="{s.labels["store"]}"}}': s.value
         for family in text_string_to_metric_families(text) for s in family.samples if "store" in s.labels}
    # a's restarted worker recorded all 2,000 itself: its predecessor's batch had left nothing behind
    assert m['instore_hq_events_taken_total{store="a"}'] == 2000
    assert m['instore_hq_events_taken_total{store="d"}'] == 501  # 500 and the forged one, flagged
    assert m['instore_hq_forged_total{store="d"}'] == 1
    assert m['instore_hq_refused_erased_total{store="d"}'] == 1
    assert m['instore_hq_duplicates_total{store="a"}'] == m['instore_hq_duplicates_total{store="d"}'] == 0
    assert m['instore_hq_consumer_lag{store="a"}'] == m['instore_hq_consumer_lag{store="d"}'] == 0
    assert m['instore_hq_write_errors_total{store="a"}'] == 0
