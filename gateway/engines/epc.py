"""GS1 EPC Tag Data Standard: SGTIN-96 / SGTIN-198 (and SSCC-96) binary <-> URI, GTIN-14.

Pure functions, no I/O. Invalid input raises :class:`EpcError` (a ``ValueError``) naming the
field and the value. Layout: docs/rfid.md section 2. :func:`describe_epc` is behind
``instore decode epc HEX``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EPC_HEADERS",
    "EpcError",
    "Sgtin",
    "Sscc",
    "UnknownEpc",
    "decode_epc",
    "decode_sgtin96",
    "decode_sgtin198",
    "decode_sscc96",
    "describe_epc",
    "encode_sgtin96",
    "gs1_check_digit",
    "gtin14_from",
    "parse_sgtin96_tag_uri",
    "sgtin96_from_gtin",
]

HEADER_SGTIN96 = 0x30
HEADER_SSCC96 = 0x31
HEADER_SGTIN198 = 0x36

#: EPC binary header -> coding scheme name (GS1 TDS, header table). Used to name the scheme of an
#: EPC we do not decode.
EPC_HEADERS: dict[int, str] = {
    0x2C: "gdti-96",
    0x2D: "gsrn-96",
    0x2E: "gsrnp-96",
    0x2F: "usdod-96",
    0x30: "sgtin-96",
    0x31: "sscc-96",
    0x32: "sgln-96",
    0x33: "grai-96",
    0x34: "giai-96",
    0x35: "gid-96",
    0x36: "sgtin-198",
    0x37: "grai-170",
    0x38: "giai-202",
    0x39: "sgln-195",
    0x3A: "gdti-113",
    0x3B: "adi-var",
    0x3C: "cpi-96",
    0x3D: "cpi-var",
    0x3E: "gdti-174",
    0x3F: "sgcn-96",
}

#: SGTIN partition -> (company prefix bits, digits, indicator+item reference bits, digits).
SGTIN_PARTITIONS: tuple[tuple[int, int, int, int], ...] = (
    (40, 12, 4, 1),
    (37, 11, 7, 2),
    (34, 10, 10, 3),
    (30, 9, 14, 4),
    (27, 8, 17, 5),
    (24, 7, 20, 6),
    (20, 6, 24, 7),
)
#: SSCC partition -> (company prefix bits, digits, extension+serial reference bits, digits).
SSCC_PARTITIONS: tuple[tuple[int, int, int, int], ...] = (
    (40, 12, 18, 5),
    (37, 11, 21, 6),
    (34, 10, 24, 7),
    (30, 9, 28, 8),
    (27, 8, 31, 9),
    (24, 7, 34, 10),
    (20, 6, 38, 11),
)

SERIAL_BITS_96 = 38
MAX_SERIAL_96 = (1 << SERIAL_BITS_96) - 1
SGTIN198_SERIAL_CHARS = 20
SGTIN198_BITS = 198

#: GS1 AI encodable character set 82 (the characters an SGTIN-198 serial may hold).
_CS82 = frozenset("!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
#: Characters that EPC URIs escape (TDS: ", %, &, /, <, >, ?).
_URI_ESCAPES = {'"': "%22", "%": "%25", "&": "%26", "/": "%2F", "<": "%3C", ">": "%3E", "?": "%3F"}
_HEX_RE = re.compile(r"[0-9A-Fa-f]*")


class EpcError(ValueError):
    """An EPC that is malformed or invalid under the Tag Data Standard."""


@dataclass(frozen=True, slots=True)
class Sgtin:
    scheme: str  # "sgtin-96" or "sgtin-198"
    filter: int
    partition: int
    company_prefix: str  # L digits, leading zeros kept
    item_reference: str  # indicator digit + item reference, 13-L digits
    serial: str  # decimal (sgtin-96) or alphanumeric (sgtin-198), unescaped
    hex: str

    @property
    def indicator(self) -> str:
        return self.item_reference[0]

    @property
    def gtin14(self) -> str:
        return gtin14_from(self.company_prefix, self.item_reference)

    @property
    def pure_identity_uri(self) -> str:
        return f"urn:epc:id:sgtin:{self.company_prefix}.{self.item_reference}.{_uri_escape(self.serial)}"

    @property
    def tag_uri(self) -> str:
        return (
            f"urn:epc:tag:{self.scheme}:{self.filter}.{self.company_prefix}."
            f"{self.item_reference}.{_uri_escape(self.serial)}"
        )


@dataclass(frozen=True, slots=True)
class Sscc:
    filter: int
    partition: int
    company_prefix: str
    serial_reference: str  # extension digit + serial reference, 17-L digits
    hex: str
    scheme: str = "sscc-96"

    @property
    def sscc18(self) -> str:
        body = self.serial_reference[0] + self.company_prefix + self.serial_reference[1:]
        return body + gs1_check_digit(body)

    @property
    def pure_identity_uri(self) -> str:
        return f"urn:epc:id:sscc:{self.company_prefix}.{self.serial_reference}"

    @property
    def tag_uri(self) -> str:
        return f"urn:epc:tag:sscc-96:{self.filter}.{self.company_prefix}.{self.serial_reference}"


@dataclass(frozen=True, slots=True)
class UnknownEpc:
    header: int
    hex: str
    scheme_name: str | None  # the TDS name of the header, when it has one

    scheme: str = "unknown"


# --------------------------------------------------------------------------------------------
# helpers


def _normalise_hex(epc_hex: str | bytes) -> str:
    if isinstance(epc_hex, bytes | bytearray):
        return bytes(epc_hex).hex().upper()
    if not isinstance(epc_hex, str):
        raise EpcError(f"EPC must be a hex string or bytes, got {type(epc_hex).__name__}")
    s = epc_hex.strip().replace(" ", "").replace(":", "").replace("-", "")
    if s[:2] in ("0x", "0X"):
        s = s[2:]
    if not s:
        raise EpcError("EPC hex is empty")
    if not _HEX_RE.fullmatch(s):
        bad = next(c for c in s if c not in "0123456789abcdefABCDEF")
        raise EpcError(f"EPC hex contains a non-hex character {bad!r}")
    if len(s) % 2:
        raise EpcError(f"EPC hex has an odd number of digits ({len(s)})")
    return s.upper()


def _uri_escape(value: str) -> str:
    return "".join(_URI_ESCAPES.get(c, c) for c in value)


def gs1_check_digit(digits: str) -> str:
    """GS1 mod-10 check digit: weights 3,1,3,1... from the rightmost digit."""
    if not digits.isdigit():
        raise EpcError(f"check digit needs decimal digits, got {digits!r}")
    total = 0
    for i, ch in enumerate(reversed(digits)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return str((10 - total % 10) % 10)


def gtin14_from(company_prefix: str, item_reference: str) -> str:
    """GTIN-14 from the company prefix and the indicator+item reference digits (13 together)."""
    if not company_prefix.isdigit() or not item_reference.isdigit():
        raise EpcError(
            f"company prefix {company_prefix!r} and item reference {item_reference!r} must be digits"
        )
    if len(company_prefix) + len(item_reference) != 13:
        raise EpcError(
            f"company prefix ({len(company_prefix)} digits) + indicator/item reference "
            f"({len(item_reference)} digits) must be 13 digits"
        )
    body = item_reference[0] + company_prefix + item_reference[1:]
    return body + gs1_check_digit(body)


def _partition_for_prefix(company_prefix: str) -> int:
    if not company_prefix.isdigit():
        raise EpcError(f"company prefix {company_prefix!r} must be decimal digits")
    for partition, (_, digits, _, _) in enumerate(SGTIN_PARTITIONS):
        if digits == len(company_prefix):
            return partition
    raise EpcError(f"company prefix {company_prefix!r} has {len(company_prefix)} digits; GS1 allows 6..12")


def _check_filter(filter: int) -> None:
    if not isinstance(filter, int) or not 0 <= filter <= 7:
        raise EpcError(f"filter {filter!r} out of range 0..7")


# --------------------------------------------------------------------------------------------
# decoding


def _split_company_item(
    value: int, total_bits: int, partition: int, table: tuple[tuple[int, int, int, int], ...], what: str
) -> tuple[str, str]:
    """Split the partitioned field (company prefix, then the second field) into digit strings."""
    m_bits, l_digits, n_bits, n_digits = table[partition]
    assert m_bits + n_bits == total_bits
    company = value >> n_bits
    item = value & ((1 << n_bits) - 1)
    if company >= 10**l_digits:
        raise EpcError(f"company prefix value {company} exceeds {l_digits} digits (partition {partition})")
    if item >= 10**n_digits:
        raise EpcError(f"{what} value {item} exceeds {n_digits} digits (partition {partition})")
    return str(company).zfill(l_digits), str(item).zfill(n_digits)


def _header_filter_partition(value: int, bits: int) -> tuple[int, int, int]:
    header = value >> (bits - 8)
    filter_ = value >> (bits - 11) & 0x7
    partition = value >> (bits - 14) & 0x7
    if partition == 7:
        raise EpcError("partition 7 is invalid (valid: 0..6)")
    return header, filter_, partition


def decode_sgtin96(epc_hex: str | bytes) -> Sgtin:
    s = _normalise_hex(epc_hex)
    if len(s) != 24:
        raise EpcError(f"SGTIN-96 needs 24 hex digits (96 bits), got {len(s)}")
    value = int(s, 16)
    header, filter_, partition = _header_filter_partition(value, 96)
    if header != HEADER_SGTIN96:
        raise EpcError(f"header 0x{header:02X} is not SGTIN-96 (0x30)")
    company, item = _split_company_item(
        value >> SERIAL_BITS_96 & ((1 << 44) - 1), 44, partition, SGTIN_PARTITIONS, "item reference"
    )
    serial = value & MAX_SERIAL_96
    return Sgtin("sgtin-96", filter_, partition, company, item, str(serial), s)


def decode_sgtin198(epc_hex: str | bytes) -> Sgtin:
    """SGTIN-198; the hex may be 50 digits (200 bits) or 52 (208 bits, padded to a 16-bit word)."""
    s = _normalise_hex(epc_hex)
    if len(s) not in (50, 52):
        raise EpcError(f"SGTIN-198 needs 50 or 52 hex digits (198 bits padded), got {len(s)}")
    bits = len(s) * 4
    full = int(s, 16)
    if full & ((1 << (bits - SGTIN198_BITS)) - 1):
        raise EpcError("SGTIN-198 padding bits after bit 198 are not zero")
    value = full >> (bits - SGTIN198_BITS)
    header, filter_, partition = _header_filter_partition(value, SGTIN198_BITS)
    if header != HEADER_SGTIN198:
        raise EpcError(f"header 0x{header:02X} is not SGTIN-198 (0x36)")
    serial_bits = 7 * SGTIN198_SERIAL_CHARS
    company, item = _split_company_item(
        value >> serial_bits & ((1 << 44) - 1), 44, partition, SGTIN_PARTITIONS, "item reference"
    )
    chars: list[str] = []
    ended = False
    for i in range(SGTIN198_SERIAL_CHARS):
        code = value >> (serial_bits - 7 * (i + 1)) & 0x7F
        if code == 0:
            ended = True
            continue
        if ended:
            raise EpcError(f"SGTIN-198 serial has a non-zero character after its end (position {i + 1})")
        ch = chr(code)
        if ch not in _CS82:
            raise EpcError(f"SGTIN-198 serial character 0x{code:02X} is not in GS1 character set 82")
        chars.append(ch)
    if not chars:
        raise EpcError("SGTIN-198 serial is empty")
    return Sgtin("sgtin-198", filter_, partition, company, item, "".join(chars), s)


def decode_sscc96(epc_hex: str | bytes) -> Sscc:
    s = _normalise_hex(epc_hex)
    if len(s) != 24:
        raise EpcError(f"SSCC-96 needs 24 hex digits (96 bits), got {len(s)}")
    value = int(s, 16)
    header, filter_, partition = _header_filter_partition(value, 96)
    if header != HEADER_SSCC96:
        raise EpcError(f"header 0x{header:02X} is not SSCC-96 (0x31)")
    if value & 0xFFFFFF:
        raise EpcError("SSCC-96 unallocated bits (last 24) are not zero")
    company, serial_ref = _split_company_item(
        value >> 24 & ((1 << 58) - 1), 58, partition, SSCC_PARTITIONS, "serial reference"
    )
    return Sscc(filter_, partition, company, serial_ref, s)


def decode_epc(epc_hex: str | bytes) -> Sgtin | Sscc | UnknownEpc:
    """Decode by header: SGTIN-96, SGTIN-198, SSCC-96; other headers -> :class:`UnknownEpc`."""
    s = _normalise_hex(epc_hex)
    header = int(s[:2], 16)
    if header == HEADER_SGTIN96:
        return decode_sgtin96(s)
    if header == HEADER_SGTIN198:
        return decode_sgtin198(s)
    if header == HEADER_SSCC96:
        return decode_sscc96(s)
    return UnknownEpc(header, s, EPC_HEADERS.get(header))


def describe_epc(epc_hex: str | bytes) -> dict[str, Any]:
    """A JSON-ready description of an EPC (raises :class:`EpcError` for an invalid one)."""
    epc = decode_epc(epc_hex)
    if isinstance(epc, Sgtin):
        return {
            "hex": epc.hex,
            "scheme": epc.scheme,
            "filter": epc.filter,
            "partition": epc.partition,
            "company_prefix": epc.company_prefix,
            "item_reference": epc.item_reference,
            "indicator": epc.indicator,
            "serial": epc.serial,
            "gtin14": epc.gtin14,
            "pure_identity_uri": epc.pure_identity_uri,
            "tag_uri": epc.tag_uri,
        }
    if isinstance(epc, Sscc):
        return {
            "hex": epc.hex,
            "scheme": epc.scheme,
            "filter": epc.filter,
            "partition": epc.partition,
            "company_prefix": epc.company_prefix,
            "serial_reference": epc.serial_reference,
            "sscc18": epc.sscc18,
            "pure_identity_uri": epc.pure_identity_uri,
            "tag_uri": epc.tag_uri,
        }
    return {
        "hex": epc.hex,
        "scheme": "unknown",
        "header": f"0x{epc.header:02X}",
        "scheme_name": epc.scheme_name,
    }


# --------------------------------------------------------------------------------------------
# encoding


def _serial96(serial: int | str) -> int:
    if isinstance(serial, bool):
        raise EpcError(f"serial {serial!r} must be an integer or a decimal string")
    if isinstance(serial, str):
        if not serial.isdigit() or not serial.isascii():
            raise EpcError(f"serial {serial!r} must be decimal digits")
        if len(serial) > 1 and serial[0] == "0":
            raise EpcError(f"serial {serial!r} has leading zeros (not encodable in SGTIN-96)")
        serial = int(serial)
    if not isinstance(serial, int):
        raise EpcError(f"serial {serial!r} must be an integer or a decimal string")
    if not 0 <= serial <= MAX_SERIAL_96:
        raise EpcError(f"serial {serial} out of range 0..{MAX_SERIAL_96} (2^38-1)")
    return serial


def encode_sgtin96(company_prefix: str, item_reference: str, serial: int | str, filter: int = 1) -> str:
    """SGTIN-96 hex (24 upper-case digits) from prefix, indicator+item reference and serial."""
    _check_filter(filter)
    partition = _partition_for_prefix(company_prefix)
    m_bits, l_digits, n_bits, n_digits = SGTIN_PARTITIONS[partition]
    if not item_reference.isdigit() or len(item_reference) != n_digits:
        raise EpcError(
            f"indicator/item reference {item_reference!r} must be {n_digits} digits for a "
            f"{l_digits}-digit company prefix"
        )
    value = HEADER_SGTIN96
    value = value << 3 | filter
    value = value << 3 | partition
    value = value << m_bits | int(company_prefix)
    value = value << n_bits | int(item_reference)
    value = value << SERIAL_BITS_96 | _serial96(serial)
    return f"{value:024X}"


def sgtin96_from_gtin(gtin14: str, serial: int | str, company_prefix_digits: int, filter: int = 1) -> str:
    """Mint an SGTIN-96 for a product: GTIN-14 (check digit verified), serial, prefix length."""
    if not isinstance(gtin14, str) or not gtin14.isdigit() or len(gtin14) != 14:
        raise EpcError(f"GTIN-14 {gtin14!r} must be 14 decimal digits")
    if gs1_check_digit(gtin14[:13]) != gtin14[13]:
        raise EpcError(f"GTIN-14 {gtin14} has a wrong check digit (expected {gs1_check_digit(gtin14[:13])})")
    if not 6 <= company_prefix_digits <= 12:
        raise EpcError(f"company prefix of {company_prefix_digits} digits; GS1 allows 6..12")
    company = gtin14[1 : 1 + company_prefix_digits]
    item = gtin14[0] + gtin14[1 + company_prefix_digits : 13]
    return encode_sgtin96(company, item, serial, filter)


_TAG_URI_RE = re.compile(r"urn:epc:tag:sgtin-96:([0-7])\.(\d+)\.(\d+)\.(\d+)")


def parse_sgtin96_tag_uri(uri: str) -> str:
    """``urn:epc:tag:sgtin-96:F.PREFIX.ITEMREF.SERIAL`` -> SGTIN-96 hex."""
    m = _TAG_URI_RE.fullmatch(uri.strip())
    if not m:
        raise EpcError(f"not an SGTIN-96 tag URI: {uri!r}")
    return encode_sgtin96(m.group(2), m.group(3), m.group(4), int(m.group(1)))
