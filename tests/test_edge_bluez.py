"""The node on bleak's real BlueZ backend, against a stand-in `bluetoothd` on a private D-Bus:
passive scanning with the beacon patterns where BlueZ offers it, active scanning where not; and
bleak's client connecting to a simulated phone and reading a characteristic."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
import time

import pytest
from bleak import BleakClient
from bleak.exc import BleakDBusError

from edge.ble.frames import EddystoneEID, IBeacon, encode_eddystone, encode_ibeacon
from edge.config import BleSection, BrokerSection, NodeFile, NodeSection
from edge.node import BleNode
from instore.broker import free_port
from sim.bluez_standin import Peripheral, PrivateBus, StandInBlueZ
from tests.test_edge_mgmt import EDDYSTONE as EDDYSTONE_RAW
from tests.test_edge_mgmt import IBEACON as IBEACON_RAW
from tests.test_edge_mgmt import PHONE as PHONE_RAW
from tests.test_edge_mgmt import device_found

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or shutil.which("dbus-daemon") is None, reason="needs Linux and dbus-daemon"
)

STORE_UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
EID = bytes.fromhex("0123456789abcdef")
EDDYSTONE = "0000feaa-0000-1000-8000-00805f9b34fb"
ADVERTS = [  # (address, rssi, manufacturer data, service data)
    ("02:00:00:00:00:01", -60, {0x004C: encode_ibeacon(IBeacon(STORE_UUID, 1, 7, -59))}, {}),
    ("02:00:00:00:00:02", -70, {}, {EDDYSTONE: encode_eddystone(EddystoneEID(-20, EID))}),
    ("02:00:00:00:00:03", -65, {0x004C: bytes.fromhex("1005031c2a0b5e")}, {}),  # a phone: never forwarded
]


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    private = PrivateBus()
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", private.address)
    yield private
    private.close()


def scan(bus: PrivateBus, passive: bool) -> tuple[BleNode, StandInBlueZ]:
    """Start the node's scanner on the stand-in, send every advert twice, stop."""
    node = BleNode(NodeFile(node=NodeSection(store="s1", id="n1"), ble=BleSection(ibeacon_uuids=[STORE_UUID])))

    async def go() -> StandInBlueZ:
        bluez = await StandInBlueZ(bus.address, passive=passive).start()
        try:
            scanner = await node._start_scanner()  # noqa: SLF001
            for _ in range(100):  # the stand-in reads the monitor's patterns just after it registers
                if bluez.discovering or any(p is not None for p in bluez.monitors.values()):
                    break
                await asyncio.sleep(0.01)
            for _ in range(2):  # first InterfacesAdded, then PropertiesChanged
                for addr, rssi, mfr, svc in ADVERTS:
                    bluez.advertise(addr, rssi, mfr, svc)
            await asyncio.sleep(0.3)
            await scanner.stop()
        finally:
            bluez.close()
        return bluez

    return node, asyncio.run(go())


def test_passive_scan_on_bluez_forwards_the_beacons_and_keeps_phones_off_dbus(bus: PrivateBus) -> None:
    node, bluez = scan(bus, passive=True)
    assert node.scanner_state == "scanning"
    assert "org.bluez.AdvertisementMonitorManager1.RegisterMonitor" in bluez.calls
    assert "org.bluez.Adapter1.StartDiscovery" not in bluez.calls
    assert bluez.signals == 4  # the two beacons, twice: the phone matched no pattern
    window = node.agg.flush(1e9)
    assert {(o.id, o.n) for o in window.observations} == {
        (f"ibeacon:{STORE_UUID}:1:7", 2),
        (f"eid:{EID.hex()}", 2),
    }
    assert window.anonymous.adverts == 0


def test_bluez_without_experimental_falls_back_to_active_scanning(bus: PrivateBus) -> None:
    node, bluez = scan(bus, passive=False)
    assert node.scanner_state == "scanning active (passive refused)"
    assert "org.bluez.Adapter1.StartDiscovery" in bluez.calls
    assert bluez.signals == 6
    window = node.agg.flush(1e9)
    assert len(window.observations) == 2
    assert window.anonymous.adverts == 2 and window.anonymous.devices == 1


