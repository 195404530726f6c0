"""Pure codec for the common low-cost UHF reader module serial protocol (M100 chip family).

``HEADER | Type | Command | PL_MSB | PL_LSB | Parameters | Checksum | END``; the checksum is the
low byte of the sum from Type to the last parameter. Nothing is escaped, so frames are delimited
by the length field (docs/rfid.md, section 1, with the printed module-info erratum).
Bytes in, frozen slotted dataclasses (or a ``FrameError``) out; no logging, clock or I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "ALT_END",
    "ALT_HEADER",
    "END",
    "ERROR_CODES",
    "HEADER",
    "MAX_PARAMS",
    "Command",
    "ErrorCode",
    "ErrorResponse",
    "Frame",
    "FrameError",
    "FrameType",
    "QueryParams",
    "Region",
    "StreamDecoder",
    "TagNotice",
    "checksum",
    "cmd_get_power",
    "cmd_get_query",
    "cmd_get_region",
    "cmd_module_info",
    "cmd_multiple_inventory",
    "cmd_set_baud",
    "cmd_set_power",
    "cmd_set_query",
    "cmd_set_region",
    "cmd_single_inventory",
    "cmd_stop",
    "crc16_gen2",
    "decode_error",
    "decode_module_info",
    "decode_notice",
    "decode_power",
    "decode_query",
    "decode_region",
    "encode_error",
    "encode_frame",
    "encode_notice",
    "error_name",
    "is_success",
    "make_notice",
    "pc_for_epc",
]

HEADER = 0xBB
END = 0x7E
#: Header/end bytes of the module variants that frame with ``AA ... DD``.
ALT_HEADER = 0xAA
ALT_END = 0xDD

#: Largest parameter block the decoder accepts. Why: the biggest frames we use are tag notices
#: (<= 67 bytes for a 496-bit EPC) and memory reads (a few hundred bytes); a corrupted length
#: field beyond this is rejected at once instead of stalling the stream while it "fills".
MAX_PARAMS = 1024

#: Frame types the decoder accepts. Why: a candidate header followed by any other type byte is
#: rejected immediately, which keeps garbage from holding up the stream for a bogus length.
VALID_TYPES = frozenset({0x00, 0x01, 0x02})

#: Fixed bytes around the parameters: header, type, command, PL (2), checksum, end.
FRAME_OVERHEAD = 7


class FrameType(IntEnum):
    COMMAND = 0x00  # host -> reader
    RESPONSE = 0x01  # reader -> host
    NOTICE = 0x02  # reader -> host, unsolicited (tag reports during inventory)


class Command(IntEnum):
    MODULE_INFO = 0x03
    SET_REGION = 0x07
    GET_REGION = 0x08
    GET_QUERY = 0x0D
    SET_QUERY = 0x0E
    SET_BAUD = 0x11
    SINGLE_INVENTORY = 0x22
    MULTIPLE_INVENTORY = 0x27
    STOP_INVENTORY = 0x28
    READ_MEMORY = 0x39
    WRITE_MEMORY = 0x49
    SET_POWER = 0xB6
    GET_POWER = 0xB7
    ERROR = 0xFF


class Region(IntEnum):
    CHINA_900 = 0x01
    USA = 0x02
    EUROPE = 0x03
    CHINA_800 = 0x04
    KOREA = 0x06


#: The store file's region names (``[nodes.rfid] region``) as the module's region codes.
REGIONS: dict[str, Region] = {
    "eu": Region.EUROPE,
    "usa": Region.USA,
    "korea": Region.KOREA,
    "china800": Region.CHINA_800,
    "china900": Region.CHINA_900,
}


class ErrorCode(IntEnum):
    READ_FAILED = 0x09
    WRITE_FAILED = 0x10
    KILL_FAILED = 0x12
    LOCK_FAILED = 0x13
    NO_TAG = 0x15  # inventory: no tag (or CRC error) - the normal "nothing in the field" answer
    ACCESS_FAILED = 0x16
    BAD_COMMAND = 0x17  # unknown command / command parameter error
    FHSS_FAILED = 0x20


ERROR_CODES: dict[int, str] = {
    0x09: "read_failed",
    0x10: "write_failed",
    0x12: "kill_failed",
    0x13: "lock_failed",
    0x15: "no_tag",
    0x16: "access_failed",
    0x17: "bad_command",
    0x20: "fhss_failed",
}
_TAG_ERROR_FAMILIES = {0xA0: "read_error", 0xB0: "write_error", 0xC0: "lock_error", 0xD0: "kill_error"}

#: Module-info sub-commands (first parameter of command 0x03).
INFO_HARDWARE = 0x00
INFO_SOFTWARE = 0x01
INFO_MANUFACTURER = 0x02

#: First parameter of the multiple-inventory command: reserved, always 0x22.
MULTI_INVENTORY_RESERVED = 0x22


class FrameError(ValueError):
    """A frame that does not decode as the expected message; ``reason`` is a short metric key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Messages


