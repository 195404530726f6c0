"""Pure parsers and encoders for BLE advertising data: Apple iBeacon and Eddystone frames.

Bytes in, frozen slotted dataclasses (or ``None`` / a :class:`BleFrameError` naming the byte
offset at fault) out; no logging, clock or I/O. :func:`parse_advertisement` takes bleak's split
dicts and runs for every advertisement a node hears; :func:`parse_raw_advertising` takes on-air
AD structures (``instore decode ble HEX``). docs/ble.md.
"""

from __future__ import annotations

import struct
import uuid as _uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "AD_FLAGS",
    "AD_LOCAL_NAME",
    "AD_MANUFACTURER_DATA",
    "AD_SERVICE_DATA_16",
    "AD_TX_POWER",
    "AD_UUID16_COMPLETE",
    "APPLE_COMPANY_ID",
    "EDDYSTONE_SERVICE_UUID",
    "EDDYSTONE_UUID16",
    "BleFrameError",
    "EddystoneEID",
    "EddystoneEncryptedTLM",
    "EddystoneFrame",
    "EddystoneTLM",
    "EddystoneUID",
    "EddystoneURL",
    "Frame",
    "IBeacon",
    "describe_hex",
    "encode_eddystone",
    "encode_ibeacon",
    "encode_raw_advertising",
    "frame_name",
    "frame_to_dict",
    "parse_advertisement",
    "parse_eddystone",
    "parse_hex",
    "parse_ibeacon",
    "parse_raw_advertising",
    "split_ad_structures",
]

# --- wire constants (pinned literals; tests check them against docs/ble.md's examples) -----

AD_FLAGS = 0x01
AD_UUID16_COMPLETE = 0x03
AD_LOCAL_NAME = 0x09
AD_TX_POWER = 0x0A
AD_SERVICE_DATA_16 = 0x16
AD_MANUFACTURER_DATA = 0xFF

APPLE_COMPANY_ID = 0x004C
IBEACON_TYPE = 0x02
IBEACON_LENGTH = 0x15  # the length byte: 21 bytes of UUID, major, minor, power follow
IBEACON_PAYLOAD_LEN = 2 + IBEACON_LENGTH  # after the company id

EDDYSTONE_UUID16 = 0xFEAA
EDDYSTONE_SERVICE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"  # bleak's service_data key

EDDYSTONE_UID = 0x00
EDDYSTONE_URL = 0x10
EDDYSTONE_TLM = 0x20
EDDYSTONE_EID = 0x30

TLM_PLAIN = 0x00
TLM_ENCRYPTED = 0x01
TEMPERATURE_UNSUPPORTED = 0x8000  # raw 8.8 value meaning "no sensor"

_UID_LEN = 18  # type, tx, namespace (10), instance (6); RFU (2) may follow
_UID_LEN_RFU = 20
_EID_LEN = 10
_TLM_LEN = 14
_ETLM_LEN = 18
_URL_MIN_LEN = 3  # type, tx, scheme
_URL_MAX_LEN = 20  # ... plus up to 17 encoded bytes

_URL_SCHEMES = ("http://www.", "https://www.", "http://", "https://")
_URL_EXPANSIONS = (
    ".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/",
    ".com", ".org", ".edu", ".net", ".info", ".biz", ".gov",
)  # fmt: skip
# Longest scheme first, so "https://www." is not encoded as "https://" + "www.".
_URL_SCHEME_ORDER = sorted(range(len(_URL_SCHEMES)), key=lambda i: -len(_URL_SCHEMES[i]))

_IBEACON_TAIL = struct.Struct(">HHb")  # major, minor, measured power at offset 18
_TLM = struct.Struct(">HHII")  # battery, temperature (raw), adv count, 0.1 s count at offset 2


# --- errors ---------------------------------------------------------------------------------


