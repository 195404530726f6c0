"""Time you can trust: windows stamped ahead of the gateway's clock (or far behind) are rejected
and counted by node; node clock offsets show on the fleet; one window costs bounded work."""

from __future__ import annotations

import time

import httpx

from edge import protocol
from gateway.engines.timecheck import MAX_AHEAD_S, MAX_BEHIND_S, OffsetEstimate, check_window_time
from gateway.ingest.core import GatewayCore
from gateway.storage import auth
from gateway.web.app import create_app
from tests.test_clienteling_consent import IBEACON, ON_FLOOR, _setup

DAY = 86400.0
EPC = "3034f7e0c80008c000000002"


class WireFeeder:
    """Node windows for one beacon, through `GatewayCore.handle` as the MQTT thread delivers them."""

    def __init__(self, core: GatewayCore, clock):  # noqa: ANN001
        self.core, self.clock, self.seq = core, clock, {}

    def send(self, node: str, end: float, beacon: str | None, rssi: float | None) -> None:
        s = self.seq.get(node, 0)
        self.seq[node] = s + 1
        obs = [] if rssi is None or beacon is None else [
            protocol.BleObservation(id=beacon, n=2, rssi_mean=rssi, rssi_max=rssi, first=end - 1, last=end)
        ]
        w = protocol.BleWindow(v=1, store="boutique", node=node, seq=s, window=(end - 1, end), observations=obs)
        self.core.handle(protocol.node_topic("boutique", node, "ble"), protocol.encode(w))

    def seconds(self, n: int, beacon: str) -> None:
        for _ in range(n):
            self.clock.t += 1
            for node, rssi in ON_FLOOR.items():
                self.send(node, self.clock.t, beacon, rssi)


def metric(core: GatewayCore, name: str, **labels: str) -> float:
    return core.metrics.registry.get_sample_value(name, labels) or 0.0


def test_verdicts_against_the_gateway_clock() -> None:
    now = 1_000_000.0
    assert check_window_time(now, now) == "ok"
    assert check_window_time(now + MAX_AHEAD_S + 1, now) == "ahead"
    assert check_window_time(now - MAX_BEHIND_S - 1, now) == "behind"
    assert check_window_time(now - 600, now) == "lagging"


def test_offset_estimate_is_the_fastest_transit() -> None:
    est = OffsetEstimate()
    assert est.offset_s is None
    for transit in (0.3, 0.05, 1.2):  # node clock 2 s ahead, windows take 50 ms to 1.2 s
        est.add(1000.0 + 2.0, 1000.0 + transit)
    assert est.offset_s == 1.95


def test_a_window_stamped_tomorrow_is_rejected_and_the_store_keeps_announcing() -> None:
    db, clock, core, _ = _setup(True)
    feed = WireFeeder(core, clock)
    feed.send("floor-west", clock.t + DAY, IBEACON.format(7), -50.0)  # a node booted with a wrong clock
    feed.send("floor-east", clock.t - 3 * DAY, IBEACON.format(7), -50.0)  # and one far behind
    assert metric(core, "instore_gateway_time_rejects_total", node="floor-west", reason="ahead") == 1
    assert metric(core, "instore_gateway_time_rejects_total", node="floor-east", reason="behind") == 1
    feed.seconds(10, IBEACON.format(7))
    kinds = [r[0] for r in db.execute("SELECT kind FROM events ORDER BY id").fetchall()]
    assert kinds[:1] == ["entered"]
    assert core.presence.present() == {"c1": "floor"}
    west = next(v for v in core.fleet.view() if v.node == "floor-west")
    assert west.time_rejects == 1 and west.clock_offset_s is not None and west.clock_offset_s > DAY - 1
    assert any("clock" in p for p in west.problems)


def test_one_window_after_a_long_gap_costs_bounded_work() -> None:
    _, clock, core, _ = _setup(True)
    feed = WireFeeder(core, clock)
    feed.seconds(3, IBEACON.format(7))
    clock.t += 3650 * DAY  # the gateway's clock stepped forward from a dead RTC battery's 2016
    started = time.process_time()
    feed.send("floor-west", clock.t, IBEACON.format(7), -50.0)
    feed.send("floor-west", clock.t + 1, IBEACON.format(7), -50.0)
    assert time.process_time() - started < 5.0  # a hang detector: 315 million one-second steps take minutes
    assert core.presence._due is not None and core.presence._due >= clock.t - 1


