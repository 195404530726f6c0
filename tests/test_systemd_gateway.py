"""Under systemd (Type=notify, WatchdogSec=) the gateway says READY=1 once serving and keeps
sending WATCHDOG=1 while its event loop runs."""

from __future__ import annotations

import socket
import time

from firmware_config.store import load_store
from gateway.ingest.core import GatewayCore
from gateway.storage.db import open_db
from gateway.web.app import create_app
from tests.conftest import BOUTIQUE


def test_gateway_notifies_ready_and_watchdog(serve, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # WatchdogSec=0.4: a ping every 0.2 s
    core = GatewayCore(load_store(BOUTIQUE), open_db(tmp_path / "gw.db"), clock=time.time)
    serve(create_app(core))
    got: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and got.count("WATCHDOG=1") < 3:
        got += sock.recv(4096).decode().split("\n")
    assert any(line == "READY=1" for line in got)
    assert got.count("WATCHDOG=1") >= 3