@dataclass(frozen=True, slots=True)
class Frame:
    type: int
    command: int
    params: bytes

    def encode(self, header: int = HEADER, end: int = END) -> bytes:
        return encode_frame(self.type, self.command, self.params, header=header, end=end)


@dataclass(frozen=True, slots=True)
class TagNotice:
    """One tag report: RSSI (dBm, signed), PC word, EPC bytes, the tag's own CRC-16."""

    rssi_dbm: int
    pc: int
    epc: bytes
    crc: int

    @property
    def epc_hex(self) -> str:
        return self.epc.hex().upper()

    @property
    def pc_epc_words(self) -> int:
        """EPC length the PC word announces, in 16-bit words (its top 5 bits)."""
        return self.pc >> 11

    def crc_ok(self) -> bool:
        return crc16_gen2(self.pc.to_bytes(2, "big") + self.epc) == self.crc


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """A failure response (command byte 0xFF).

    ``pc``/``epc`` are set when the failure happened after a tag was singulated (the parameters
    then carry the code, a length byte and PC+EPC).
    """

    code: int
    name: str
    pc: int | None = None
    epc: bytes | None = None

    @property
    def code_hex(self) -> str:
        return f"0x{self.code:02X}"


@dataclass(frozen=True, slots=True)
class QueryParams:
    """Gen2 Query parameters as the module packs them into 16 bits.

    Bits, MSB first: DR 1, M 2, TRext 1, Sel 2, Session 2, Target 1, Q 4, then 3 zero bits.
    """

    dr: int = 0
    m: int = 0
    trext: int = 1
    sel: int = 0
    session: int = 0
    target: int = 0
    q: int = 4

    def to_int(self) -> int:
        for name, value, limit in (
            ("dr", self.dr, 1),
            ("m", self.m, 3),
            ("trext", self.trext, 1),
            ("sel", self.sel, 3),
            ("session", self.session, 3),
            ("target", self.target, 1),
            ("q", self.q, 15),
        ):
            if not 0 <= value <= limit:
                raise ValueError(f"query parameter {name}={value} out of range 0..{limit}")
        return (
            self.dr << 15
            | self.m << 13
            | self.trext << 12
            | self.sel << 10
            | self.session << 8
            | self.target << 7
            | self.q << 3
        )

    @classmethod
    def from_int(cls, value: int) -> QueryParams:
        return cls(
            dr=value >> 15 & 1,
            m=value >> 13 & 3,
            trext=value >> 12 & 1,
            sel=value >> 10 & 3,
            session=value >> 8 & 3,
            target=value >> 7 & 1,
            q=value >> 3 & 15,
        )


# --------------------------------------------------------------------------------------------
# Encoding


def checksum(body: bytes | bytearray | memoryview) -> int:
    """Low byte of the sum of Type, Command, PL and parameters (everything between header and CS)."""
    return sum(body) & 0xFF


def encode_frame(type: int, command: int, params: bytes = b"", header: int = HEADER, end: int = END) -> bytes:
    n = len(params)
    if n > 0xFFFF:
        raise ValueError(f"parameters too long: {n} bytes > 65535")
    body = bytes((type & 0xFF, command & 0xFF, n >> 8, n & 0xFF)) + bytes(params)
    return bytes((header,)) + body + bytes((sum(body) & 0xFF, end))


def _cmd(command: int, params: bytes, header: int, end: int) -> bytes:
    return encode_frame(FrameType.COMMAND, command, params, header=header, end=end)


