"""`connected()`, the NATS connection of the store's publisher and of `instore hq`: a stop asked for
before the server was ever reached ends it (nats-py would retry its first connect for ever), each
failed first attempt is counted, and a server that comes up late is still reached. Real nats-server."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from pathlib import Path

from firmware_config.store import Chain
from gateway.channels.chain_publish import ChainPublisher, Cursor, connected
from gateway.events import EventLog
from gateway.storage.db import open_db
from instore.broker import free_port
from instore.nats_server import nats_server_bin

STOP_WITHIN_S = 3.0  # a stop is seen at once; this is slack for a loaded machine


async def _stopped_after(delay_s: float, url: str) -> tuple[object, list[Exception], float]:
    stop, failures = asyncio.Event(), []
    asyncio.get_running_loop().call_later(delay_s, stop.set)
    t0 = time.monotonic()
    async with connected(url, stop, failures.append) as nc:
        return nc, failures, time.monotonic() - t0


def test_a_stop_before_the_server_was_ever_reached_ends_the_connect() -> None:
    url = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    nc, failures, took = asyncio.run(asyncio.wait_for(_stopped_after(1.5, url), 1.5 + STOP_WITHIN_S))
    assert nc is None
    assert failures and all(isinstance(f, Exception) for f in failures)  # each attempt counted, none hidden
    assert took < 1.5 + STOP_WITHIN_S


def test_a_callers_own_error_callback_hears_the_failed_attempts_too() -> None:
    heard: list[Exception] = []

    async def hear(exc: Exception) -> None:
        heard.append(exc)

    async def main() -> tuple[object, list[Exception]]:
        stop, failures = asyncio.Event(), []
        asyncio.get_running_loop().call_later(1.5, stop.set)
        async with connected(f"nats://127.0.0.1:{free_port()}", stop, failures.append, error_cb=hear) as nc:
            return nc, failures

    nc, failures = asyncio.run(asyncio.wait_for(main(), 1.5 + STOP_WITHIN_S))
    assert nc is None and failures and len(heard) == len(failures)


def test_the_publisher_stops_while_its_nats_never_came(tmp_path: Path) -> None:
    db, lock = open_db(tmp_path / "gw.db"), threading.RLock()
    chain = Chain(hq_url="tls://hq:7422", nats_port=free_port())
    publisher = ChainPublisher("a", chain, EventLog(db, lock), Cursor(db, lock, "chain-a"))

    async def run() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.0, stop.set)
        await publisher.run(stop)

    asyncio.run(asyncio.wait_for(run(), 1.0 + STOP_WITHIN_S))
    assert publisher.failures >= 1  # the unreachable store NATS shows in its failures metric


def test_a_server_that_comes_up_late_is_reached(tmp_path: Path) -> None:
    port = free_port()

    async def main() -> bool:
        stop, failures = asyncio.Event(), []
        server = None

        def start() -> None:
            nonlocal server
            server = subprocess.Popen([nats_server_bin(), "-a", "127.0.0.1", "-p", str(port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        asyncio.get_running_loop().call_later(1.5, start)
        try:
            async with connected(f"nats://127.0.0.1:{port}", stop, failures.append) as nc:
                assert nc is not None and failures  # tried (and counted) before the server was there
                await nc.publish("x", b"1")
                await nc.flush()
                return bool(nc.is_connected)
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)

    assert asyncio.run(asyncio.wait_for(main(), 20))
