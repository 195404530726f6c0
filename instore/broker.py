"""Starting an MQTT broker for the demo, the tests and the benchmarks.

Mosquitto when it is installed (a subprocess on a free loopback port with a generated
config), otherwise the embedded pure-Python broker amqtt, so the demo runs with pip alone.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")


@dataclass
class Broker:
    """A running local broker; `stop()` / `start()` restart it on the same port."""

    kind: str
    port: int
    workdir: Path
    proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        if self.kind == "mosquitto":
            conf = self.workdir / "mosquitto.conf"
            conf.write_text(
                f"listener {self.port} 127.0.0.1\n"
                "allow_anonymous true\n"  # loopback only: the local demo/test broker, not a store's
                # like a store's broker: sessions and queued QoS 1 messages survive a restart
                f"persistence true\npersistence_location {self.workdir}/\n"
                f"user {getpass.getuser()}\n"  # as root Mosquitto would switch to `mosquitto`, who cannot write here
                "max_queued_messages 200000\n"
                "log_dest stderr\nlog_type error\nlog_type warning\n"
            )
            cmd = [shutil.which("mosquitto") or "mosquitto", "-c", str(conf)]
        else:
            cmd = [sys.executable, "-m", "instore.amqtt_broker", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(self.workdir / "broker.log", "ab"))
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def start_broker(prefer: str = "auto", port: int | None = None, workdir: Path | None = None) -> Broker:
    """`prefer`: 'auto' (Mosquitto if on PATH), 'mosquitto' or 'amqtt'."""
    if prefer == "mosquitto" and not shutil.which("mosquitto"):
        raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
    kind = prefer if prefer != "auto" else ("mosquitto" if shutil.which("mosquitto") else "amqtt")
    wd = workdir or Path(tempfile.mkdtemp(prefix="instore-broker-"))
    return Broker(kind, port or free_port(), wd).start()
