"""Advertisements from the kernel's Bluetooth management socket: real mgmt event bytes (built as
BlueZ's mgmt-api documents them) through a socketpair into the node's windows, malformed events
counted and skipped, and the D-Bus path kept where the socket cannot be used."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from bleak.backends.scanner import BaseBleakScanner
from pydantic import ValidationError

from edge.ble.frames import EddystoneEID, IBeacon, encode_raw_advertising
from edge.ble.mgmt import DeviceFound, MgmtEventError, eir_data, parse_event
from edge.config import BleSection, BrokerSection, NodeConfigError, NodeFile, NodeSection, load_node_config
from edge.mgmt_source import MgmtSource, MgmtSourceError, choose_source, has_net_admin
from edge.node import BleNode
from instore.broker import free_port

STORE_UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
EID = bytes.fromhex("0123456789abcdef")
IBEACON = encode_raw_advertising([IBeacon(STORE_UUID, 1, 7, -59)])
EDDYSTONE = encode_raw_advertising([EddystoneEID(-20, EID)])
PHONE = bytes.fromhex("020106") + bytes.fromhex("0aff4c001005031c2a0b5e")  # an iPhone nearby: counted only


def event(code: int, params: bytes, index: int = 0) -> bytes:
    """A management event: code, controller index, parameter length (little-endian), parameters."""
    return struct.pack("<HHH", code, index, len(params)) + params


def device_found(addr: str, rssi: int, eir: bytes, *, index: int = 0, monitor: int | None = None) -> bytes:
    """Device Found (0x0012), or Advertisement Monitor Device Found (0x002F) with a monitor handle:
    address (6, least significant byte first), address type (1: LE random = 2), RSSI (1), flags (4),
    EIR length (2), EIR."""
    params = bytes.fromhex(addr.replace(":", ""))[::-1] + struct.pack("<BbIH", 2, rssi, 0, len(eir)) + eir
    if monitor is None:
        return event(0x0012, params, index)
    return event(0x002F, struct.pack("<H", monitor) + params, index)


def node() -> BleNode:
    cfg = NodeFile(node=NodeSection(store="s1", id="n1"), ble=BleSection(ibeacon_uuids=[STORE_UUID]))
    return BleNode(cfg)


def feed(n: BleNode, events: list[bytes]) -> MgmtSource:
    """Send `events` through a socketpair into a MgmtSource feeding `n`, as the kernel would."""
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    source = MgmtSource(ours, n.on_advert)

    async def go() -> None:
        source.start(asyncio.get_running_loop())
        for ev in events:
            kernel.send(ev)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if source.events + source.malformed >= sum(1 for e in events if e[:2] in (b"\x12\x00", b"\x2f\x00")):
                break
        source.stop()

    try:
        asyncio.run(go())
    finally:
        kernel.close()
    return source


def test_device_found_events_become_the_same_window_as_bleak_callbacks() -> None:
    n = node()
    source = feed(n, [
        device_found("02:00:00:00:00:01", -60, IBEACON),
        device_found("02:00:00:00:00:02", -70, EDDYSTONE, monitor=0),  # passive scanning's event
        device_found("02:00:00:00:00:03", -65, PHONE),
        device_found("02:00:00:00:00:01", -62, IBEACON, monitor=1),
        device_found("02:00:00:00:00:03", -66, PHONE),
    ])
    assert (source.events, source.malformed) == (5, 0)
    window = n.agg.flush(1e9)
    assert {(o.id, o.n) for o in window.observations} == {(f"ibeacon:{STORE_UUID}:1:7", 2), (f"eid:{EID.hex()}", 1)}
    assert (window.anonymous.adverts, window.anonymous.devices) == (2, 1)
    ibeacon = next(o for o in window.observations if o.id.startswith("ibeacon"))
    assert ibeacon.rssi_max == -60


def test_parsed_event_carries_address_rssi_and_the_dicts_bleak_would_have() -> None:
    ev = parse_event(device_found("C0:FF:EE:00:00:2A", -77, IBEACON + EDDYSTONE))
    assert isinstance(ev, DeviceFound)
    assert (ev.address_str, ev.address_type, ev.rssi, ev.index) == ("C0:FF:EE:00:00:2A", 2, -77, 0)
    mfr, svc = eir_data(ev.eir)
    assert mfr[0x004C][:2] == bytes((0x02, 0x15))
    assert list(svc) == ["0000feaa-0000-1000-8000-00805f9b34fb"]


def test_other_events_and_other_controllers_are_ignored() -> None:
    assert parse_event(event(0x0006, bytes(4))) is None  # New Settings: not an advertisement
    assert parse_event(event(0x0006, bytes(4000))[:2048]) is None  # another kind, cut short by the read size
    n = node()
    source = feed(n, [device_found("02:00:00:00:00:01", -60, IBEACON, index=1)])  # hci1, not hci0
    assert source.events == 0 and n.agg.flush(1e9).observations == []


MALFORMED = {
    "header": bytes.fromhex("1200"),
    "parameter length": event(0x0012, bytes(20))[:-3],
    "fixed part": event(0x0012, bytes(10)),
    "EIR length": device_found("02:00:00:00:00:09", -60, IBEACON)[:-1],
    "AD structure": device_found("02:00:00:00:00:09", -60, IBEACON[:-3]),  # a beacon cut short
}


@pytest.mark.parametrize("kind", MALFORMED)
def test_a_malformed_event_names_its_byte(kind: str) -> None:
    with pytest.raises((MgmtEventError, ValueError), match=r"byte \d+|offset"):
        ev = parse_event(MALFORMED[kind])
        assert ev is not None
        eir_data(ev.eir)


def test_malformed_events_are_counted_and_logged_and_good_ones_around_them_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    n = node()
    good = device_found("02:00:00:00:00:01", -60, IBEACON)
    with caplog.at_level(logging.WARNING, logger="instore.edge.mgmt"):
        source = feed(n, [good, *MALFORMED.values(), good])
    assert (source.events, source.malformed) == (2, len(MALFORMED))
    assert [o.n for o in n.agg.flush(1e9).observations] == [2]
    warnings = [r.getMessage() for r in caplog.records if r.name == "instore.edge.mgmt"]
    assert len(warnings) == 1 and "malformed management event (1 so far)" in warnings[0]
    assert "byte 2" in warnings[0]  # the first one: its header stops after 2 bytes


class RecordingLoop:
    """The three event-loop calls MgmtSource makes, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def add_reader(self, fd: int, callback: Any) -> None:
        self.calls.append(("add_reader", fd))

    def remove_reader(self, fd: int) -> None:
        self.calls.append(("remove_reader", fd))

    def call_later(self, delay: float, callback: Any) -> None:
        self.calls.append(("call_later", delay))


