"""Edge window aggregation: counts, RSSI statistics, sequence numbers, anonymous footfall."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from edge import protocol
from edge.config import BleSection, BrokerSection, NodeFile, NodeSection, QueueSection
from edge.node import BleNode
from edge.window import BleWindowAggregator, RfidWindowAggregator, next_window_end


def test_ble_window_aggregates_per_identifier_and_counts_anonymous_devices() -> None:
    agg = BleWindowAggregator("boutique", "entrance-1")
    agg.add("eid:0011223344556677", -70, 10.2, tx=-20)
    agg.add("eid:0011223344556677", -60, 10.7)
    agg.add("eid:0011223344556677", -65, 10.4)
    agg.add("ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:7", -80, 10.5)
    for key in (11, 12, 11, 13):
        agg.count_anonymous(key, 10.6)
    w = agg.flush(11.0)
    assert w.seq == 0 and w.window == (10.2, 11.0)
    by_id = {o.id: o for o in w.observations}
    eid = by_id["eid:0011223344556677"]
    assert (eid.n, eid.rssi_mean, eid.rssi_max, eid.first, eid.last, eid.tx) == (3, -65.0, -60, 10.2, 10.7, -20)
    assert w.anonymous.devices == 3 and w.anonymous.adverts == 4
    assert protocol.decode("ble", protocol.encode(w)) == w  # what the node builds is valid on the wire


def test_flush_resets_and_numbers_windows() -> None:
    agg = BleWindowAggregator("boutique", "n1")
    agg.add("eid:0011223344556677", -70, 1.0)
    first = agg.flush(2.0)
    second = agg.flush(3.0)
    assert (first.seq, second.seq) == (0, 1)
    assert second.observations == [] and second.anonymous.devices == 0
    assert second.window == (3.0, 3.0)  # an empty window is a heartbeat


def test_rfid_window_is_per_tag_and_antenna() -> None:
    agg = RfidWindowAggregator("boutique", "fr1")
    agg.add("3074257bf7194e4000001a85", 1, -50, 5.0)
    agg.add("3074257bf7194e4000001a85", 1, -54, 5.5)
    agg.add("3074257bf7194e4000001a85", 2, -70, 5.2)
    w = agg.flush(6.0)
    got = {(o.epc, o.ant): (o.n, o.rssi_mean, o.rssi_max) for o in w.observations}
    assert got == {("3074257bf7194e4000001a85", 1): (2, -52.0, -50), ("3074257bf7194e4000001a85", 2): (1, -70.0, -70)}
    assert protocol.decode("rfid", protocol.encode(w)) == w


def test_window_ends_are_on_the_clock_grid() -> None:
    assert next_window_end(10.0, 1.0) == 11.0  # a boundary now: the next one
    assert next_window_end(10.3, 1.0) == 11.0
    assert next_window_end(10.3, 2.5) == 12.5
    assert next_window_end(1_700_000_000.9999, 1.0) == 1_700_000_001.0
    assert next_window_end(1_700_000_001.0 - 1e-7, 1.0) == 1_700_000_002.0  # within float noise of one


def test_a_node_closes_its_windows_on_the_whole_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nodes started at different moments close their windows together, so that the gateway
    folds the same second from every node and steps as soon as the last one arrives."""
    cfg = NodeFile(
        node=NodeSection(store="boutique", id="entrance-1"),
        broker=BrokerSection(port=1),
        ble=BleSection(backend="sim", window_s=1.0),
        queue=QueueSection(path=str(tmp_path / "queue.db")),
    )
    node = BleNode(cfg)
    sent: list[tuple[str, object]] = []
    monkeypatch.setattr(node, "make_scanner", lambda: None)  # no radio: empty windows (heartbeats)
    monkeypatch.setattr(node.link, "start", lambda: None)
    monkeypatch.setattr(node.link, "stop", lambda: None)
    monkeypatch.setattr(node.link, "send", lambda kind, window: sent.append((kind, window)))

    async def run() -> None:
        stop = asyncio.Event()
        await asyncio.sleep(1.0 - time.time() % 1.0 + 0.37)  # start a third of the way into a second
        task = asyncio.create_task(node.run(stop))
        await asyncio.sleep(2.5)
        stop.set()
        await task

    asyncio.run(run())
    ends = [w.window[1] for kind, w in sent if kind == "ble"][:-1]  # the last one: flushed at the stop
    assert len(ends) >= 2
    assert all(abs(t - round(t)) < 0.1 for t in ends), ends  # on the grid, not start + k seconds
