"""Pure parser for the kernel's Bluetooth management events that carry advertisements.

Device Found (0x0012) and Advertisement Monitor Device Found (0x002F), little-endian after a
6-byte header; the EIR bytes are split into the dicts bleak's `AdvertisementData` has, so both
paths classify with the same code. Reading them skips D-Bus and bleak (docs/deploy.md,
"Bluetooth: advertisements from the kernel's management socket"). Errors name the byte offset.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from edge.ble.frames import AD_MANUFACTURER_DATA, AD_SERVICE_DATA_16, BleFrameError, split_ad_structures

MGMT_HEADER = struct.Struct("<HHH")  # event code, controller index, parameter length
MGMT_EV_DEVICE_FOUND = 0x0012
MGMT_EV_ADV_MONITOR_DEVICE_FOUND = 0x002F
#: address(6) type(1) rssi(1) flags(4) eir_len(2): the fixed part of a Device Found event.
DEVICE_FOUND = struct.Struct("<6sBbIH")
MONITOR_HANDLE_LEN = 2
#: The RSSI value the kernel sends when the controller gave none.
RSSI_UNKNOWN = 127
AD_SERVICE_DATA_32 = 0x20
AD_SERVICE_DATA_128 = 0x21
BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"


class MgmtEventError(ValueError):
    """A malformed or truncated management event; `offset` is the byte at fault."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"byte {offset}: {reason}")
        self.offset, self.reason = offset, reason


@dataclass(frozen=True, slots=True)
class DeviceFound:
    """One advertisement as the kernel reported it."""

    index: int  # controller index (0 is hci0)
    address: bytes  # 6 bytes, as sent: least significant first
    address_type: int  # 0 BR/EDR, 1 LE public, 2 LE random
    rssi: int | None  # dBm; None when the controller gave none
    flags: int
    eir: bytes

    @property
    def address_str(self) -> str:
        """`AA:BB:CC:DD:EE:FF`, most significant first, as BlueZ and bleak write it."""
        return ":".join(f"{b:02X}" for b in reversed(self.address))


def parse_event(buf: bytes) -> DeviceFound | None:
    """One event read from the control channel -> DeviceFound, or None for any other event.

    Raises MgmtEventError for a truncated header, or a device-found event whose parameter
    length, fields or EIR length disagree with the bytes read.
    """
    if len(buf) < MGMT_HEADER.size:
        raise MgmtEventError(len(buf), f"event header truncated: {len(buf)} of {MGMT_HEADER.size} bytes")
    code, index, plen = MGMT_HEADER.unpack_from(buf)
    if code == MGMT_EV_DEVICE_FOUND:
        start = MGMT_HEADER.size
    elif code == MGMT_EV_ADV_MONITOR_DEVICE_FOUND:
        start = MGMT_HEADER.size + MONITOR_HANDLE_LEN
    else:
        return None  # not checked further: the reader may have cut a long one short
    if len(buf) != MGMT_HEADER.size + plen:
        raise MgmtEventError(
            MGMT_HEADER.size, f"event 0x{code:04x} says {plen} parameter bytes, {len(buf) - MGMT_HEADER.size} follow"
        )
    if len(buf) < start + DEVICE_FOUND.size:
        have = len(buf) - start
        raise MgmtEventError(len(buf), f"event 0x{code:04x} truncated: {have} of {DEVICE_FOUND.size} fixed bytes")
    address, address_type, rssi, flags, eir_len = DEVICE_FOUND.unpack_from(buf, start)
    eir_at = start + DEVICE_FOUND.size
    if eir_at + eir_len != len(buf):
        follow = len(buf) - eir_at
        raise MgmtEventError(eir_at - 2, f"EIR length {eir_len} disagrees with the {follow} bytes that follow")
    return DeviceFound(index, address, address_type, None if rssi == RSSI_UNKNOWN else rssi, flags, buf[eir_at:])


def _uuid16(value: int) -> str:
    return f"0000{value:04x}{BASE_UUID_TAIL}"


def eir_data(eir: bytes) -> tuple[dict[int, bytes], dict[str, bytes]]:
    """EIR/AD bytes -> (manufacturer data by company id, service data by 128-bit UUID), as bleak has them.

    Raises BleFrameError (with the offset) when an AD structure runs past the end.
    """
    mfr: dict[int, bytes] = {}
    svc: dict[str, bytes] = {}
    for off, ad_type, data in split_ad_structures(eir):
        if ad_type == AD_MANUFACTURER_DATA:
            if len(data) < 2:
                raise BleFrameError(off + 2 + len(data), "manufacturer data truncated: no company id")
            mfr[data[0] | data[1] << 8] = data[2:]
        elif ad_type == AD_SERVICE_DATA_16 and len(data) >= 2:
            svc[_uuid16(data[0] | data[1] << 8)] = data[2:]
        elif ad_type == AD_SERVICE_DATA_32 and len(data) >= 4:
            svc[f"{int.from_bytes(data[:4], 'little'):08x}{BASE_UUID_TAIL}"] = data[4:]
        elif ad_type == AD_SERVICE_DATA_128 and len(data) >= 16:
            h = data[15::-1].hex()
            svc[f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"] = data[16:]
    return mfr, svc