def cmd_module_info(info: int = INFO_HARDWARE, *, header: int = HEADER, end: int = END) -> bytes:
    """Module info: 0x00 hardware version, 0x01 software version, 0x02 manufacturer."""
    return _cmd(Command.MODULE_INFO, bytes((info,)), header, end)


def cmd_single_inventory(*, header: int = HEADER, end: int = END) -> bytes:
    return _cmd(Command.SINGLE_INVENTORY, b"", header, end)


def cmd_multiple_inventory(rounds: int, *, header: int = HEADER, end: int = END) -> bytes:
    if not 1 <= rounds <= 0xFFFF:
        raise ValueError(f"rounds {rounds} out of range 1..65535")
    return _cmd(
        Command.MULTIPLE_INVENTORY, bytes((MULTI_INVENTORY_RESERVED, rounds >> 8, rounds & 0xFF)), header, end
    )


def cmd_stop(*, header: int = HEADER, end: int = END) -> bytes:
    return _cmd(Command.STOP_INVENTORY, b"", header, end)


def cmd_set_power(dbm: float, *, header: int = HEADER, end: int = END) -> bytes:
    """Transmit power in dBm (sent as dBm x 100, 16-bit big-endian)."""
    centi = round(dbm * 100)
    if not 0 <= centi <= 0xFFFF:
        raise ValueError(f"power {dbm} dBm out of range")
    return _cmd(Command.SET_POWER, centi.to_bytes(2, "big"), header, end)


def cmd_get_power(*, header: int = HEADER, end: int = END) -> bytes:
    return _cmd(Command.GET_POWER, b"", header, end)


def cmd_set_region(region: int, *, header: int = HEADER, end: int = END) -> bytes:
    return _cmd(Command.SET_REGION, bytes((int(region),)), header, end)


def cmd_get_region(*, header: int = HEADER, end: int = END) -> bytes:
    return _cmd(Command.GET_REGION, b"", header, end)


def cmd_set_query(params: QueryParams, *, header: int = HEADER, end: int = END) -> bytes:
    return _cmd(Command.SET_QUERY, params.to_int().to_bytes(2, "big"), header, end)


def cmd_get_query(*, header: int = HEADER, end: int = END) -> bytes:
    return _cmd(Command.GET_QUERY, b"", header, end)


