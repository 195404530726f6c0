"""Is this node's clock synchronised? (A Raspberry Pi has no real-time clock; see docs/deploy.md.)

The kernel keeps the answer: `adjtimex(2)` with no modes set only reads, needs no privilege,
and reports TIME_ERROR or the STA_UNSYNC status bit while no time service (systemd-timesyncd,
chrony, ntpd) has disciplined the clock. This is what `timedatectl`'s `NTPSynchronized` shows,
without starting a process or needing systemd. `clock_synced` parses the two numbers (pure);
`read_clock_synced` is the thin adapter, None wherever the call is not available.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

TIME_ERROR = 5  # adjtimex return value: the clock is not synchronised
STA_UNSYNC = 0x0040  # timex.status bit: the clock is not synchronised
TIMEX_SIZE = 512  # bytes; struct timex is 208 on 64-bit Linux, room to spare for other ABIs
STATUS_OFFSET = 40 if ctypes.sizeof(ctypes.c_long) == 8 else 20  # after modes + 4 longs (+ padding on 64-bit)


def clock_synced(state: int, status: int) -> bool | None:
    """`adjtimex`'s return value and `timex.status` -> synchronised; None for a failed call."""
    if state < 0:
        return None
    return state != TIME_ERROR and not status & STA_UNSYNC


def read_clock_synced() -> bool | None:
    """The kernel's view of this machine's clock (Linux); None where it cannot be asked."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buf = ctypes.create_string_buffer(TIMEX_SIZE)  # modes = 0: read only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    status = ctypes.c_int.from_buffer(buf, STATUS_OFFSET).value
    return clock_synced(state, status)