def test_a_lagging_live_window_is_handled_as_late() -> None:
    _, clock, core, _ = _setup(True)
    feed = WireFeeder(core, clock)
    feed.send("floor-west", clock.t - 600, IBEACON.format(7), -50.0)  # re-delivered ten minutes late
    assert metric(core, "instore_gateway_late_windows_total", kind="ble") == 1
    assert core.presence.present() == {}


def rfid(core: GatewayCore, seq: int, end: float) -> None:
    obs = protocol.RfidObservation(epc=EPC, ant=1, n=8, rssi_mean=-50, rssi_max=-48, first=end - 0.9, last=end - 0.1)
    w = protocol.RfidWindow(v=1, store="boutique", node="fr2", seq=seq, window=(end - 1, end), observations=[obs])
    core.handle(protocol.node_topic("boutique", "fr2", "rfid"), protocol.encode(w))


def test_a_future_rfid_window_neither_breaks_the_epcis_export_nor_touches_a_session(serve) -> None:  # noqa: ANN001
    db, clock, core, _ = _setup(True)
    rfid(core, 0, 1e11)  # the year 5138
    for k in range(1, 7):
        clock.t += 1
        rfid(core, k, clock.t)
    auth.create_staff(db, "ana", "ana-password", "associate", name="Ana", now=clock.t)
    token = auth.login(db, "ana", "ana-password", now=clock.t)
    client = httpx.Client(base_url=serve(create_app(core)).url, timeout=10)
    r = client.get("/epcis/events", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert len(r.json()["epcisBody"]["eventList"]) == 1
    assert metric(core, "instore_gateway_time_rejects_total", node="fr2", reason="ahead") == 1
    assert [e.kind for e in core.events.after(0)] == ["session_started", "item_shown"]
    assert all(e.ts < 1e10 for e in core.events.after(0))


def test_node_status_carries_its_clock_sync_state() -> None:
    _, _, core, _ = _setup(True)
    st = protocol.NodeStatus(v=1, store="boutique", node="fr1", state="online", ts=1.0, clock_synced=False)
    core.handle(protocol.node_topic("boutique", "fr1", "status"), protocol.encode(st))
    fr1 = next(v for v in core.fleet.view() if v.node == "fr1")
    assert fr1.clock_synced is False and "clock not synchronised" in fr1.problems


def test_when_the_gateway_clock_steps_back_the_agreeing_nodes_are_still_heard() -> None:
    db, clock, core, _ = _setup(True)
    feed = WireFeeder(core, clock)
    node_time = clock.t
    for _ in range(3):  # the store as it was, gateway and nodes agreeing
        node_time += 1
        clock.t = node_time
        for node, rssi in ON_FLOOR.items():
            feed.send(node, node_time, None, rssi)
    gateway_error = 3600.0  # then the gateway's clock steps back an hour (fake-hwclock after a reboot)
    for _ in range(12):
        node_time += 1
        clock.t = node_time - gateway_error
        for node, rssi in ON_FLOOR.items():
            feed.send(node, node_time, IBEACON.format(7), rssi)
        feed.send("fr3", node_time + DAY, None, None)  # one node a day ahead is still that node's fault
    assert abs(core.fleet.skew_s - gateway_error) < 1.0
    assert core.fleet.to_json()["gateway_clock_behind_s"] == round(core.fleet.skew_s, 1)
    kinds = [r[0] for r in db.execute("SELECT kind FROM events ORDER BY id").fetchall()]
    assert kinds[:1] == ["entered"]  # the customer is announced despite the gateway's clock
    rejected = metric(core, "instore_gateway_time_rejects_total", node="floor-west", reason="ahead")
    assert rejected <= 2  # only until the nodes agreed (within about a second)
    views = {v.node: v for v in core.fleet.view()}
    assert not any("clock" in p for p in views["floor-west"].problems)
    assert any("off the other nodes" in p for p in views["fr3"].problems)
