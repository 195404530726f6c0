"""BlueZ scan control without advertisement signals, for nodes reading the kernel's socket.

bleak's scanner unpacks every BlueZ device signal even with no callback; a node reading the
management socket (`edge.mgmt_source`) needs D-Bus only to start and stop the scan, so this does
that on a connection subscribed to nothing. It has a bleak scanner's start/stop shape, so
`edge.scanning.ScannerStarter` runs it the same way.
"""

from __future__ import annotations

import os

from bleak.backends.bluezdbus.advertisement_monitor import AdvertisementMonitor
from bleak.exc import BleakError
from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from edge.scanning import beacon_or_patterns

BLUEZ = "org.bluez"
#: The adapter bleak scans with by default, and whose events `edge.mgmt_source` reads (hci0).
ADAPTER_PATH = "/org/bluez/hci0"
ADAPTER = "org.bluez.Adapter1"
MONITOR_MANAGER = "org.bluez.AdvertisementMonitorManager1"
UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"


class BlueZScanControl:
    """Starts and stops a passive (advertisement monitor) or active (discovery) scan on hci0."""

    def __init__(self, mode: str, rssi_floor: float | None = None) -> None:
        self.mode, self.rssi_floor = mode, rssi_floor
        self.bus: MessageBus | None = None
        self.monitor_path = f"/org/instore/scan{os.getpid()}_{id(self)}"

    async def _call(self, interface: str, member: str, signature: str = "", body: list | None = None) -> Message:
        assert self.bus is not None
        msg = Message(destination=BLUEZ, path=ADAPTER_PATH, interface=interface, member=member,
                      signature=signature, body=body or [])
        reply = await self.bus.call(msg)
        assert reply is not None
        return reply

    async def _ok(self, interface: str, member: str, signature: str = "", body: list | None = None) -> None:
        reply = await self._call(interface, member, signature, body)
        if reply.message_type == MessageType.ERROR:
            raise BleakError(f"BlueZ {member}: [{reply.error_name}] {' '.join(map(str, reply.body))}")

    async def start(self) -> None:
        self.bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        try:
            if self.mode == "passive":
                reply = await self._call(MONITOR_MANAGER, "RegisterMonitor", "o", [self.monitor_path])
                if reply.message_type == MessageType.ERROR and reply.error_name == UNKNOWN_METHOD:
                    raise BleakError("passive scanning on Linux requires BlueZ >= 5.56 with --experimental enabled")
                if reply.message_type == MessageType.ERROR:
                    raise BleakError(f"BlueZ RegisterMonitor: [{reply.error_name}] {reply.body}")
                self.bus.export(self.monitor_path, AdvertisementMonitor(beacon_or_patterns()))
            else:
                filters = {"Transport": Variant("s", "le"), "DuplicateData": Variant("b", False)}
                if self.rssi_floor is not None:  # the kernel drops weaker devices (no events for them)
                    filters["RSSI"] = Variant("n", int(self.rssi_floor))
                await self._ok(ADAPTER, "SetDiscoveryFilter", "a{sv}", [filters])
                await self._ok(ADAPTER, "StartDiscovery")
        except BaseException:
            self.bus.disconnect()
            self.bus = None
            raise

    async def stop(self) -> None:
        """Stop the scan; closing the connection would too (BlueZ ends a client's scan when it leaves)."""
        if self.bus is None:
            return
        try:
            if self.mode == "passive":
                await self._call(MONITOR_MANAGER, "UnregisterMonitor", "o", [self.monitor_path])
            else:
                await self._call(ADAPTER, "StopDiscovery")
        finally:
            self.bus.disconnect()
            self.bus = None
