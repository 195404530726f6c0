"""Store-and-forward through a real Mosquitto: outages, node restarts, the queue bound.

A simulated node (the real `NodeLink` and window aggregator, windows every 50 ms) publishes
while the broker is stopped and restarted; the gateway (the real `MqttIngest` and
`GatewayCore`) must process every window exactly once, in order, replays marked late.

The broker here has `persistence true`, as the generated production config does: the
gateway's session (subscription and queued messages) survives the broker restart, so it does
not matter whether the node or the gateway reconnects first.

`INSTORE_OUTAGE_S=120 pytest tests/test_fleet_outage.py -s -k broker_outage` runs the outage
test with the issue's two-minute outage instead of the default 12 s (and prints its figures).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge import protocol
from edge.config import BrokerSection
from edge.mqtt_link import NodeLink
from edge.queue import DiskQueue
from edge.window import BleWindowAggregator
from firmware_config.store import load_store
from gateway.ingest.core import GatewayCore
from gateway.ingest.mqtt_ingest import MqttIngest
from gateway.storage.db import open_db
from instore.broker import Broker
from tests.conftest import BOUTIQUE

pytestmark = pytest.mark.slow

STORE = "boutique"
EID = "eid:0123456789abcdef"
OUTAGE_S = float(os.environ.get("INSTORE_OUTAGE_S", "12"))


@pytest.fixture
def broker(mosquitto: Broker) -> Broker:
    """The project's test Mosquitto: persistence on, like a store's, so sessions survive a restart."""
    return mosquitto


class Gateway:
    """The real ingest core on a real subscription, recording the windows it processed."""

    def __init__(self, port: int, db_path: Path):
        self.core = GatewayCore(load_store(BOUTIQUE), open_db(db_path), clock=time.time)
        self.processed: list[tuple[str, int, bool]] = []
        on_ble = self.core.on_ble

        def record(w: protocol.BleWindow):  # noqa: ANN202
            self.processed.append((w.node, w.seq, w.late))
            return on_ble(w)

        self.core.on_ble = record  # type: ignore[method-assign]
        self.ingest = MqttIngest(STORE, "127.0.0.1", port, self.core.handle, client_id=f"gw-{port}")
        self.ingest.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.ingest.start()
        wait_until(lambda: self.ingest.connected, 10, "gateway connected")

    def seqs(self, node: str) -> list[int]:
        return [s for n, s, _ in self.processed if n == node]

    def stop(self) -> None:
        self.ingest.stop()


@pytest.fixture
def gateway(broker: Broker, tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(broker.port, tmp_path / "gw.db")
    yield gw
    gw.stop()


def wait_until(pred, timeout: float, what) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for: {what() if callable(what) else what}")


def make_link(port: int, node: str, queue: DiskQueue | None = None, **kw) -> NodeLink:  # noqa: ANN003
    return NodeLink(STORE, node, BrokerSection(port=port, reconnect_max_s=1), queue_=queue, **kw)


class SimNode:
    """A node producing one window every `period_s` (an identifier heard in each) on a thread."""

    def __init__(self, link: NodeLink, period_s: float = 0.05):
        self.link, self.period_s = link, period_s
        self.agg = BleWindowAggregator(STORE, link.node)
        self.sent: list[tuple[int, bool]] = []  # (seq, broker reachable when queued)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SimNode:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            self.agg.add(EID, -60.0, now)
            up = self.link.connected.is_set()
            self.sent.append((self.link.send("ble", self.agg.flush(now + 0.001)), up))
            self._stop.wait(self.period_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.mark.timeout(60 + 2 * OUTAGE_S)
def test_broker_outage_every_window_arrives_once_in_order_and_replays_are_late(broker, gateway) -> None:  # noqa: ANN001
    link = make_link(broker.port, "entrance-1")
    link.start()
    wait_until(link.connected.is_set, 10, "node connected")
    node = SimNode(link).start()
    try:
        time.sleep(1.5)
        broker.stop()  # the broker goes away (power, update, crash) for a while
        wait_until(lambda: not link.connected.is_set(), 5, "node noticed the outage")
        time.sleep(OUTAGE_S)
        assert link.queue.depth >= OUTAGE_S / node.period_s * 0.7  # all of it waited on disk
        backlog = link.queue.depth
        broker.start()
        t_up = time.monotonic()
        last_queued = node.sent[-1][0]
        wait_until(
            lambda: last_queued in gateway.seqs("entrance-1"),
            30 + OUTAGE_S / 4,
            lambda: (
                f"the backlog at the gateway: {len(gateway.seqs('entrance-1'))} of {len(node.sent)},"
                f" node queue {link.queue.depth}, gateway connected {gateway.ingest.connected}"
            ),
        )
        drain_s = time.monotonic() - t_up  # broker back -> the whole backlog processed by the gateway
        time.sleep(1.0)
    finally:
        node.stop()
    wait_until(lambda: len(gateway.seqs("entrance-1")) >= len(node.sent), 10, "gateway has every window")
    time.sleep(0.3)  # anything extra (a duplicate) would arrive now

    sent = [s for s, _ in node.sent]
    got = gateway.seqs("entrance-1")
    assert got == sent  # 100 %, in order, none processed twice
    assert sent == list(range(sent[0], sent[0] + len(sent)))  # the node's numbering has no gaps
    late = {s for _, s, lt in gateway.processed if lt}
    queued_offline = {s for s, up in node.sent if not up}
    assert len(queued_offline) >= OUTAGE_S / node.period_s * 0.7
    assert queued_offline <= late  # replays of the outage are late: no live alerts from them
    assert not late & {s for s, up in node.sent[:10]}  # live windows before the outage are not
    assert link.queue.depth == 0
    assert link.queue.dropped == 0
    view = {v.node: v for v in gateway.core.fleet.view()}["entrance-1"]
    assert view.windows == len(sent) and view.late_windows == len(late)
    print(
        f"\noutage {OUTAGE_S:.0f} s: {len(sent)} windows, {backlog} on disk at the restart, "
        f"{len(queued_offline)} queued offline, all at the gateway {drain_s:.2f} s after the broker returned"
    )
    link.stop()


def _raw_client(port: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="raw-publisher")
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def test_store_and_forward_across_a_node_restart_with_redelivery_deduplicated(
    broker,
    gateway,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    qfile = tmp_path / "node" / "queue.db"
    port = broker.port
    broker.stop()  # the node starts while the broker is unreachable

    first = make_link(port, "floor-west", DiskQueue(qfile, first_seq=500))
    first.start()
    agg = BleWindowAggregator(STORE, "floor-west")
    t0 = time.time() - 30  # windows of the last half minute: the gateway rejects clocks far off
    seqs = [first.send("ble", agg.flush(t0 + i)) for i in range(30)]
    assert seqs == list(range(500, 530))
    first.stop()  # the process ends with 30 windows on disk
    first.queue.close()

    # Of those, the gateway had already processed 500..509 (e.g. the PUBACK was lost before the
    # node went down): the restarted node replays them and the gateway must drop them.
    broker.start()
    raw = _raw_client(port)
    q = DiskQueue(qfile)
    for row in q.after(-1, 10):
        raw.publish(protocol.node_topic(STORE, "floor-west", "ble"), row.payload, qos=1).wait_for_publish(5)
    wait_until(lambda: len(gateway.seqs("floor-west")) == 10, 10, "first ten processed")
    raw.disconnect()
    raw.loop_stop()

    assert q.depth == 30 and q.next_seq == 530  # both survived the restart
    second = make_link(port, "floor-west", q)
    second.start()
    wait_until(second.connected.is_set, 10, "restarted node connected")
    more = [second.send("ble", agg.flush(time.time() + i * 0.1)) for i in range(5)]
    assert more == list(range(530, 535))  # numbering continues, never repeats
    wait_until(lambda: len(gateway.seqs("floor-west")) >= 35 and second.queue.depth == 0, 15, "drained")
    time.sleep(0.3)
    assert gateway.seqs("floor-west") == list(range(500, 535))
    late = [s for n, s, lt in gateway.processed if n == "floor-west" and lt]
    assert late == list(range(500, 530))  # queued while unreachable, replayed from the previous run's disk
    rec = gateway.core.fleet.records["floor-west"]
    assert rec.duplicates == 10
    body = gateway.core.metrics.render().decode()
    assert 'instore_gateway_duplicate_windows_total{kind="ble"} 10.0' in body
    second.stop()


def test_queue_bound_drops_the_oldest_and_the_status_reports_it(broker, gateway, tmp_path: Path) -> None:  # noqa: ANN001
    port = broker.port
    broker.stop()
    link = make_link(port, "fr2", DiskQueue(tmp_path / "q.db", max_windows=20, first_seq=0))
    link.start()
    agg = BleWindowAggregator(STORE, "fr2")
    t0 = time.time() - 50  # windows of the last minute: the gateway rejects clocks far off
    for i in range(50):
        link.send("ble", agg.flush(t0 + i))
    assert link.queue.depth == 20 and link.queue.dropped == 30
    assert [r.seq for r in link.queue.after(-1, 100)] == list(range(30, 50))  # the newest are kept
    broker.start()
    wait_until(lambda: len(gateway.seqs("fr2")) >= 20, 15, "the 20 kept windows")
    wait_until(lambda: "fr2" in gateway.core.node_status, 5, "status")
    assert gateway.seqs("fr2") == list(range(30, 50))
    status = gateway.core.node_status["fr2"]
    assert status.state == "online" and status.dropped == 30
    assert status.queue_depth == 20  # the status on reconnect shows the backlog it is about to drain
    view = {v.node: v for v in gateway.core.fleet.view()}["fr2"]
    assert view.dropped == 30 and "30 windows dropped from its queue" in view.problems
    link.stop()
    assert link.queue.depth == 0
    link.queue.close()
    reopened = DiskQueue(tmp_path / "q.db", max_windows=20)
    assert reopened.dropped == 30 and reopened.next_seq == 50  # counted across restarts too