class BleFrameError(ValueError):
    """Malformed advertising data; ``offset`` is the byte at fault, ``reason`` says what."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason

    def shifted(self, delta: int) -> BleFrameError:
        """The same error with its offset moved by ``delta`` (payload -> enclosing data)."""
        return BleFrameError(self.offset + delta, self.reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (BleFrameError, (self.offset, self.reason))


def _length_error(frame: str, n: int, expected: int) -> BleFrameError:
    if n < expected:
        return BleFrameError(n, f"{frame} frame truncated: {n} bytes, expected {expected}")
    return BleFrameError(expected, f"{frame} frame too long: {n} bytes, expected {expected}")


# --- frames ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IBeacon:
    """Apple iBeacon. ``uuid`` is canonical lowercase 8-4-4-4-12; power is dBm at 1 m."""

    uuid: str
    major: int
    minor: int
    measured_power: int


@dataclass(frozen=True, slots=True)
class EddystoneUID:
    """Eddystone-UID: ``namespace`` is 20 lowercase hex digits, ``instance`` 12."""

    tx_power: int
    namespace: str
    instance: str


@dataclass(frozen=True, slots=True)
class EddystoneEID:
    """Eddystone-EID: an 8-byte rotating identifier only the gateway can resolve."""

    tx_power: int
    eid: bytes

    @property
    def eid_hex(self) -> str:
        return self.eid.hex()


@dataclass(frozen=True, slots=True)
class EddystoneTLM:
    """Plain (version 0) Eddystone-TLM telemetry; ``temperature_c`` None = no sensor."""

    version: int
    battery_mv: int
    temperature_c: float | None
    adv_count: int
    uptime_s: float


@dataclass(frozen=True, slots=True)
class EddystoneEncryptedTLM:
    """Encrypted (version 1) Eddystone-TLM: opaque here, decrypted only with the beacon's key."""

    etlm: bytes
    salt: bytes
    mic: bytes


@dataclass(frozen=True, slots=True)
class EddystoneURL:
    """Eddystone-URL with the scheme prefix and expansion codes already expanded."""

    tx_power: int
    url: str


EddystoneFrame = EddystoneUID | EddystoneEID | EddystoneTLM | EddystoneEncryptedTLM | EddystoneURL
Frame = IBeacon | EddystoneFrame

_FRAME_NAMES: dict[type, str] = {
    IBeacon: "ibeacon",
    EddystoneUID: "eddystone-uid",
    EddystoneEID: "eddystone-eid",
    EddystoneTLM: "eddystone-tlm",
    EddystoneEncryptedTLM: "eddystone-etlm",
    EddystoneURL: "eddystone-url",
}


def frame_name(frame: Frame) -> str:
    """Short stable name of a frame's kind, e.g. ``"eddystone-eid"``."""
    return _FRAME_NAMES[type(frame)]


def frame_to_dict(frame: Frame) -> dict[str, Any]:
    """JSON-ready dict: ``{"frame": name, <fields>}`` with bytes given as lowercase hex."""
    out: dict[str, Any] = {"frame": frame_name(frame)}
    for f in fields(frame):
        value = getattr(frame, f.name)
        out[f.name] = value.hex() if isinstance(value, bytes) else value
    return out


# --- parsing --------------------------------------------------------------------------------


def parse_ibeacon(mfr: bytes) -> IBeacon | None:
    """Apple manufacturer payload (after company id 0x004C) -> IBeacon, or None if another type.

    Apple uses the same company id for many message types; only type 0x02 is an iBeacon, and
    one that claims to be must carry length 0x15 and all 23 bytes. Bytes after the 23rd are
    ignored (Apple payloads are type-length-value and may carry further messages).
    """
    if not mfr or mfr[0] != IBEACON_TYPE:
        return None
    n = len(mfr)
    if n < 2:
        raise BleFrameError(1, "iBeacon truncated: length byte missing")
    if mfr[1] != IBEACON_LENGTH:
        raise BleFrameError(1, f"iBeacon length byte is 0x{mfr[1]:02x}, expected 0x15")
    if n < IBEACON_PAYLOAD_LEN:
        raise BleFrameError(n, f"iBeacon truncated: {n} bytes, expected {IBEACON_PAYLOAD_LEN}")
    h = mfr[2:18].hex()
    major, minor, power = _IBEACON_TAIL.unpack_from(mfr, 18)
    return IBeacon(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}", major, minor, power)