def test_one_wake_up_reads_every_waiting_event_then_rests() -> None:
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    n, loop = node(), RecordingLoop()
    source = MgmtSource(ours, n.on_advert, coalesce_s=0.02)
    with ours, kernel:
        source.start(loop)  # type: ignore[arg-type]  # duck-typed loop
        for i in range(3):
            kernel.send(device_found(f"02:00:00:00:00:0{i}", -60, IBEACON))
        source.drain()
        assert source.events == 3
        fd = ours.fileno()
        assert loop.calls == [("add_reader", fd), ("remove_reader", fd), ("call_later", 0.02)]


def test_other_devices_are_counted_without_splitting_their_advertisement() -> None:
    """Only what could be a store beacon is parsed; a phone's broken AD structure is still one phone."""
    n = node()
    source = feed(n, [device_found("02:00:00:00:00:03", -65, PHONE + bytes.fromhex("1aff4c00"))])
    assert (source.events, source.malformed) == (1, 0)
    window = n.agg.flush(1e9)
    assert window.observations == [] and (window.anonymous.adverts, window.anonymous.devices) == (1, 1)


def refuse() -> Any:
    raise PermissionError(1, "Operation not permitted")


def test_auto_falls_back_to_dbus_when_the_socket_cannot_be_opened(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="instore.edge.mgmt"):
        assert choose_source("auto", opener=refuse, capable=lambda: True) is None
        assert choose_source("auto", opener=socket.socket, capable=lambda: False) is None
    assert [r.getMessage() for r in caplog.records] == [
        "advertisements over D-Bus: the socket cannot be opened ([Errno 1] Operation not permitted) "
        "(see docs/deploy.md)",
        "advertisements over D-Bus: the node lacks CAP_NET_ADMIN (see docs/deploy.md)",
    ]
    with pytest.raises(MgmtSourceError, match="CAP_NET_ADMIN"):
        choose_source("mgmt", opener=refuse, capable=lambda: False)
    assert choose_source("dbus", opener=refuse, capable=lambda: True) is None
    a, b = socket.socketpair()
    with a, b:
        assert choose_source("auto", opener=lambda: a, capable=lambda: True) is a


