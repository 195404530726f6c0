"""Config push: the gateway publishes retained, versioned node configs; nodes apply or refuse.

Through a real Mosquitto and the real gateway app (its router runs the config pusher): the
node applies its config without a restart and acknowledges the version in its retained
status; a config it refuses is reported with the reason and the old one stays in force.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from edge import protocol
from edge.ble.frames import IBeacon, encode_ibeacon
from edge.config import (
    BleSection,
    BrokerSection,
    NodeFile,
    NodeRuntimeConfigError,
    NodeSection,
    QueueSection,
    RfidReaderSection,
    RfidSection,
    runtime_from_wire,
)
from edge.node import BleNode, read_cpu_temp
from edge.rfid import codec
from firmware_config.node_config import NodeRuntimeConfig, node_configs
from firmware_config.store import load_store
from gateway.ingest.config_push import ConfigPusher, config_message, load_versions
from gateway.ingest.core import GatewayCore
from gateway.ingest.mqtt_ingest import MqttIngest
from gateway.storage import auth
from gateway.storage.db import open_db
from gateway.web.app import create_app
from tests.conftest import BOUTIQUE
from tests.test_fleet_outage import wait_until

STORE_UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"


def node_file(port: int, node: str, tmp_path: Path, **ble) -> NodeFile:  # noqa: ANN003
    return NodeFile(
        node=NodeSection(store="boutique", id=node),
        broker=BrokerSection(port=port, reconnect_max_s=1),
        ble=BleSection(backend="sim.bleak_backend:SimScanner", **ble),
        queue=QueueSection(path=str(tmp_path / f"{node}-queue.db")),
    )


def fr1_runtime(version: int, **ble) -> NodeRuntimeConfig:  # noqa: ANN003
    base = node_configs(load_store(BOUTIQUE), version)["fr1"]
    return base.model_copy(update={"ble": base.ble.model_copy(update=ble)})  # type: ignore[union-attr]


@pytest.mark.slow
def test_config_push_apply_ack_refuse_and_keep_the_old_config(mosquitto, serve, tmp_path) -> None:  # noqa: ANN001
    store = load_store(BOUTIQUE)
    db = open_db(tmp_path / "gw.db")
    core = GatewayCore(store, db, clock=time.time)
    ingest = MqttIngest("boutique", "127.0.0.1", mosquitto.port, core.handle, client_id="gw-config-test")
    pusher = ConfigPusher.from_db(store, db, core.lock, "127.0.0.1", mosquitto.port)
    http = serve(create_app(core, ingest, pusher))
    auth.create_staff(db, "mia", "manager-pass", "manager")
    bearer = {"Authorization": f"Bearer {auth.login(db, 'mia', 'manager-pass', now=time.time())}"}
    assert httpx.get(f"{http.url}/api/fleet").status_code == 401  # staff only
    assert pusher.published.wait(10)
    v = pusher.versions()["fr1"]

    # The node's own file says 2.0 s, active, no namespace: the store's config must replace that.
    node = BleNode(node_file(mosquitto.port, "fr1", tmp_path, window_s=2.0, scan_mode="active"))
    node.link.start()
    try:
        wait_until(lambda: node.config_version == v, 10, "node applied the pushed config")
        assert (node.window_s, node.scan_mode, node.rssi_floor) == (1.0, "passive", -95.0)
        assert node.policy.eddystone_namespace == store.store.eddystone_namespace
        assert node.policy.ibeacon_uuids == frozenset({STORE_UUID})
        assert node._rescan.is_set()  # the scan loop restarts the scanner in the new mode
        wait_until(lambda: getattr(core.node_status.get("fr1"), "config_version", None) == v, 10, "ack")
        fleet = httpx.get(f"{http.url}/api/fleet", headers=bearer).json()
        fr1 = next(n for n in fleet["nodes"] if n["node"] == "fr1")
        assert fr1["state"] == "online" and not fr1["misconfigured"]
        assert fr1["config_version"] == fr1["expected_config_version"] == v
        assert fr1["queue_depth"] == 0 and fr1["scanner"] == "starting"

        # A new version arrives while the node runs: applied without a restart, acknowledged.
        pusher.push(fr1_runtime(v + 1, window_s=2.5, rssi_floor_dbm=-80.0))
        wait_until(lambda: core.node_status["fr1"].config_version == v + 1, 10, "ack of the new version")
        assert (node.window_s, node.rssi_floor) == (2.5, -80.0)

        # An invalid config (a 60 s window) is refused with the field and reason; v+1 stays.
        bad = protocol.NodeConfig(
            v=1,
            store="boutique",
            node="fr1",
            version=v + 2,
            settings={
                **fr1_runtime(v + 2).model_dump(mode="json"),
                "ble": {
                    **fr1_runtime(v + 2).ble.model_dump(mode="json"),  # type: ignore[union-attr]
                    "window_s": 60,
                },
            },
        )
        raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="installer-typo")
        raw.connect("127.0.0.1", mosquitto.port)
        raw.loop_start()
        protocol.publish(
            raw, protocol.node_topic("boutique", "fr1", "config"), bad, retain=True
        ).wait_for_publish(5)
        wait_until(lambda: core.node_status["fr1"].config_error is not None, 10, "refusal in the status")
        status = core.node_status["fr1"]
        assert status.config_version == v + 1
        assert status.config_error.startswith(f"version {v + 2} refused: ble.window_s: ")  # type: ignore[union-attr]
        assert "less than or equal to 10" in status.config_error  # type: ignore[operator]
        assert node.window_s == 2.5  # the old config is still in force
        fr1 = next(
            n
            for n in httpx.get(f"{http.url}/api/fleet", headers=bearer).json()["nodes"]
            if n["node"] == "fr1"
        )
        assert fr1["misconfigured"] and any(p.startswith("config refused") for p in fr1["problems"])

        # Garbage on the config topic is refused too, naming the payload.
        raw.publish(protocol.node_topic("boutique", "fr1", "config"), b"{not json", qos=1).wait_for_publish(5)
        wait_until(
            lambda: "undecodable" in (core.node_status["fr1"].config_error or ""), 10, "garbage refused"
        )
        raw.disconnect()
        raw.loop_stop()

        # The gateway publishes a good version again: applied, the error clears.
        pusher.push(fr1_runtime(v + 3, window_s=1.5))
        wait_until(lambda: core.node_status["fr1"].config_version == v + 3, 10, "recovered")
        assert core.node_status["fr1"].config_error is None and node.window_s == 1.5
    finally:
        node.link.stop()
        node.queue.close()

    # A rebooted node starts with the config it last applied, before any broker is reachable.
    again = BleNode(node_file(1, "fr1", tmp_path, window_s=2.0))
    assert again.config_version == v + 3 and again.window_s == 1.5
    again.queue.close()


def test_config_versions_persist_and_only_changed_nodes_are_bumped(tmp_path) -> None:  # noqa: ANN001
    store = load_store(BOUTIQUE)
    db = open_db(tmp_path / "gw.db")
    lock = threading.RLock()
    first = load_versions(db, lock, store)
    assert first == load_versions(db, lock, store)  # a gateway restart republishes the same versions
    edited = store.model_copy(
        update={
            "nodes": [
                n.model_copy(update={"ble": n.ble.model_copy(update={"window_s": 2.0})})
                if n.id == "fr2"
                else n  # type: ignore[union-attr]
                for n in store.nodes
            ]
        }
    )
    second = load_versions(db, lock, edited)
    assert second["fr2"].version == first["fr2"].version + 1
    assert {n: c.version for n, c in second.items() if n != "fr2"} == {
        n: c.version for n, c in first.items() if n != "fr2"
    }
    topic, msg = config_message(second["fr2"])
    assert topic == "instore/v1/boutique/node/fr2/config"
    assert runtime_from_wire(msg, "boutique", "fr2") == second["fr2"]  # what the node decodes


def _cfg(settings: dict, version: int = 3, node: str = "fr1") -> protocol.NodeConfig:
    return protocol.NodeConfig(v=1, store="boutique", node=node, version=version, settings=settings)


def test_runtime_from_wire_names_what_is_wrong() -> None:
    good = fr1_runtime(3).model_dump(mode="json")
    assert runtime_from_wire(_cfg(good), "boutique", "fr1").version == 3
    bare = {k: good[k] for k in ("ble", "rfid")}  # version/store/node may come from the envelope
    assert runtime_from_wire(_cfg(bare), "boutique", "fr1") == fr1_runtime(3)
    cases = [
        (_cfg(good, node="fr2"), "node"),
        (_cfg({**good, "version": 2}), "settings.version"),
        (_cfg({**good, "colour": "red"}), "colour"),
        (_cfg({**good, "ble": {**good["ble"], "scan_mode": "loud"}}), "ble.scan_mode"),
        (_cfg({**good, "ble": {**good["ble"], "rssi_floor_dbm": 5}}), "ble.rssi_floor_dbm"),
    ]
    for msg, field in cases:
        with pytest.raises(NodeRuntimeConfigError) as exc:
            runtime_from_wire(msg, "boutique", "fr1")
        assert exc.value.field == field


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["ble", "rfid", "version", "store", "node", "x"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
            max_leaves=8,
        ),
    )
)
def test_runtime_from_wire_never_crashes_on_arbitrary_settings(settings_: dict) -> None:
    try:
        rt = runtime_from_wire(_cfg(settings_), "boutique", "fr1")
    except NodeRuntimeConfigError as exc:
        assert exc.field and exc.reason
    else:
        assert rt.node == "fr1" and rt.version == 3


class FakeScanner:
    instances: list[FakeScanner] = []

    def __init__(self, mode: str):
        self.mode, self.running = mode, False
        FakeScanner.instances.append(self)

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False


class FakeScanNode(BleNode):
    def make_scanner(self, mode: str):  # noqa: ANN201
        return FakeScanner(mode)


def _ibeacon_adv(rssi: int) -> tuple[BLEDevice, AdvertisementData]:
    mfr = {0x004C: encode_ibeacon(IBeacon(STORE_UUID, 1, 2, -59))}
    return BLEDevice("AA:BB:CC:DD:EE:FF", None, None), AdvertisementData(None, mfr, {}, [], None, rssi, ())


def test_scan_mode_change_restarts_the_scanner_and_rssi_floor_drops_weak_adverts(tmp_path) -> None:  # noqa: ANN001
    FakeScanner.instances.clear()
    node = FakeScanNode(node_file(1, "fr1", tmp_path, window_s=0.05, ibeacon_uuids=[STORE_UUID]))
    node.link.send = lambda kind, w: 0  # type: ignore[method-assign]  # no broker here: scanning only
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_until_complete, args=(node.run(stop),), daemon=True)
    t.start()
    try:
        wait_until(lambda: node.scanner_state == "scanning", 5, "scanning")
        assert [s.mode for s in FakeScanner.instances] == ["passive"]
        node.on_config(
            _cfg(fr1_runtime(7, scan_mode="active", rssi_floor_dbm=-70.0).model_dump(mode="json"), version=7)
        )
        wait_until(lambda: len(FakeScanner.instances) == 2 and FakeScanner.instances[1].running, 5, "rescan")
        assert FakeScanner.instances[1].mode == "active" and not FakeScanner.instances[0].running
        assert node.config_version == 7 and node.config_error is None
    finally:
        loop.call_soon_threadsafe(stop.set)
        t.join(timeout=5)
    node.agg.flush(0.0)
    node.on_advertisement(*_ibeacon_adv(-75))  # below the -70 floor: dropped, not even counted
    node.on_advertisement(*_ibeacon_adv(-60))
    w = node.agg.flush(1.0)
    assert [(o.id, o.n) for o in w.observations] == [(f"ibeacon:{STORE_UUID}:1:2", 1)]
    assert w.anonymous.adverts == 0


def test_pushed_rfid_power_and_region_go_to_the_node_s_readers(tmp_path) -> None:  # noqa: ANN001
    """The store's RFID settings replace the node file's: the running readers take them live
    (the driver side is tested against the virtual reader in test_rfid_node.py)."""
    cfg = node_file(1, "fr1", tmp_path).model_copy(
        update={"rfid": RfidSection(readers=[RfidReaderSection(url="socket://127.0.0.1:9", power_dbm=20.0)])}
    )
    node = BleNode(cfg)
    base = fr1_runtime(9)
    rfid = base.rfid.model_copy(update={"power_dbm": 26.0, "region": "usa"})  # type: ignore[union-attr]
    node.on_config(_cfg(base.model_copy(update={"rfid": rfid}).model_dump(mode="json"), version=9))
    assert node.config_version == 9 and node.config_error is None
    driver = node.rfid.drivers[0]  # type: ignore[union-attr]
    assert (driver.power_dbm, driver.region) == (26.0, codec.Region.USA)


def test_cpu_temperature_prefers_the_cpu_zone(tmp_path) -> None:  # noqa: ANN001
    assert read_cpu_temp(tmp_path / "none") is None
    for i, (kind, milli) in enumerate([("acpitz", "27800"), ("cpu-thermal", "48312"), ("gpu", "bad")]):
        z = tmp_path / f"thermal_zone{i}"
        z.mkdir()
        (z / "type").write_text(kind + "\n")
        (z / "temp").write_text(milli + "\n")
    assert read_cpu_temp(tmp_path) == pytest.approx(48.312)
    (tmp_path / "thermal_zone1" / "type").write_text("wifi\n")
    assert read_cpu_temp(tmp_path) == pytest.approx(27.8)  # no CPU zone: the first readable one


def test_status_json_carries_the_health_fields(tmp_path) -> None:  # noqa: ANN001
    node = BleNode(node_file(1, "fr1", tmp_path))
    body = json.loads(protocol.encode(node.link._status("online")))
    assert body["state"] == "online" and body["version"] and body["uptime_s"] >= 0
    assert body["scanner"] == "starting" and body["queue_depth"] == 0 and body["dropped"] == 0
    assert "config_version" not in body  # none applied yet (None is left out on the wire)
    node.queue.close()
