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
import numpy as np
import uvicorn

from instore.broker import free_port

NAME = "fanout"
STORE = Path(__file__).resolve().parent.parent / "firmware_config" / "examples" / "boutique.toml"
CLIENTS = 50
TARGET_P95_MS = 200.0


def serve_app(app) -> tuple[uvicorn.Server, threading.Thread, str]:  # noqa: ANN001
    """uvicorn on a free loopback port in a thread (shared with the customer-card benchmark)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def login(url: str) -> str:
    r = httpx.post(f"{url}/api/login", json={"username": "bench", "password": "bench-password"})
    r.raise_for_status()
    return r.json()["token"]


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
    from gateway.app import create_app
    from gateway.auth import create_staff
    from gateway.core import GatewayCore
    from gateway.db import open_db
    from gateway.presence import PresenceEvent

    n_events = 5 if quick else 40
    spacing_s = 0.05
    with tempfile.TemporaryDirectory() as tmp:
        core = GatewayCore(load_store(STORE), open_db(Path(tmp) / "gw.db"), clock=time.time)
        create_staff(core.db, "bench", "bench-password", "associate")
        server, thread, url = serve_app(create_app(core))
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
            server.should_exit = True
            thread.join(10)
    ms = np.asarray(delays) * 1000
    p95 = float(np.percentile(ms, 95))
    return {
        "clients": CLIENTS,
        "events": n_events,
        "deliveries": int(len(ms)),
        "delay_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "delay_p95_ms": round(p95, 2),
        "delay_max_ms": round(float(ms.max()), 2),
        "target": {"delay_p95_ms": TARGET_P95_MS},
        "target_met": bool(p95 <= TARGET_P95_MS and len(ms) == CLIENTS * n_events),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
