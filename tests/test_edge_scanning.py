"""Scanning on a real node: passive with BlueZ patterns for the store's beacons, active as a
logged fallback, the backend chosen by an import string."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import pytest
from bleak.args.bluez import OrPattern
from bleak.backends.scanner import BaseBleakScanner
from bleak.exc import BleakError
from pydantic import ValidationError

from edge.ble.frames import EddystoneEID, EddystoneUID, IBeacon, encode_raw_advertising, split_ad_structures
from edge.config import BleSection, NodeFile, NodeSection
from edge.node import BleNode
from edge.scanning import ScannerStarter, beacon_or_patterns, bluez_args, resolve_backend

STORE_UUID = "f7826da6-4fa2-4e98-8024-bc5b71e0893e"
REFUSING = "tests.test_edge_scanning:RefusingScanner"


def matches(patterns: list[OrPattern], raw: bytes) -> bool:
    """BlueZ's or_patterns rule: some AD structure of the type holds the content at the position."""
    return any(
        ad_type == p.ad_data_type and data[p.start_position : p.start_position + len(p.content_of_pattern)]
        == p.content_of_pattern
        for _, ad_type, data in split_ad_structures(raw)
        for p in patterns
    )


def test_patterns_pass_the_store_s_beacons_and_nothing_else() -> None:
    patterns = beacon_or_patterns()
    assert matches(patterns, encode_raw_advertising([IBeacon(STORE_UUID, 1, 2, -59)]))
    assert matches(patterns, encode_raw_advertising([EddystoneEID(-20, bytes(8))]))
    assert matches(patterns, encode_raw_advertising([EddystoneUID(-20, "ab" * 10, "cd" * 6)]))
    apple_nearby = bytes.fromhex("020106") + bytes.fromhex("0aff4c001005031c2a0b5e")  # an iPhone, not a beacon
    assert not matches(patterns, apple_nearby)
    other_service = bytes.fromhex("020106") + bytes.fromhex("05166ffd0102")  # exposure notification
    assert not matches(patterns, other_service)


def test_rssi_floor_goes_to_bluez_discovery_filter() -> None:
    assert "filters" not in bluez_args(None)
    assert bluez_args(-80.0)["filters"] == {"RSSI": -80}


@pytest.mark.skipif(sys.platform != "linux", reason="bleak's BlueZ backend exists on Linux only")
def test_default_passive_scanner_is_built_with_bluez_patterns(tmp_path) -> None:  # noqa: ANN001
    """bleak's BlueZ backend raised "passive scanning mode requires bluez or_patterns" here."""
    node = BleNode(NodeFile(node=NodeSection(store="s1", id="n1")))
    assert node.scan_mode == "passive"
    scanner = node.make_scanner("passive")
    assert scanner._backend._or_patterns == beacon_or_patterns()  # noqa: SLF001


class RefusingScanner(BaseBleakScanner):
    """A backend that scans only actively, like BlueZ without --experimental."""

    started: list[str] = []

    def __init__(self, callback: Any, uuids: Any, scanning_mode: str = "active", **kwargs: Any) -> None:
        super().__init__(callback, uuids)
        self.mode = scanning_mode

    async def start(self) -> None:
        if self.mode == "passive":
            raise BleakError("passive scanning on Linux requires BlueZ >= 5.56 with --experimental enabled")
        RefusingScanner.started.append(self.mode)

    async def stop(self) -> None:
        pass


def test_refused_passive_scan_falls_back_to_active_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    RefusingScanner.started.clear()
    node = BleNode(NodeFile(node=NodeSection(store="s1", id="n1"), ble=BleSection(backend=REFUSING)))

    async def twice() -> None:
        await node._start_scanner()  # noqa: SLF001
        await node._start_scanner()  # a restart (new config) does not try, nor warn, again

    with caplog.at_level(logging.WARNING, logger="instore.edge.scan"):
        asyncio.run(twice())
    assert RefusingScanner.started == ["active", "active"]
    assert node.scanner_state == "scanning active (passive refused)"
    warnings = [r for r in caplog.records if r.name == "instore.edge.scan"]
    assert len(warnings) == 1 and "--experimental" in warnings[0].getMessage()


class NoAdapterScanner(RefusingScanner):
    """A backend on a node whose Bluetooth adapter is gone."""

    async def start(self) -> None:
        raise BleakError("no Bluetooth adapter")


def test_a_scanner_that_cannot_start_still_stops_the_link_and_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    ble = BleSection(backend=__name__ + ":NoAdapterScanner")
    node = BleNode(NodeFile(node=NodeSection(store="s1", id="n1"), ble=ble))
    stopped: list[str] = []
    monkeypatch.setattr(node.link, "start", lambda: None)  # no broker needed
    monkeypatch.setattr(node.link, "stop", lambda: stopped.append("link"))
    monkeypatch.setattr(node.queue, "close", lambda: stopped.append("queue"))
    with pytest.raises(BleakError, match="no Bluetooth adapter"):
        asyncio.run(node.run(asyncio.Event()))
    assert stopped == ["link", "queue"] and node.scanner_state == "stopped"


def test_active_start_failure_is_not_hidden() -> None:
    async def broken(mode: str) -> Any:
        raise BleakError("no adapter")

    class Broken:
        def __init__(self, mode: str) -> None:
            self.start = lambda: broken(mode)

    with pytest.raises(BleakError, match="no adapter"):
        asyncio.run(ScannerStarter(Broken).start("active"))  # type: ignore[arg-type]  # duck-typed scanner


def test_backend_is_bleak_or_an_import_string() -> None:
    assert resolve_backend("bleak") is None
    assert resolve_backend(REFUSING) is RefusingScanner
    with pytest.raises(TypeError, match="not a bleak scanner backend"):
        resolve_backend("edge.scanning:ScannerStarter")
    with pytest.raises(ValidationError, match="backend"):
        BleSection(backend="sim")
