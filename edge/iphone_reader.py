"""The shell around `edge.iphone.IphoneTracker`: bleak connections to background iPhones.

Runs on the node's event loop (both advertisement paths call back there). Each connection finds
the phone, connects, reads the store app's identity characteristic and disconnects, all within
the tracker's `attempt_timeout_s`; any failure is a failed read for the tracker's back-off. The
identity read and then each further advertisement of that address are forwarded with their RSSI,
like any beacon.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from edge.iphone import IphoneTracker, parse_identity

log = logging.getLogger("instore.edge.iphone")

Forward = Callable[[str, float, float], None]  # (ident, rssi, time)


def address_text(device: str | bytes) -> str:
    """A bleak address from either path's device key (mgmt: 6 address bytes, little-endian, then the type)."""
    if isinstance(device, str):
        return device
    return ":".join(f"{b:02X}" for b in reversed(device[:6]))


class IphoneReader:
    def __init__(
        self,
        service_uuid: str,
        char_uuid: str,
        forward: Forward,
        clock: Callable[[], float],
        *,
        tracker: IphoneTracker | None = None,
        client_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.service_uuid, self.char_uuid, self.forward, self.clock = service_uuid, char_uuid, forward, clock
        self.tracker = tracker or IphoneTracker()
        self.client_factory = client_factory
        self.rssi: dict[str, float] = {}  # last RSSI per address, for the read's own observation
        self._tasks: set[asyncio.Task[None]] = set()

    def candidate(self, device: str | bytes, rssi: float) -> str | None:
        """An advertisement with the store app's overflow bit: its identity if already read (forward it)."""
        address = address_text(device)
        now = self.clock()
        self.rssi[address] = rssi
        ident, start = self.tracker.heard(address, now)
        self._spawn(start)
        return ident

    def expire(self) -> None:
        now = self.clock()
        self.tracker.expire(now)
        for address in [a for a in self.rssi if a not in self.tracker.addresses]:
            del self.rssi[address]

    def _spawn(self, addresses: list[str]) -> None:
        for address in addresses:
            task = asyncio.get_running_loop().create_task(self._read(address))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _read(self, address: str) -> None:
        ident = None
        try:
            async with asyncio.timeout(self.tracker.attempt_timeout_s):
                value = await self._connect_and_read(address)
            ident = parse_identity(value)
            if ident is None:
                log.info("identity of %d bytes from an overflow candidate: not the store app", len(value))
        except Exception as exc:  # noqa: BLE001  (any bleak/D-Bus/timeout failure: the tracker backs off)
            log.debug("identity read failed: %s", exc)
        now = self.clock()
        self._spawn(self.tracker.done(address, ident, now))
        if ident is not None:
            self.forward(ident, self.rssi.get(address, -100.0), now)

    async def _connect_and_read(self, address: str) -> bytes:
        if self.client_factory is None:
            from bleak import BleakClient

            self.client_factory = BleakClient
        client = self.client_factory(address, timeout=self.tracker.attempt_timeout_s)
        await client.connect()
        try:
            if client.services.get_service(self.service_uuid) is None:
                return b""  # another app's service set the same bit: not the store app (a failed read)
            return bytes(await client.read_gatt_char(self.char_uuid))
        finally:
            await client.disconnect()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