def _int8(b: int) -> int:
    return b - 256 if b > 127 else b


def parse_eddystone(service_data: bytes) -> EddystoneFrame:
    """Eddystone service-data payload (after UUID 0xFEAA) -> frame; BleFrameError if malformed.

    Unknown frame types and TLM versions are errors too: we cannot say what they carry.
    """
    data = bytes(service_data) if type(service_data) is not bytes else service_data
    if not data:
        raise BleFrameError(0, "Eddystone frame empty: frame type byte missing")
    parse = _EDDYSTONE_PARSERS.get(data[0])
    if parse is None:
        raise BleFrameError(0, f"unknown Eddystone frame type 0x{data[0]:02x}")
    return parse(data)


def _parse_eid(data: bytes) -> EddystoneEID:
    n = len(data)
    if n != _EID_LEN:
        raise _length_error("Eddystone-EID", n, _EID_LEN)
    return EddystoneEID(_int8(data[1]), data[2:10])


def _parse_uid(data: bytes) -> EddystoneUID:
    n = len(data)
    if n != _UID_LEN and n != _UID_LEN_RFU:
        if n < _UID_LEN:
            raise _length_error("Eddystone-UID", n, _UID_LEN)
        # 19 bytes: the RFU field is cut short; more than 20: bytes too many.
        raise BleFrameError(
            min(n, _UID_LEN_RFU),
            f"Eddystone-UID frame is {n} bytes, expected {_UID_LEN} or {_UID_LEN_RFU} (with RFU)",
        )
    return EddystoneUID(_int8(data[1]), data[2:12].hex(), data[12:18].hex())


def _parse_tlm(data: bytes) -> EddystoneTLM | EddystoneEncryptedTLM:
    n = len(data)
    if n < 2:
        raise BleFrameError(1, "Eddystone-TLM truncated: version byte missing")
    version = data[1]
    if version == TLM_PLAIN:
        if n != _TLM_LEN:
            raise _length_error("Eddystone-TLM", n, _TLM_LEN)
        battery, temp, adv, tenths = _TLM.unpack_from(data, 2)
        if temp == TEMPERATURE_UNSUPPORTED:
            temperature: float | None = None
        else:
            temperature = (temp - 65536 if temp > 32767 else temp) / 256
        return EddystoneTLM(version, battery, temperature, adv, tenths / 10)
    if version == TLM_ENCRYPTED:
        if n != _ETLM_LEN:
            raise _length_error("Eddystone-eTLM", n, _ETLM_LEN)
        return EddystoneEncryptedTLM(data[2:14], data[14:16], data[16:18])
    raise BleFrameError(1, f"unknown Eddystone-TLM version 0x{version:02x}")


def _parse_url(data: bytes) -> EddystoneURL:
    n = len(data)
    if n < _URL_MIN_LEN:
        raise BleFrameError(n, f"Eddystone-URL frame truncated: {n} bytes, expected at least 3")
    if n > _URL_MAX_LEN:
        raise BleFrameError(_URL_MAX_LEN, f"Eddystone-URL frame too long: {n} bytes, at most 20")
    scheme = data[2]
    if scheme >= len(_URL_SCHEMES):
        raise BleFrameError(2, f"Eddystone-URL scheme prefix 0x{scheme:02x} unknown (0x00-0x03)")
    parts = [_URL_SCHEMES[scheme]]
    for i in range(3, n):
        b = data[i]
        if b < len(_URL_EXPANSIONS):
            parts.append(_URL_EXPANSIONS[b])
        elif 0x21 <= b <= 0x7E:
            parts.append(chr(b))
        else:
            raise BleFrameError(i, f"Eddystone-URL byte 0x{b:02x} is reserved (not printable ASCII)")
    return EddystoneURL(_int8(data[1]), "".join(parts))


