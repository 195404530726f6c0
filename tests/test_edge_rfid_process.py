"""An RFID-only edge node end to end: a virtual reader on a pty -> the node (`[rfid]` readers,
BLE off) -> real Mosquitto -> RfidWindows on the node's rfid topic, reader health in its status."""

from __future__ import annotations

import asyncio
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge import protocol
from edge.config import BleSection, BrokerSection, NodeFile, NodeSection, RfidReaderSection, RfidSection
from edge.node import BleNode
from sim.rfid_reader import ReaderCore, VirtualReaderPty

pytestmark = pytest.mark.slow

EPC = bytes.fromhex("3074257bf7194e4000001a85")


def test_rfid_node_publishes_tag_windows_and_reader_health(mosquitto) -> None:  # noqa: ANN001
    got: dict[str, list] = {"rfid": [], "status": [], "ble": []}
    sub = mqtt.Client(CallbackAPIVersion.VERSION2)
    sub.on_message = lambda c, u, m: got[protocol.parse_node_topic(m.topic)[2]].append(
        protocol.decode_topic(m.topic, m.payload)[1])
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe(protocol.node_filter("boutique", "+", "shelf-1"), qos=1)
    sub.loop_start()
    with VirtualReaderPty(ReaderCore(lambda now: [(EPC, -52)])) as pty:
        cfg = NodeFile(
            node=NodeSection(store="boutique", id="shelf-1"),
            broker=BrokerSection(port=mosquitto.port),
            ble=BleSection(enabled=False),
            rfid=RfidSection(readers=[RfidReaderSection(url=pty.link_path, antenna=2)]),
        )
        node = BleNode(cfg)
        stop = asyncio.Event()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(node.run(stop),), daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(w.observations for w in got["rfid"]):
            time.sleep(0.1)
        node.link.publish_status()
        time.sleep(0.5)
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=15)
    sub.loop_stop()
    seen = [o for w in got["rfid"] for o in w.observations]
    assert seen and {(o.epc, o.ant) for o in seen} == {(EPC.hex(), 2)}
    assert all(o.rssi_max == -52 for o in seen)
    assert got["ble"] == []  # BLE off: no empty heartbeat windows
    online = [s for s in got["status"] if s.state == "online"]
    assert online and online[-1].reader is not None and online[-1].scanner == "disabled"
