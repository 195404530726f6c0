"""A tiny sd_notify client: tell systemd we are ready, alive, and what we are doing.

The units in `deploy/` use `Type=notify` and `WatchdogSec=`: systemd considers the service
started only after `READY=1` (so dependants wait for a real broker connection, not a fork),
and restarts it if `WATCHDOG=1` stops arriving (a hung BLE stack is then a restart, not a
silent outage). Without `NOTIFY_SOCKET` (run by hand, in tests, in a container) every call is
a no-op, so callers never need to know how they were started.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class Notifier:
    """Sends datagrams to `$NOTIFY_SOCKET`; `enabled` is False when there is none."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # "@name" is a Linux abstract socket: its address starts with a NUL byte.
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.enabled = bool(address)
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_s: float | None = int(watchdog_usec) / 1e6 if watchdog_usec.isdigit() else None

    def notify(self, *fields: str) -> bool:
        """Send `KEY=value` fields in one datagram; True if sent, False if no socket or it failed.

        A failure is deliberately swallowed: systemd's bookkeeping must never crash the service.
        """
        if not self.enabled:
            return False
        message = "\n".join(fields).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text.replace(chr(10), ' ')}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def watchdog_interval(self) -> float | None:
        """How often to call `watchdog()`: half of WatchdogSec, as sd_watchdog_enabled(3) advises."""
        return None if self.watchdog_s is None else self.watchdog_s / 2
