"""A virtual UHF reader module speaking the M100-family serial protocol byte for byte.

:class:`ReaderCore` is pure (host bytes in, reader bytes out, ``poll(now)`` for inventory notices;
the radio model says which tags are in the field); :class:`VirtualReaderPty` puts it behind a
pseudo-terminal paced to 115,200 baud, with ``unplug()``/``replug()``. Behaviour beyond the
protocol's examples: docs/rfid.md, "The virtual reader".
"""

from __future__ import annotations

import contextlib
import os
import select
import tempfile
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Iterable

from edge.rfid import codec
from edge.rfid.codec import Command, ErrorCode, Frame, FrameType, StreamDecoder

__all__ = ["ReaderCore", "TagSource", "VirtualReaderPty"]

#: ``tags_in_field(now) -> [(epc, rssi_dbm)]``; an EPC is bytes or a hex string.
TagSource = Callable[[float], Iterable[tuple[bytes | str, int]]]

#: Wire rate of the module's UART. Why: 8N1 costs 10 bit times per byte, so 11,520 bytes/s.
DEFAULT_BAUD = 115200
BITS_PER_BYTE = 10
#: Time one Gen2 inventory round takes on the module's radio. Why: typical M100 multi-poll
#: reports each tag in the field ~30-50 times per second with a handful of tags.
DEFAULT_ROUND_S = 0.025
#: Power range the "26 dBm" module accepts, in dBm x 100. Why: M100 datasheet range 18.5-26 dBm
#: (we accept from 5 dBm so tests can use low values); outside -> error 0x17.
MIN_POWER_CDBM = 500
MAX_POWER_CDBM = 2600
VALID_REGIONS = frozenset(int(r) for r in codec.Region)


