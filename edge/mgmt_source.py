"""Advertisements from the kernel's Bluetooth management socket (thin adapter, Linux).

Where the node holds CAP_NET_ADMIN it reads advertisements straight from the kernel's mgmt
control channel and parses the raw bytes itself (`edge.ble.mgmt`); BlueZ over D-Bus still
starts and stops the scan (`edge.bluez_control`). Without the capability the kernel lets the socket open but
withholds device-found events, so `auto` checks the capability too and otherwise keeps the
D-Bus path, saying so in the log. Why and how to grant it: docs/deploy.md.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from edge.ble.frames import AD_MANUFACTURER_DATA, AD_SERVICE_DATA_16, BleFrameError
from edge.ble.mgmt import DeviceFound, MgmtEventError, eir_data, parse_event
from edge.scanning import EDDYSTONE_SERVICE_DATA, IBEACON_PREFIX

log = logging.getLogger("instore.edge.mgmt")

AF_BLUETOOTH = 31
BTPROTO_HCI = 1
HCI_DEV_NONE = 0xFFFF  # the control channel is bound to no one controller
HCI_CHANNEL_CONTROL = 3
CAP_NET_ADMIN = 12  # bit in /proc/<pid>/status CapEff
#: The controller the node listens to. Why: bleak scans on hci0 unless told otherwise.
ADAPTER_INDEX = 0
#: Read size: the longest device-found event (1,650 bytes of extended advertising data, 22 of
#: header and fields) fits. Why not 64 KiB: each read allocates it. Longer events are other kinds.
MAX_EVENT = 2048
#: Log the 1st malformed event and then every this many. Why: a flood must not flood the journal.
MALFORMED_LOG_EVERY = 1000
#: After a wake-up, wait this long before the next. Why: one wake-up per batch of events rather
#: than per advertisement (as for the RFID readers); a window's timing does not notice 20 ms.
COALESCE_S = 0.02
#: AD type and opening bytes of the store's beacon formats (BlueZ's or-patterns, `edge.scanning`):
#: an advertisement holding neither is counted anonymously without being split into its fields.
BEACON_MARKERS = (
    bytes((AD_MANUFACTURER_DATA,)) + IBEACON_PREFIX,
    bytes((AD_SERVICE_DATA_16,)) + EDDYSTONE_SERVICE_DATA,
)

Advert = Callable[[bytes, int, dict[int, bytes], dict[str, bytes]], None]  # device key, rssi, mfr, svc


class EventSocket(Protocol):
    """What the source needs of a socket: the kernel's, or one end of a socketpair in tests."""

    def fileno(self) -> int: ...
    def recv(self, bufsize: int, /) -> bytes: ...
    def setblocking(self, flag: bool, /) -> None: ...
    def close(self) -> None: ...


class _SockaddrHci(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("dev", ctypes.c_ushort), ("channel", ctypes.c_ushort)]


def open_control_socket() -> socket.socket:
    """The mgmt control channel, or OSError (no Bluetooth in the kernel, address family refused).

    Python's `bind` for HCI sockets cannot name a channel, so the bind goes through libc.
    """
    sock = socket.socket(AF_BLUETOOTH, socket.SOCK_RAW | socket.SOCK_CLOEXEC, BTPROTO_HCI)
    libc = ctypes.CDLL(None, use_errno=True)
    addr = _SockaddrHci(AF_BLUETOOTH, HCI_DEV_NONE, HCI_CHANNEL_CONTROL)
    if libc.bind(sock.fileno(), ctypes.byref(addr), ctypes.sizeof(addr)) != 0:
        err = ctypes.get_errno()
        sock.close()
        raise OSError(err, f"binding the Bluetooth management channel: {os.strerror(err)}")
    return sock


def has_net_admin(status_file: str | Path = "/proc/self/status") -> bool:
    """Whether this process holds CAP_NET_ADMIN (effective), without which no device-found events come."""
    try:
        for line in Path(status_file).read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except (OSError, ValueError):
        return False
    return False


class MgmtSourceError(RuntimeError):
    """`ble.source = "mgmt"` was asked for and the socket cannot be used."""


def choose_source(
    setting: str,
    opener: Callable[[], EventSocket] | None = None,
    capable: Callable[[], bool] | None = None,
) -> EventSocket | None:
    """The socket to read advertisements from, or None for bleak's D-Bus callbacks.

    `auto` falls back to D-Bus with one log line saying why; `mgmt` raises MgmtSourceError instead.
    `opener` and `capable` default to the kernel's socket and this process's capabilities.
    """
    if setting == "dbus":
        return None
    opener = opener or open_control_socket
    capable = capable or has_net_admin
    why = None
    sock = None
    if not capable():
        why = "the node lacks CAP_NET_ADMIN"
    else:
        try:
            sock = opener()
        except OSError as exc:
            why = f"the socket cannot be opened ({exc})"
    if sock is not None:
        log.info("advertisements from the kernel's management socket; D-Bus only controls the scan")
        return sock
    if setting == "mgmt":
        raise MgmtSourceError(f"ble.source = \"mgmt\": {why} (see docs/deploy.md)")
    log.info("advertisements over D-Bus: %s (see docs/deploy.md)", why)
    return None


class MgmtSource:
    """Reads device-found events from a socket on the event loop and hands each advert on."""

    def __init__(
        self, sock: EventSocket, on_advert: Advert, index: int = ADAPTER_INDEX, coalesce_s: float = COALESCE_S
    ) -> None:
        self.sock, self.on_advert, self.index, self.coalesce_s = sock, on_advert, index, coalesce_s
        self.events = 0  # device-found events passed on
        self.malformed = 0  # events skipped as malformed or truncated
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sock.setblocking(False)
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self.drain)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None
        self.sock.close()

    def _rearm(self) -> None:
        if self._loop is not None:  # not stopped meanwhile
            self._loop.add_reader(self.sock.fileno(), self.drain)

    def drain(self) -> None:
        """Handle every event waiting on the socket, then rest `coalesce_s` (one wake-up, many events)."""
        while True:
            try:
                buf = self.sock.recv(MAX_EVENT)
            except (BlockingIOError, InterruptedError):
                break
            if not buf:  # the other end closed (a socketpair): nothing more will come
                if self._loop is not None:
                    self._loop.remove_reader(self.sock.fileno())
                return
            self.handle(buf)
        if self._loop is not None and self.coalesce_s > 0:
            self._loop.remove_reader(self.sock.fileno())
            self._loop.call_later(self.coalesce_s, self._rearm)

    def handle(self, buf: bytes) -> None:
        """One event: an advert goes on; anything malformed is counted, logged and skipped."""
        try:
            ev = parse_event(buf)
            if ev is None or ev.index != self.index or ev.rssi is None:
                return
            maybe_beacon = any(marker in ev.eir for marker in BEACON_MARKERS)
            mfr, svc = eir_data(ev.eir) if maybe_beacon else ({}, {})  # the others: counted only
        except (MgmtEventError, BleFrameError) as exc:
            self._malformed(buf, exc)
            return
        self.events += 1
        self.on_advert(_key(ev), ev.rssi, mfr, svc)

    def _malformed(self, buf: bytes, exc: Exception) -> None:
        self.malformed += 1
        if self.malformed == 1 or self.malformed % MALFORMED_LOG_EVERY == 0:
            log.warning(
                "skipped a malformed management event (%d so far): %s; event %s",
                self.malformed, exc, buf[:32].hex(" "),
            )


def _key(ev: DeviceFound) -> bytes:
    """A device's identity within the node: its address and address type (never leaves the node)."""
    return ev.address + bytes((ev.address_type,))