# Frame type byte -> its parser (the URL parser is defined above this table).
_EDDYSTONE_PARSERS: dict[int, Callable[[bytes], EddystoneFrame]] = {
    EDDYSTONE_EID: _parse_eid,
    EDDYSTONE_UID: _parse_uid,
    EDDYSTONE_TLM: _parse_tlm,
    EDDYSTONE_URL: _parse_url,
}


def parse_advertisement(
    manufacturer_data: Mapping[int, bytes], service_data: Mapping[str, bytes]
) -> list[Frame]:
    """Frames in one advertisement as bleak hands it over; [] for foreign devices.

    Other company ids and services are ignored; a malformed Apple iBeacon or Eddystone payload
    raises BleFrameError (offset within that payload). The hot path of every edge node.
    """
    frames: list[Frame] = []
    apple = manufacturer_data.get(APPLE_COMPANY_ID)
    if apple and apple[0] == IBEACON_TYPE:
        frames.append(parse_ibeacon(apple))  # type: ignore[arg-type]  # the caller checked type 0x02, so not None
    eddystone = service_data.get(EDDYSTONE_SERVICE_UUID)
    if eddystone is not None:
        frames.append(parse_eddystone(eddystone))
    return frames


def split_ad_structures(raw: bytes) -> list[tuple[int, int, bytes]]:
    """Raw advertising data -> ``(offset, ad_type, data)`` per AD structure.

    ``offset`` is that of the structure's length byte. A length of 0 ends the data (legacy
    advertisements are zero-padded); a length running past the end raises BleFrameError.
    """
    out: list[tuple[int, int, bytes]] = []
    n = len(raw)
    i = 0
    while i < n:
        length = raw[i]
        if length == 0:
            break
        end = i + 1 + length
        if end > n:
            raise BleFrameError(
                i, f"AD structure length {length} runs past the end ({n - i - 1} bytes follow)"
            )
        out.append((i, raw[i + 1], bytes(raw[i + 2 : end])))
        i = end
    return out


def _iter_raw_frames(raw: bytes) -> Iterator[tuple[int, Frame]]:
    """(structure offset, frame) for each recognised frame; errors carry absolute offsets."""
    for off, ad_type, data in split_ad_structures(raw):
        frame = _structure_frame(off, ad_type, data)
        if frame is not None:
            yield off, frame


# AD type -> (the company id or 16-bit UUID that makes it ours, its parser, the error when too short).
_AD_PAYLOADS: dict[int, tuple[int, Callable[[bytes], Frame | None], str]] = {
    AD_MANUFACTURER_DATA: (APPLE_COMPANY_ID, parse_ibeacon, "manufacturer data truncated: no company id"),
    AD_SERVICE_DATA_16: (EDDYSTONE_UUID16, parse_eddystone, "service data truncated: no 16-bit UUID"),
}


def _structure_frame(off: int, ad_type: int, data: bytes) -> Frame | None:
    """The frame in one AD structure at ``off``, or None when it is not ours."""
    ours = _AD_PAYLOADS.get(ad_type)
    if ours is None:
        return None
    ident, parse, truncated = ours
    if len(data) < 2:
        raise BleFrameError(off + 2 + len(data), truncated)
    if data[0] | data[1] << 8 != ident:
        return None
    try:
        return parse(data[2:])
    except BleFrameError as exc:
        raise exc.shifted(off + 4) from None


def parse_raw_advertising(raw: bytes) -> list[Frame]:
    """Frames in raw advertising data (AD structures); BleFrameError names absolute offsets."""
    return [frame for _, frame in _iter_raw_frames(raw)]


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_HEX_SEPARATORS = frozenset(" \t\r\n:-")


