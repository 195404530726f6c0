"""Live alert fan-out: 50 tablets on the SSE stream of the real server, over loopback.

Each event is emitted from a plain thread (as the MQTT thread does) through
`GatewayCore.emit`, which stamps `emitted_at`; every client notes when the event's data
line arrives. Reported: p50/p95/max of (receipt - emit) over all clients x events.
Target: p95 <= 200 ms. Clients and server share the machine, so this is pessimistic.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from pathlib import Path

import httpx

from benchmarks._server import STORE, delay_stats, login, serve_app

NAME = "fanout"
CLIENTS = 50
TARGET_P95_MS = 200.0


async def _client(
    url: str, token: str, n_events: int, delays: list[float], ready: asyncio.Event, connected: list[int]
) -> None:
    async with (
        httpx.AsyncClient(timeout=60) as c,
        c.stream("GET", f"{url}/api/stream", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        r.raise_for_status()
        got = 0
        async for line in r.aiter_lines():
            if line.lstrip(": ") == "connected":  # the stream's first comment: this client is subscribed
                connected[0] += 1
                if connected[0] == connected[1]:
                    ready.set()
            if line.startswith("data:"):
                now = time.time()
                ev = json.loads(line[5:])
                delays.append(now - ev["data"]["emitted_at"])
                got += 1
                if got == n_events:
                    return


def run(quick: bool = False) -> dict:
    from firmware_config.store import load_store
    from gateway.engines.presence import PresenceEvent
    from gateway.ingest.core import GatewayCore
    from gateway.storage.auth import create_staff
    from gateway.storage.db import open_db
    from gateway.web.app import create_app

    n_events = 5 if quick else 40
    spacing_s = 0.05
    with tempfile.TemporaryDirectory() as tmp:
        core = GatewayCore(load_store(STORE), open_db(Path(tmp) / "gw.db"), clock=time.time)
        create_staff(core.db, "bench", "bench-password", "associate")
        server = serve_app(create_app(core))
        url = server.url
        try:
            token = login(url)
            delays: list[float] = []

            def emitter(ready: threading.Event) -> None:
                ready.wait(30)
                deadline = time.monotonic() + 10
                while core.broadcaster.clients < CLIENTS and time.monotonic() < deadline:
                    time.sleep(0.01)
                for i in range(n_events):
                    core.emit(PresenceEvent("entered", f"c{i}", time.time(), "entrance", "pavement", 0.9))
                    time.sleep(spacing_s)

            async def main() -> None:
                ready = asyncio.Event()
                connected = [0, CLIENTS]
                started = threading.Event()
                t = threading.Thread(target=emitter, args=(started,), daemon=True)
                t.start()
                tasks = [
                    asyncio.create_task(_client(url, token, n_events, delays, ready, connected))
                    for _ in range(CLIENTS)
                ]
                await asyncio.wait_for(ready.wait(), 30)
                started.set()
                await asyncio.wait_for(asyncio.gather(*tasks), 120)
                t.join(10)

            asyncio.run(main())
        finally:
            server.stop()
    ms = [d * 1000 for d in delays]
    stats, p95 = delay_stats(ms, "ms", 2)
    return {
        "clients": CLIENTS,
        "events": n_events,
        "deliveries": len(ms),
        **stats,
        "target": {"delay_p95_ms": TARGET_P95_MS},
        "target_met": bool(p95 <= TARGET_P95_MS and len(ms) == CLIENTS * n_events),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