class ReaderCore:
    """The module's command handling and inventory state machine, with no I/O and no clock."""

    def __init__(
        self,
        tags_in_field: TagSource,
        *,
        hardware: str = "M100 26dBm V1.0",
        software: str = "V2.3.5",
        manufacturer: str = "MagicRF",
        header: int = codec.HEADER,
        end: int = codec.END,
        round_s: float = DEFAULT_ROUND_S,
        pc_flags: int = 0x0400,
        notice_command: int = Command.SINGLE_INVENTORY,
        empty_round_error: bool = False,
    ) -> None:
        self.tags_in_field = tags_in_field
        self.info = {
            codec.INFO_HARDWARE: hardware,
            codec.INFO_SOFTWARE: software,
            codec.INFO_MANUFACTURER: manufacturer,
        }
        self.header = header
        self.end = end
        self.round_s = round_s
        self.pc_flags = pc_flags
        self.notice_command = notice_command
        self.empty_round_error = empty_round_error
        self._decoder = StreamDecoder(header, end)
        #: The last host frames received, newest last (bounded: a simulation runs for days).
        self.commands_seen: deque[Frame] = deque(maxlen=1000)
        self.reset()

    # -- state ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Power cycle: defaults back, inventory stopped, partial input dropped."""
        self.power_cdbm = 2600
        self.region = int(codec.Region.CHINA_900)
        self.query = codec.QueryParams(session=0, target=0, q=4).to_int()
        self.baud = DEFAULT_BAUD
        self.inventory_running = False
        self.rounds_left = 0
        self.next_round_at = 0.0
        self._decoder.reset()

    @property
    def power_dbm(self) -> float:
        return self.power_cdbm / 100

    @property
    def rejected_frames(self) -> dict[str, int]:
        return dict(self._decoder.stats)

    # -- bytes in / bytes out --------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> bytes:
        """Feed host bytes; return everything the module answers right away."""
        out = bytearray()
        for frame in self._decoder.feed(data):
            self.commands_seen.append(frame)
            out += self.handle(frame, now)
        return bytes(out)

    def poll(self, now: float) -> bytes:
        """Notices of the next multiple-inventory round if one is due (at most one round per call)."""
        if not self.inventory_running or now < self.next_round_at:
            return b""
        self.next_round_at = now + self.round_s
        self.rounds_left -= 1
        if self.rounds_left <= 0:
            self.inventory_running = False
        out = self._round(now, self.notice_command)
        if not out and self.empty_round_error:
            return self._error(ErrorCode.NO_TAG)
        return out

    def next_due(self) -> float | None:
        return self.next_round_at if self.inventory_running else None

    # -- frames ----------------------------------------------------------------------------

    def _frame(self, type: int, command: int, params: bytes) -> bytes:
        return codec.encode_frame(type, command, params, header=self.header, end=self.end)

    def _ok(self, command: int) -> bytes:
        return self._frame(FrameType.RESPONSE, command, b"\x00")

    def _error(self, code: int) -> bytes:
        return codec.encode_error(code, header=self.header, end=self.end)

    def _round(self, now: float, command: int) -> bytes:
        out = bytearray()
        for epc, rssi in self.tags_in_field(now):
            raw = bytes.fromhex(epc) if isinstance(epc, str) else bytes(epc)
            notice = codec.make_notice(
                raw, max(-128, min(127, int(rssi))), codec.pc_for_epc(raw, self.pc_flags)
            )
            out += codec.encode_notice(notice, command, header=self.header, end=self.end)
        return bytes(out)

    def handle(self, frame: Frame, now: float) -> bytes:
        """Answer one decoded host frame; anything malformed or unknown gets BAD_COMMAND."""
        answer = _COMMANDS.get(frame.command) if frame.type == FrameType.COMMAND else None
        out = answer(self, frame.params, now) if answer is not None else None
        return self._error(ErrorCode.BAD_COMMAND) if out is None else out

    # -- commands: each answers its parameters, or None when they are malformed ----------------

    def _module_info(self, p: bytes, now: float) -> bytes | None:
        if len(p) != 1 or p[0] not in self.info:
            return None
        return self._frame(FrameType.RESPONSE, Command.MODULE_INFO, bytes((p[0],)) + self.info[p[0]].encode("ascii"))

    def _single_inventory(self, p: bytes, now: float) -> bytes | None:
        if p:
            return None
        return self._round(now, Command.SINGLE_INVENTORY) or self._error(ErrorCode.NO_TAG)

    def _multiple_inventory(self, p: bytes, now: float) -> bytes | None:
        if len(p) != 3 or p[0] != codec.MULTI_INVENTORY_RESERVED or not (p[1] << 8 | p[2]):
            return None
        self.inventory_running = True
        self.rounds_left = p[1] << 8 | p[2]
        self.next_round_at = now
        return b""

    def _stop_inventory(self, p: bytes, now: float) -> bytes | None:
        if p:
            return None
        self.inventory_running = False
        self.rounds_left = 0
        return self._ok(Command.STOP_INVENTORY)

    def _set_power(self, p: bytes, now: float) -> bytes | None:
        if len(p) != 2 or not MIN_POWER_CDBM <= (p[0] << 8 | p[1]) <= MAX_POWER_CDBM:
            return None
        self.power_cdbm = p[0] << 8 | p[1]
        return self._ok(Command.SET_POWER)

    def _get_power(self, p: bytes, now: float) -> bytes | None:
        return None if p else self._frame(FrameType.RESPONSE, Command.GET_POWER, self.power_cdbm.to_bytes(2, "big"))

    def _set_region(self, p: bytes, now: float) -> bytes | None:
        if len(p) != 1 or p[0] not in VALID_REGIONS:
            return None
        self.region = p[0]
        return self._ok(Command.SET_REGION)

    def _get_region(self, p: bytes, now: float) -> bytes | None:
        return None if p else self._frame(FrameType.RESPONSE, Command.GET_REGION, bytes((self.region,)))

    def _set_query(self, p: bytes, now: float) -> bytes | None:
        if len(p) != 2 or p[1] & 0x07:
            return None
        self.query = p[0] << 8 | p[1]
        return self._ok(Command.SET_QUERY)

    def _get_query(self, p: bytes, now: float) -> bytes | None:
        return None if p else self._frame(FrameType.RESPONSE, Command.GET_QUERY, self.query.to_bytes(2, "big"))

    def _set_baud(self, p: bytes, now: float) -> bytes | None:
        if len(p) != 2 or not (p[0] << 8 | p[1]):
            return None
        self.baud = (p[0] << 8 | p[1]) * 100
        return b""


_COMMANDS: dict[int, Callable[[ReaderCore, bytes, float], bytes | None]] = {
    Command.MODULE_INFO: ReaderCore._module_info,
    Command.SINGLE_INVENTORY: ReaderCore._single_inventory,
    Command.MULTIPLE_INVENTORY: ReaderCore._multiple_inventory,
    Command.STOP_INVENTORY: ReaderCore._stop_inventory,
    Command.SET_POWER: ReaderCore._set_power,
    Command.GET_POWER: ReaderCore._get_power,
    Command.SET_REGION: ReaderCore._set_region,
    Command.GET_REGION: ReaderCore._get_region,
    Command.SET_QUERY: ReaderCore._set_query,
    Command.GET_QUERY: ReaderCore._get_query,
    Command.SET_BAUD: ReaderCore._set_baud,
}