def cmd_set_baud(baud: int, *, header: int = HEADER, end: int = END) -> bytes:
    """Set the UART rate (param = baud / 100). The module does not answer; reopen at the new rate."""
    if baud % 100 or not 0 < baud // 100 <= 0xFFFF:
        raise ValueError(f"baud {baud} not encodable")
    return _cmd(Command.SET_BAUD, (baud // 100).to_bytes(2, "big"), header, end)


# --------------------------------------------------------------------------------------------
# Gen2 CRC-16 (CRC-16/GENIBUS: poly 0x1021, init 0xFFFF, output inverted, MSB first)


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        table.append(c & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_gen2(data: bytes | bytearray | memoryview) -> int:
    """The EPC Gen2 CRC-16 a tag backscatters over PC+EPC (``0x3A76`` for the example in docs/rfid.md)."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ b]
    return crc ^ 0xFFFF


def pc_for_epc(epc: bytes, flags: int = 0) -> int:
    """A PC word announcing ``len(epc)`` (which must be whole 16-bit words); ``flags`` = low 11 bits."""
    if len(epc) % 2 or len(epc) > 62:
        raise ValueError(f"EPC of {len(epc)} bytes is not 0..31 whole 16-bit words")
    return (len(epc) // 2) << 11 | (flags & 0x07FF)


def make_notice(epc: bytes, rssi_dbm: int, pc: int | None = None) -> TagNotice:
    """A tag notice as a real tag would give it: PC from the EPC length, CRC over PC+EPC."""
    if pc is None:
        pc = pc_for_epc(epc)
    return TagNotice(rssi_dbm, pc, bytes(epc), crc16_gen2(pc.to_bytes(2, "big") + epc))


def encode_notice(
    notice: TagNotice, command: int = Command.SINGLE_INVENTORY, *, header: int = HEADER, end: int = END
) -> bytes:
    if not -128 <= notice.rssi_dbm <= 127:
        raise ValueError(f"rssi {notice.rssi_dbm} dBm does not fit a signed byte")
    params = (
        bytes((notice.rssi_dbm & 0xFF,))
        + notice.pc.to_bytes(2, "big")
        + notice.epc
        + notice.crc.to_bytes(2, "big")
    )
    return encode_frame(FrameType.NOTICE, command, params, header=header, end=end)


def encode_error(code: int, pc_epc: bytes = b"", *, header: int = HEADER, end: int = END) -> bytes:
    """Failure response; with ``pc_epc`` the parameters are code, length byte, PC+EPC."""
    params = bytes((code,)) + (bytes((len(pc_epc),)) + pc_epc if pc_epc else b"")
    return encode_frame(FrameType.RESPONSE, Command.ERROR, params, header=header, end=end)


# --------------------------------------------------------------------------------------------
# Decoding of single frames

_NOTICE_COMMANDS = (Command.SINGLE_INVENTORY, Command.MULTIPLE_INVENTORY)


def decode_notice(frame: Frame, verify_crc: bool = False) -> TagNotice:
    """Decode a tag notice (type 0x02, command 0x22 or 0x27). EPC length comes from PL."""
    if frame.type != FrameType.NOTICE or (frame.command != 0x22 and frame.command != 0x27):
        raise FrameError(
            "not_notice", f"not a tag notice: type 0x{frame.type:02X} command 0x{frame.command:02X}"
        )
    p = frame.params
    n = len(p)
    if n < 5:
        raise FrameError("short_notice", f"tag notice needs >= 5 parameter bytes, got {n}")
    rssi = p[0]
    pc = p[1] << 8 | p[2]
    crc = p[n - 2] << 8 | p[n - 1]
    if verify_crc and crc16_gen2(p[1 : n - 2]) != crc:
        raise FrameError("bad_tag_crc", f"tag CRC 0x{crc:04X} does not match PC+EPC")
    return TagNotice(rssi - 256 if rssi > 127 else rssi, pc, p[3 : n - 2], crc)


def error_name(code: int) -> str:
    name = ERROR_CODES.get(code)
    if name is not None:
        return name
    family = _TAG_ERROR_FAMILIES.get(code & 0xF0)
    if family is not None:
        return f"{family}_tag_0x{code & 0x0F:X}"
    return f"unknown_0x{code:02X}"


def decode_error(frame: Frame) -> ErrorResponse:
    if frame.command != Command.ERROR or frame.type != FrameType.RESPONSE:
        raise FrameError("not_error", f"not an error response: command 0x{frame.command:02X}")
    p = frame.params
    if not p:
        raise FrameError("short_error", "error response without a code")
    code = p[0]
    if len(p) >= 2 and len(p) == 2 + p[1] and p[1] >= 2:
        pc_epc = p[2:]
        return ErrorResponse(code, error_name(code), pc_epc[0] << 8 | pc_epc[1], bytes(pc_epc[2:]))
    return ErrorResponse(code, error_name(code))


def is_success(frame: Frame, command: int) -> bool:
    """True for the plain ``00`` acknowledgement a set-command gets (e.g. ``BB 01 B6 00 01 00 B8 7E``)."""
    return frame.type == FrameType.RESPONSE and frame.command == command and frame.params == b"\x00"


def _expect(frame: Frame, command: int, length: int | None) -> bytes:
    if frame.type != FrameType.RESPONSE or frame.command != command:
        raise FrameError(
            "unexpected",
            f"expected response to 0x{command:02X}, got type 0x{frame.type:02X} "
            f"command 0x{frame.command:02X}",
        )
    if length is not None and len(frame.params) != length:
        raise FrameError(
            "bad_length",
            f"response to 0x{command:02X} needs {length} parameter bytes, got {len(frame.params)}",
        )
    return frame.params


def decode_module_info(frame: Frame) -> tuple[int, str]:
    """(info type, ASCII text) from a module-info response."""
    p = _expect(frame, Command.MODULE_INFO, None)
    if not p:
        raise FrameError("bad_length", "module info response without parameters")
    return p[0], p[1:].decode("ascii", errors="replace").rstrip("\x00")


def decode_power(frame: Frame) -> float:
    p = _expect(frame, Command.GET_POWER, 2)
    return (p[0] << 8 | p[1]) / 100


def decode_region(frame: Frame) -> int:
    return _expect(frame, Command.GET_REGION, 1)[0]


def decode_query(frame: Frame) -> QueryParams:
    p = _expect(frame, Command.GET_QUERY, 2)
    return QueryParams.from_int(p[0] << 8 | p[1])


# --------------------------------------------------------------------------------------------
# Stream decoding


class StreamDecoder:
    """Incremental framer for a byte stream from (or to) the module.

    ``feed(chunk)`` returns the complete, valid frames found so far, in order; a partial frame at
    the end of the buffer is kept for the next feed. A candidate frame is read by its length
    field and then checked (type byte, checksum, end byte); on any mismatch the decoder
    resynchronises at the next header byte after the rejected candidate's header, so a good frame
    hidden behind a corrupted one is still found.

    ``stats`` counts rejects by reason: ``bad_type``, ``oversize``, ``bad_checksum``,
    ``bad_end``, ``truncated`` (incomplete candidates dropped by ``flush()``) and
    ``garbage_bytes`` (bytes skipped while looking for a header, rejected headers included).
    """

    __slots__ = ("header", "end", "max_params", "valid_types", "stats", "_buf", "frames_ok")

    def __init__(
        self,
        header: int = HEADER,
        end: int = END,
        max_params: int = MAX_PARAMS,
        valid_types: frozenset[int] | None = VALID_TYPES,
    ) -> None:
        self.header = header
        self.end = end
        self.max_params = max_params
        self.valid_types = valid_types
        self.stats: dict[str, int] = {
            "bad_type": 0,
            "oversize": 0,
            "bad_checksum": 0,
            "bad_end": 0,
            "truncated": 0,
            "garbage_bytes": 0,
        }
        self.frames_ok = 0
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    @property
    def rejected(self) -> int:
        s = self.stats
        return s["bad_type"] + s["oversize"] + s["bad_checksum"] + s["bad_end"] + s["truncated"]

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Frame]:
        buf = self._buf
        buf += chunk
        out: list[Frame] = []
        pos = self._scan(buf, out, final=False)
        if pos:
            del buf[:pos]
        return out

    def flush(self) -> list[Frame]:
        """Treat the stream as ended (or idle): drop incomplete candidates, return what remains."""
        buf = self._buf
        out: list[Frame] = []
        self._scan(buf, out, final=True)
        buf.clear()
        return out

    def _scan(self, buf: bytearray, out: list[Frame], final: bool) -> int:
        header = self.header
        stats = self.stats
        n = len(buf)
        pos = 0
        garbage = 0
        good = 0
        while True:
            h = buf.find(header, pos)
            if h < 0:
                garbage += n - pos
                pos = n
                break
            garbage += h - pos
            pos = h
            verdict = self._judge(buf, h, final)
            if verdict is None:
                break
            if isinstance(verdict, str):  # not a frame: skip its header byte, look again after it
                stats[verdict] += 1
                garbage += 1
                pos = h + 1
                continue
            out.append(Frame(buf[h + 1], buf[h + 2], bytes(buf[h + 5 : verdict])))
            good += 1
            pos = verdict + 2
        if garbage:
            stats["garbage_bytes"] += garbage
        self.frames_ok += good
        return pos

    def _judge(self, buf: bytearray, h: int, final: bool) -> int | str | None:
        """The candidate whose header is at `h`: where its parameters stop when it is a good frame, the
        stats key saying why not, or None while more bytes may still complete it (never when `final`)."""
        n = len(buf)
        valid_types = self.valid_types
        if n - h < 5:
            # A header needs its type byte before it can be judged.
            if n - h >= 2 and valid_types is not None and buf[h + 1] not in valid_types:
                return "bad_type"
            return "truncated" if final else None
        if valid_types is not None and buf[h + 1] not in valid_types:
            return "bad_type"
        plen = buf[h + 3] << 8 | buf[h + 4]
        if plen > self.max_params:
            return "oversize"
        stop = h + 5 + plen
        if stop + 2 > n:
            return "truncated" if final else None
        if (sum(buf[h + 1 : stop]) & 0xFF) != buf[stop]:
            return "bad_checksum"
        if buf[stop + 1] != self.end:
            return "bad_end"
        return stop