# The identity read of the carriers issue: a phone running the store's app in the background.
IDENTITY_SERVICE = "6e400000-b5a3-f393-e0a9-e50e24dcca9e"
IDENTITY_CHAR = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"


def connect_and_read(bus: PrivateBus, phone: Peripheral) -> tuple[bytes, float, StandInBlueZ]:
    """bleak's own BlueZ backend: find the phone, connect, read the identity, disconnect."""

    async def go() -> tuple[bytes, float, StandInBlueZ]:
        bluez = await StandInBlueZ(bus.address, peripherals=(phone,)).start()
        try:
            client = BleakClient(phone.address, timeout=10.0)
            t0 = time.monotonic()
            await client.connect()
            connect_s = time.monotonic() - t0
            try:
                value = await client.read_gatt_char(IDENTITY_CHAR)
            finally:
                await client.disconnect()
        finally:
            bluez.close()
        return bytes(value), connect_s, bluez

    return asyncio.run(go())


def test_bleak_connects_through_its_bluez_backend_and_reads_a_characteristic(bus: PrivateBus) -> None:
    phone = Peripheral("02:00:00:00:01:01", {IDENTITY_SERVICE: {IDENTITY_CHAR: b"\x01token-42"}}, connect_s=0.2)
    value, connect_s, bluez = connect_and_read(bus, phone)
    assert value == b"\x01token-42"
    assert connect_s >= 0.2  # the peripheral's connection time
    assert "org.bluez.Device1.Connect" in bluez.calls and "org.bluez.GattCharacteristic1.ReadValue" in bluez.calls
    assert "org.bluez.Device1.Disconnect" in bluez.calls and bluez.connected == set()


def test_a_failed_connection_is_a_clear_bluez_error(bus: PrivateBus) -> None:
    phone = Peripheral("02:00:00:00:01:02", {IDENTITY_SERVICE: {IDENTITY_CHAR: b"x"}}, failure_probability=1.0)
    with pytest.raises(BleakDBusError, match=r"org\.bluez\.Error\.Failed.*le-connection-abort-by-remote"):
        connect_and_read(bus, phone)


@pytest.mark.parametrize("passive", [True, False])
def test_with_the_kernel_socket_dbus_only_controls_the_scan(bus: PrivateBus, passive: bool) -> None:
    """BlueZ still signals the beacons, but the node counts each advertisement once, from the socket."""
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    cfg = NodeFile(
        node=NodeSection(store="s1", id="n1"),
        broker=BrokerSection(port=free_port()),  # nobody listens: windows stay queued
        ble=BleSection(ibeacon_uuids=[STORE_UUID], window_s=0.05),
    )
    node = BleNode(cfg, advert_socket=lambda: ours)

    async def go() -> StandInBlueZ:
        bluez = await StandInBlueZ(bus.address, passive=passive).start()
        stop = asyncio.Event()
        task = asyncio.create_task(node.run(stop))
        try:
            for _ in range(300):  # passive: the stand-in reads the monitor's patterns just after it registers
                if bluez.discovering or any(p is not None for p in bluez.monitors.values()):
                    break
                await asyncio.sleep(0.01)
            for addr, rssi, mfr, svc in ADVERTS:
                bluez.advertise(addr, rssi, mfr, svc)
            for addr, rssi, raw in (
                ("02:00:00:00:00:01", -60, IBEACON_RAW),
                ("02:00:00:00:00:02", -70, EDDYSTONE_RAW),
                ("02:00:00:00:00:03", -65, PHONE_RAW),
            ):
                kernel.send(device_found(addr, rssi, raw))
            for _ in range(100):
                await asyncio.sleep(0.01)
                if node.adverts >= 3:
                    break
            await asyncio.sleep(0.1)  # time for any D-Bus signal that would count twice
        finally:
            stop.set()
            await task
            bluez.close()
            kernel.close()
        return bluez

    bluez = asyncio.run(go())
    assert bluez.signals == (2 if passive else 3)  # BlueZ signals; the node does not listen
    assert node.adverts == 3
    expected = ["RegisterMonitor", "UnregisterMonitor"] if passive else ["StartDiscovery", "StopDiscovery"]
    assert [c.rsplit(".", 1)[1] for c in bluez.calls if c.rsplit(".", 1)[1] in expected] == expected