def parse_hex(text: str) -> bytes:
    """Hex text -> bytes, with or without spaces, colons or dashes between bytes.

    A separator inside a byte ("2 1 6") is refused rather than guessed at. Errors name the
    byte offset and the character position in ``text``.
    """
    start = len(text) - len(text.lstrip())
    if text[start : start + 2] in ("0x", "0X"):
        start += 2
    digits: list[str] = []
    for pos in range(start, len(text)):
        ch = text[pos]
        if ch in _HEX_DIGITS:
            digits.append(ch)
        elif ch in _HEX_SEPARATORS:
            if len(digits) % 2:
                raise BleFrameError(
                    len(digits) // 2, f"separator {ch!r} at text position {pos} splits a byte"
                )
        else:
            raise BleFrameError(len(digits) // 2, f"{ch!r} at text position {pos} is not a hexadecimal digit")
    if not digits:
        raise BleFrameError(0, "no hex digits given")
    if len(digits) % 2:
        raise BleFrameError(len(digits) // 2, "odd number of hex digits: the last byte has one digit")
    return bytes.fromhex("".join(digits))


def describe_hex(text: str) -> list[dict[str, Any]]:
    """Raw advertising data as hex text -> one JSON-ready dict per recognised frame.

    Each dict is :func:`frame_to_dict` plus ``"offset"``, the byte offset of the AD
    structure holding the frame. Backs ``instore decode ble HEX``.
    """
    out = []
    for off, frame in _iter_raw_frames(parse_hex(text)):
        d = frame_to_dict(frame)
        d["offset"] = off
        out.append(d)
    return out


# --- encoding (used by the simulator and the tests) -----------------------------------------


def _check(name: str, value: int, lo: int, hi: int) -> int:
    if not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def _hex_field(name: str, value: str, n_bytes: int) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{name} must be {2 * n_bytes} hex digits, got {value!r}") from None
    if len(raw) != n_bytes:
        raise ValueError(f"{name} must be {2 * n_bytes} hex digits, got {value!r}")
    return raw


def _bytes_field(name: str, value: bytes, n_bytes: int) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != n_bytes:
        raise ValueError(f"{name} must be {n_bytes} bytes, got {value!r}")
    return bytes(value)


def encode_ibeacon(beacon: IBeacon) -> bytes:
    """IBeacon -> the 23-byte manufacturer payload that follows company id 0x004C."""
    try:
        uuid_bytes = _uuid.UUID(beacon.uuid).bytes
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"uuid is not a UUID: {beacon.uuid!r}") from None
    return (
        bytes((IBEACON_TYPE, IBEACON_LENGTH))
        + uuid_bytes
        + _IBEACON_TAIL.pack(
            _check("major", beacon.major, 0, 0xFFFF),
            _check("minor", beacon.minor, 0, 0xFFFF),
            _check("measured_power", beacon.measured_power, -128, 127),
        )
    )


def _tx(value: int) -> bytes:
    return (_check("tx_power", value, -128, 127) & 0xFF).to_bytes(1, "big")


def _encode_url(url: str) -> bytes:
    for scheme in _URL_SCHEME_ORDER:
        if url.startswith(_URL_SCHEMES[scheme]):
            break
    else:
        raise ValueError(f"url must start with one of {_URL_SCHEMES}, got {url!r}")
    out = bytearray((scheme,))
    i = len(_URL_SCHEMES[scheme])
    while i < len(url):
        for code, expansion in enumerate(_URL_EXPANSIONS):  # ".com/" is tried before ".com"
            if url.startswith(expansion, i):
                out.append(code)
                i += len(expansion)
                break
        else:
            ch = ord(url[i])
            if not 0x21 <= ch <= 0x7E:
                raise ValueError(f"url character {url[i]!r} at {i} cannot be encoded")
            out.append(ch)
            i += 1
    if len(out) - 1 > _URL_MAX_LEN - _URL_MIN_LEN:
        raise ValueError(f"url encodes to {len(out) - 1} bytes, at most 17 fit: {url!r}")
    return bytes(out)


def encode_eddystone(frame: EddystoneFrame) -> bytes:
    """Eddystone frame -> service-data payload (after UUID 0xFEAA). UID gets zero RFU bytes."""
    if isinstance(frame, EddystoneEID):
        return bytes((EDDYSTONE_EID,)) + _tx(frame.tx_power) + _bytes_field("eid", frame.eid, 8)
    if isinstance(frame, EddystoneUID):
        return (
            bytes((EDDYSTONE_UID,))
            + _tx(frame.tx_power)
            + _hex_field("namespace", frame.namespace, 10)
            + _hex_field("instance", frame.instance, 6)
            + b"\x00\x00"
        )
    if isinstance(frame, EddystoneTLM):
        _check("version", frame.version, TLM_PLAIN, TLM_PLAIN)
        if frame.temperature_c is None:
            temp = TEMPERATURE_UNSUPPORTED
        else:
            # -128.0 would encode as 0x8000, the "no sensor" marker: refuse it.
            temp = _check("temperature_c*256", round(frame.temperature_c * 256), -32767, 32767) & 0xFFFF
        return bytes((EDDYSTONE_TLM, TLM_PLAIN)) + _TLM.pack(
            _check("battery_mv", frame.battery_mv, 0, 0xFFFF),
            temp,
            _check("adv_count", frame.adv_count, 0, 0xFFFFFFFF),
            _check("uptime_s*10", round(frame.uptime_s * 10), 0, 0xFFFFFFFF),
        )
    if isinstance(frame, EddystoneEncryptedTLM):
        return (
            bytes((EDDYSTONE_TLM, TLM_ENCRYPTED))
            + _bytes_field("etlm", frame.etlm, 12)
            + _bytes_field("salt", frame.salt, 2)
            + _bytes_field("mic", frame.mic, 2)
        )
    if isinstance(frame, EddystoneURL):
        return bytes((EDDYSTONE_URL,)) + _tx(frame.tx_power) + _encode_url(frame.url)
    raise TypeError(f"not an Eddystone frame: {frame!r}")


def _ad(ad_type: int, data: bytes) -> bytes:
    if len(data) > 254:
        raise ValueError(f"AD structure 0x{ad_type:02x} data is {len(data)} bytes, at most 254")
    return bytes((len(data) + 1, ad_type)) + data


def encode_raw_advertising(
    frames: Iterable[Frame], *, flags: int | None = 0x06, local_name: str | None = None
) -> bytes:
    """Frames -> raw advertising data: flags, iBeacon/Eddystone structures, optional name.

    Eddystone frames are preceded once by the 16-bit service UUID list (``03 03 AA FE``).
    No 31-byte check: extended advertising carries more, and tests want odd layouts.
    """
    out = bytearray()
    if flags is not None:
        out += _ad(AD_FLAGS, bytes((_check("flags", flags, 0, 0xFF),)))
    uuid_listed = False
    eddystone_uuid = EDDYSTONE_UUID16.to_bytes(2, "little")
    for frame in frames:
        if isinstance(frame, IBeacon):
            out += _ad(AD_MANUFACTURER_DATA, APPLE_COMPANY_ID.to_bytes(2, "little") + encode_ibeacon(frame))
            continue
        if not uuid_listed:
            out += _ad(AD_UUID16_COMPLETE, eddystone_uuid)
            uuid_listed = True
        out += _ad(AD_SERVICE_DATA_16, eddystone_uuid + encode_eddystone(frame))
    if local_name is not None:
        out += _ad(AD_LOCAL_NAME, local_name.encode("utf-8"))
    return bytes(out)
