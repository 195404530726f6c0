"""Edge window aggregation: counts, RSSI statistics, sequence numbers, anonymous footfall."""

from __future__ import annotations

from edge import protocol
from edge.window import BleWindowAggregator, RfidWindowAggregator


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
