"""How the node asks bleak to scan: passive with BlueZ `or_patterns`, active as the fallback.

The patterns are the store's two beacon formats, so BlueZ drops other devices before D-Bus; where
passive scanning is impossible the node scans actively with one warning (docs/deploy.md,
"Bluetooth: passive scanning needs BlueZ's experimental interfaces"). The backend may be a
`module:Class` string (the simulator's), so the node imports no simulator code.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Protocol

from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.scanner import BaseBleakScanner

from edge.ble.frames import APPLE_COMPANY_ID, EDDYSTONE_UUID16, IBEACON_LENGTH, IBEACON_TYPE

log = logging.getLogger("instore.edge.scan")

#: Eddystone's service data AD structure opens with its 16-bit UUID 0xFEAA, little-endian.
EDDYSTONE_SERVICE_DATA = EDDYSTONE_UUID16.to_bytes(2, "little")
#: An iBeacon's manufacturer data opens with Apple's company id (little-endian), type 0x02, length 0x15.
IBEACON_PREFIX = APPLE_COMPANY_ID.to_bytes(2, "little") + bytes((IBEACON_TYPE, IBEACON_LENGTH))
#: The platform's own bleak backend (BlueZ on a Pi).
PLATFORM_BACKEND = "bleak"


class Scanner(Protocol):
    """What the node needs of a scanner: bleak's, or BlueZ scan control alone (`edge.bluez_control`)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def beacon_or_patterns() -> list[OrPattern | tuple[int, AdvertisementDataType, bytes]]:
    """BlueZ advertisement-monitor patterns matching the store's beacon formats (any one suffices)."""
    return [
        OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, EDDYSTONE_SERVICE_DATA),
        OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, IBEACON_PREFIX),
    ]


def bluez_args(rssi_floor: float | None) -> BlueZScannerArgs:
    """BlueZ arguments for either mode: the patterns for passive, the RSSI floor for active.

    Other backends ignore them, so they are always passed.
    """
    args = BlueZScannerArgs(or_patterns=beacon_or_patterns())
    if rssi_floor is not None:  # BlueZ drops weaker devices before they cross D-Bus (active scans)
        args["filters"] = {"RSSI": int(rssi_floor)}
    return args


def resolve_backend(name: str) -> type[BaseBleakScanner] | None:
    """None for the platform's backend, else the class an import string `module:Class` names."""
    if name == PLATFORM_BACKEND:
        return None
    module, _, attr = name.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, BaseBleakScanner)):
        raise TypeError(f"ble.backend: {name!r} is not a bleak scanner backend")
    return cls


class ScannerStarter:
    """Starts scanners in the mode asked for, falling back to active once passive was refused."""

    def __init__(self, make: Callable[[str], Scanner]):
        self.make = make
        self.passive_refused: str | None = None  # why passive failed, once it has

    async def start(self, mode: str) -> tuple[Scanner, str]:
        """A started scanner and the mode it really scans in."""
        if mode == "passive" and self.passive_refused is None:
            try:
                scanner = self.make("passive")
                await scanner.start()
                return scanner, "passive"
            except Exception as exc:  # noqa: BLE001 - any refusal means: scan actively instead
                self.passive_refused = str(exc) or type(exc).__name__
                log.warning(
                    "passive scanning not possible (%s); scanning actively instead "
                    "(see docs/deploy.md: BlueZ >= 5.56 started with --experimental)",
                    self.passive_refused,
                )
        scanner = self.make("active")
        await scanner.start()
        return scanner, "active"