class VirtualReaderPty:
    """A :class:`ReaderCore` behind a pseudo-terminal, with a link paced at the UART's rate."""

    #: Output the core may queue ahead of the link. Why: a real module's radio stalls when its
    #: UART buffer is full, so notices are not piled up faster than the link drains them.
    TX_BACKLOG_BYTES = 64
    #: Largest burst written at once after an idle spell. Why: models the module's small FIFO.
    BURST_BYTES = 256
    #: Service-loop period. Why: 2 ms is one 24-byte notice at 115,200 baud.
    TICK_S = 0.002

    def __init__(
        self,
        core: ReaderCore,
        clock: Callable[[], float] = time.monotonic,
        *,
        baudrate: int = DEFAULT_BAUD,
        link_dir: str | None = None,
        link_name: str = "usb-instore_Virtual_UHF_Reader_0001-if00-port0",
    ) -> None:
        self.core = core
        self.clock = clock
        self.bytes_per_s = baudrate / BITS_PER_BYTE
        self._own_dir = link_dir is None
        self.link_dir = link_dir if link_dir is not None else tempfile.mkdtemp(prefix="instore-by-id-")
        self.link_path = os.path.join(self.link_dir, link_name)
        self._lock = threading.RLock()
        self._master: int | None = None
        self._slave: int | None = None
        self._path: str | None = None
        self._tx = bytearray()
        self._credit = 0.0
        self._last_tick = clock()
        self._closed = threading.Event()
        self.bytes_in = 0
        self.bytes_out = 0
        self.plug_count = 0
        self._open_pty()
        self._thread = threading.Thread(target=self._loop, name="virtual-uhf-reader", daemon=True)
        self._thread.start()

    # -- public ----------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The slave tty the driver opens (``/dev/pts/N``); raises while unplugged."""
        with self._lock:
            if self._path is None:
                raise RuntimeError("virtual reader is unplugged")
            return self._path

    @property
    def plugged(self) -> bool:
        with self._lock:
            return self._master is not None

    def unplug(self) -> None:
        """The USB cable is pulled: the tty and its by-id link vanish, the module loses power."""
        with self._lock:
            self._close_pty()
            self.core.reset()

    def replug(self) -> None:
        with self._lock:
            if self._master is None:
                self._open_pty()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        with self._lock:
            self._close_pty()
        if self._own_dir:
            with contextlib.suppress(OSError):
                os.rmdir(self.link_dir)

    def __enter__(self) -> VirtualReaderPty:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pty -------------------------------------------------------------------------------

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: a UART delivers bytes as they are
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._path = os.ttyname(slave)
        self._tx.clear()
        self._credit = 0.0
        self._last_tick = self.clock()
        tmp = self.link_path + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(self._path, tmp)
        os.replace(tmp, self.link_path)
        self.plug_count += 1

    def _close_pty(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.link_path)
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self._path = None
        self._tx.clear()

    # -- service loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                master = self._master
            if master is None:
                self._closed.wait(self.TICK_S * 5)
                continue
            try:
                ready, _, _ = select.select([master], [], [], self.TICK_S)
            except (OSError, ValueError):  # closed by unplug() meanwhile
                continue
            with self._lock:
                if self._master != master:
                    continue
                try:
                    self._service(master, bool(ready))
                except OSError:
                    # The other end misbehaved (e.g. EIO while nobody has the slave open).
                    continue

    def _service(self, master: int, readable: bool) -> None:
        now = self.clock()
        if readable:
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                data = b""
            if data:
                self.bytes_in += len(data)
                self._tx += self.core.receive(data, now)
        if len(self._tx) < self.TX_BACKLOG_BYTES:
            self._tx += self.core.poll(now)
        elapsed = max(0.0, now - self._last_tick)
        self._last_tick = now
        self._credit = min(self._credit + elapsed * self.bytes_per_s, float(self.BURST_BYTES))
        if self._tx and self._credit >= 1:
            n = min(len(self._tx), int(self._credit))
            try:
                written = os.write(master, bytes(self._tx[:n]))
            except BlockingIOError:
                written = 0
            del self._tx[:written]
            self._credit -= written
            self.bytes_out += written