def test_capability_is_read_from_the_effective_set(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nCapEff:\t0000000000001000\n")  # bit 12: CAP_NET_ADMIN only
    assert has_net_admin(status)
    status.write_text("Name:\tpython\nCapEff:\t0000000000000000\n")
    assert not has_net_admin(status)
    assert not has_net_admin(tmp_path / "missing")


def test_source_is_validated_like_the_other_keys(tmp_path: Path) -> None:
    assert BleSection().source == "auto"
    with pytest.raises(ValidationError, match="source"):
        BleSection(source="kernel")
    path = tmp_path / "node.toml"
    path.write_text('[node]\nstore = "s1"\nid = "n1"\n\n[ble]\nsource = "hci"\n')
    with pytest.raises(NodeConfigError, match=r"node\.toml: ble\.source: Input should be 'auto', 'mgmt' or 'dbus'"):
        load_node_config(path)


class ControlOnly(BaseBleakScanner):
    """A scanner backend that records the callback bleak gave it (none, with the mgmt path)."""

    callbacks: list[Any] = []

    def __init__(self, callback: Any, uuids: Any, scanning_mode: str = "active", **kwargs: Any) -> None:
        super().__init__(callback, uuids)
        ControlOnly.callbacks.append(callback)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def test_running_node_reads_adverts_from_the_socket_and_bleak_only_controls() -> None:
    ControlOnly.callbacks.clear()
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    cfg = NodeFile(
        node=NodeSection(store="s1", id="n1"),
        broker=BrokerSection(port=free_port()),  # nobody listens: windows stay queued
        ble=BleSection(backend="tests.test_edge_mgmt:ControlOnly", ibeacon_uuids=[STORE_UUID], window_s=0.05),
    )
    n = BleNode(cfg, advert_socket=lambda: ours)

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(n.run(stop))
        while n.mgmt is None:
            await asyncio.sleep(0.01)
        kernel.send(device_found("02:00:00:00:00:01", -60, IBEACON))
        kernel.send(b"\x12\x00")
        for _ in range(200):
            if n.queue.depth >= 1 and n.adverts == 1 and n.mgmt.malformed == 1:
                break
            await asyncio.sleep(0.01)
        assert "(mgmt, 1 malformed events)" in n._health()["scanner"]  # noqa: SLF001
        stop.set()
        await task

    with kernel:
        asyncio.run(go())
    assert ControlOnly.callbacks == [None]  # bleak's own callbacks would count each advert twice
    assert n.adverts == 1 and n.queue.depth >= 1


def test_the_edge_unit_grants_only_what_the_management_socket_needs() -> None:
    unit = (Path(__file__).resolve().parents[1] / "deploy" / "instore-edge.service").read_text()
    lines = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert lines["AmbientCapabilities"] == lines["CapabilityBoundingSet"] == "CAP_NET_ADMIN"
    assert "AF_BLUETOOTH" in lines["RestrictAddressFamilies"].split()
    assert lines["User"] == "instore" and lines["NoNewPrivileges"] == "yes"
