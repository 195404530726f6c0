"""Fleet state: de-duplication, state transitions, the node_offline alert, the fleet page."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import protocol
from edge.config import BrokerSection
from edge.mqtt_link import NodeLink
from edge.window import BleWindowAggregator
from firmware_config.store import load_store
from gateway.ingest.core import GatewayCore
from gateway.ingest.fleet import SeqWindow, fleet_view, summary
from gateway.ingest.mqtt_ingest import MqttIngest
from gateway.storage import auth
from gateway.storage.db import open_db
from gateway.web.app import create_app
from tests.conftest import BOUTIQUE
from tests.test_fleet_outage import wait_until

STORE = load_store(BOUTIQUE)


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def status(node: str, state: str = "online", **kw) -> protocol.NodeStatus:  # noqa: ANN003
    return protocol.NodeStatus(v=1, store="boutique", node=node, state=state, ts=1.0, **kw)  # type: ignore[arg-type]


def window(node: str, seq: int, late: bool = False) -> protocol.BleWindow:
    return protocol.BleWindow(
        v=1, store="boutique", node=node, seq=seq, window=(999.0, 1000.0), late=late, observations=[]
    )


def core_with(clock: Clock) -> GatewayCore:
    return GatewayCore(STORE, open_db(":memory:"), clock=clock)


def topic(node: str, kind: str) -> str:
    return protocol.node_topic("boutique", node, kind)


# --- de-duplication ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=300), max_size=400))
def test_seq_window_accepts_each_seq_once_within_the_window(seqs: list[int]) -> None:
    w = SeqWindow(size=1000)  # larger than the value range: nothing is forgotten
    accepted = [s for s in seqs if w.accept(s)]
    assert accepted == list(dict.fromkeys(seqs))  # first occurrences, in arrival order


def test_seq_window_is_bounded_and_survives_a_node_that_starts_again_from_zero() -> None:
    w = SeqWindow(size=100)
    assert all(w.accept(s) for s in range(5000, 5300))
    assert not w.accept(5299) and not w.accept(5201)  # recent: duplicates
    assert len(w._seen) == 100  # bounded memory
    assert w.accept(3)  # far below everything recent: a node with a fresh queue, not a replay
    assert w.resets == 1 and not w.accept(3) and w.accept(4)


def test_core_drops_redelivered_windows_and_counts_late_ones_without_presence() -> None:
    clock = Clock()
    core = core_with(clock)
    seen: list[int] = []
    on_ble = core.on_ble
    core.on_ble = lambda w: (seen.append(w.seq), on_ble(w))[1]  # type: ignore[method-assign]
    for seq, late in [(1, False), (2, False), (2, False), (3, True), (1, False), (3, True), (4, False)]:
        core.handle(topic("floor-west", "ble"), protocol.encode(window("floor-west", seq, late)))
    assert seen == [1, 2, 3, 4]
    rec = core.fleet.records["floor-west"]
    assert (rec.windows, rec.late, rec.duplicates) == (4, 1, 3)
    body = core.metrics.render().decode()
    assert 'instore_gateway_duplicate_windows_total{kind="ble"} 3.0' in body
    assert 'instore_gateway_late_windows_total{kind="ble"} 1.0' in body
    # the same seq from another node is another window
    core.handle(topic("floor-east", "ble"), protocol.encode(window("floor-east", 2)))
    assert seen[-1] == 2


# --- states ---------------------------------------------------------------------------------


def test_fleet_state_transitions_online_stale_offline_and_misconfigured() -> None:
    clock = Clock(1000.0)
    core = core_with(clock)
    fleet = core.fleet
    fleet.expect({"fr1": 4, "fr2": 4})

    def state(node: str):  # noqa: ANN202
        return next(v for v in fleet.view() if v.node == node)

    assert state("fr1").state == "unknown"
    assert [v.node for v in fleet.view()] == [n.id for n in STORE.nodes]  # every node of the store file
    core.handle(topic("fr1", "status"), protocol.encode(status("fr1", config_version=4, scanner="scanning")))
    core.handle(topic("fr1", "ble"), protocol.encode(window("fr1", 1)))
    v = state("fr1")
    assert (v.state, v.misconfigured, v.problems, v.scanner) == ("online", False, (), "scanning")

    clock.t += 29.0
    assert state("fr1").state == "online"
    clock.t += 2.0  # no window for more than 30 s while "online": a hung scanner
    v = state("fr1")
    assert v.state == "stale" and v.problems == ("no window for 30 s",)
    core.handle(topic("fr1", "ble"), protocol.encode(window("fr1", 2, late=True)))
    assert state("fr1").state == "stale"  # a late replay is not a sign of life now
    core.handle(topic("fr1", "ble"), protocol.encode(window("fr1", 3)))
    assert state("fr1").state == "online"

    core.handle(topic("fr1", "status"), protocol.encode(status("fr1", "offline")))
    assert state("fr1").state == "offline"

    # fr2: online but running an old config version, then refusing the new one
    core.handle(topic("fr2", "status"), protocol.encode(status("fr2", config_version=3)))
    v = state("fr2")
    assert (
        v.state == "online" and v.misconfigured and v.problems == ("config version 3 is not the current 4",)
    )
    core.handle(
        topic("fr2", "status"),
        protocol.encode(
            status("fr2", config_version=3, config_error="version 4 refused: ble.window_s: too long")
        ),
    )
    assert any(p.startswith("config refused: version 4") for p in state("fr2").problems)

    # a node the store file does not know
    core.handle(topic("rogue", "status"), protocol.encode(status("rogue")))
    v = state("rogue")
    assert v.role == "unknown" and v.misconfigured
    assert summary(fleet.view()) == {"online": 2, "stale": 0, "offline": 1, "unknown": 4, "misconfigured": 2}
    assert 'instore_gateway_nodes{state="offline"} 1.0' in core.metrics.render().decode()


def test_fleet_view_shows_a_node_whose_card_is_full() -> None:
    core = core_with(Clock())
    full = status("fr1", disk_full=True, held_in_memory=12, queue_depth=40)
    core.handle(topic("fr1", "status"), protocol.encode(full))
    core.handle(topic("fr2", "status"), protocol.encode(status("fr2")))  # an older node: not reported
    views = {v.node: v for v in core.fleet.view()}
    assert (views["fr1"].disk_full, views["fr1"].held_in_memory, views["fr1"].queue_depth) == (True, 12, 40)
    assert (views["fr2"].disk_full, views["fr2"].held_in_memory) == (None, 0)


def test_fleet_view_is_pure() -> None:
    assert [v.state for v in fleet_view(STORE, {}, {}, now=0.0)] == ["unknown"] * len(STORE.nodes)


def test_node_offline_alert_only_for_fitting_rooms_and_once_per_outage() -> None:
    clock = Clock()
    core = core_with(clock)
    for node in ("fr1", "floor-west"):
        core.handle(topic(node, "status"), protocol.encode(status(node)))
        core.handle(topic(node, "status"), protocol.encode(status(node, "offline")))
        core.handle(
            topic(node, "status"), protocol.encode(status(node, "offline"))
        )  # retained again: no repeat
    events = core.events.after(0)
    assert [(e.kind, e.data["node"], e.data["zone"]) for e in events] == [("node_offline", "fr1", "fr1")]
    assert events[0].customer_id is None
    core.handle(topic("fr1", "status"), protocol.encode(status("fr1")))
    core.handle(
        topic("fr1", "status"), protocol.encode(status("fr1", "offline"))
    )  # the next outage alerts again
    assert len(core.events.after(0)) == 2


# --- the page ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_fleet_page_shows_a_fitting_room_node_going_offline(mosquitto, serve, browser, tmp_path) -> None:  # noqa: ANN001
    db = open_db(tmp_path / "gw.db")
    auth.create_staff(db, "mia", "manager-pass", "manager")
    core = GatewayCore(STORE, db, clock=time.time)
    core.fleet.stale_after_s = 2.0
    ingest = MqttIngest("boutique", "127.0.0.1", mosquitto.port, core.handle, client_id="gw-page-test")
    server = serve(create_app(core, ingest))
    links = {
        n: NodeLink("boutique", n, BrokerSection(port=mosquitto.port, reconnect_max_s=1))
        for n in ("fr1", "floor-west")
    }
    for link in links.values():
        link.start()
    try:
        wait_until(lambda: all(lk.connected.is_set() for lk in links.values()), 10, "nodes connected")
        agg = BleWindowAggregator("boutique", "fr1")
        links["fr1"].send("ble", agg.flush(time.time()))

        page = browser.new_page(viewport={"width": 820, "height": 1180})  # a tablet held upright
        page.goto(f"{server.url}/fleet")
        page.fill("#u", "mia")
        page.fill("#p", "manager-pass")
        page.click("#go")
        page.wait_for_url(f"{server.url}/fleet")
        page.wait_for_selector("article.node[data-node=fr1][data-state=online]", timeout=10000)
        # floor-west is connected but sends no windows: stale after 2 s
        page.wait_for_selector("article.node[data-node=floor-west][data-state=stale]", timeout=10000)
        assert page.locator("article.node[data-state=unknown]").count() == len(STORE.nodes) - 2
        # fr2's card is full: its status says so and how many windows wait in memory only
        full = status("fr2", disk_full=True, held_in_memory=7, queue_depth=9)
        links["fr1"].client.publish(topic("fr2", "status"), protocol.encode(full), qos=1).wait_for_publish(5)
        queue = page.wait_for_selector("article.node[data-node=fr2] dd.queue.bad", timeout=10000)
        assert queue.inner_text() == "9 waiting, disk full, 7 in memory only"
        page.click("button[data-lang=de]")
        page.wait_for_function("document.documentElement.lang === 'de'")
        queue = page.wait_for_selector("article.node[data-node=fr2] dd.queue.bad", timeout=10000)
        assert queue.inner_text() == "9 wartend, Speicherkarte voll, 7 nur im Arbeitsspeicher"
        stale = page.wait_for_selector("article.node[data-node=floor-west] ul.problems li", timeout=10000)
        assert stale.inner_text().startswith("seit ") and "kein Messfenster" in stale.inner_text()  # not English
        page.click("button[data-lang=en]")
        page.wait_for_function("document.documentElement.lang === 'en'")
        page.wait_for_selector("article.node[data-node=fr1]", timeout=10000)

        links["fr1"].stop()  # the fitting-room node goes away
        page.wait_for_selector("article.node[data-node=fr1][data-state=offline]", timeout=10000)
        banner = page.wait_for_selector(".alert", timeout=10000)
        assert "fr1" in banner.inner_text() and "offline" in banner.inner_text()
        assert "1 offline" in page.inner_text("#summary")
        page.screenshot(path=str(tmp_path / "fleet.png"))
    finally:
        for link in links.values():
            link.stop()
