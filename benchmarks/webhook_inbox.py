"""Benchmark ``webhook-inbox``: a customer's WhatsApp message to the staff tablet's live stream.

The emulator's ``/_emulator/inbound`` plays the customer: it posts a signed inbound webhook to
the real gateway (uvicorn on loopback, the WhatsApp channel mounted, outbox worker running);
the gateway verifies the signature, stores the message (window, inbox), appends a ``message``
staff event and pushes it to the SSE stream, where a signed-in client (like a tablet) reads
it.  Latency: from the inbound request to the event read off ``/api/stream``.  Target: p95
under 500 ms.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

NAME = "webhook-inbox"
TARGET_P95_MS = 500.0
SECRET = "bench-app-secret"
ENV = {
    "INSTORE_WA_ACCESS_TOKEN": "test-access-token",
    "INSTORE_WA_APP_SECRET": SECRET,
    "INSTORE_WA_VERIFY_TOKEN": "bench-verify-token",
}
CONFIG = """
store_name = "Bench"
[api]
base_url = "{base}"
phone_number_id = "106540352242922"
[journeys]
enabled = false
[catalogue]
enabled = false
[outbox]
rate_per_s = 200
"""


class _Server:
    """uvicorn in a thread with the lifespan on (the gateway starts its worker and stream there)."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=0,
                log_level="critical",
                lifespan="on",
                access_log=False,
                timeout_graceful_shutdown=1,
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def run(quick: bool = False) -> dict[str, Any]:
    from cloud_sync.config import parse_config
    from firmware_config.store import load_store
    from gateway import auth
    from gateway.app import create_app
    from gateway.core import GatewayCore
    from gateway.customers import add_customer, record_consent
    from gateway.db import open_db
    from gateway.routes_whatsapp import mount_whatsapp
    from gateway.whatsapp_host import whatsapp_service
    from sim.emulator_outbox import emulator_lookup
    from sim.whatsapp_emulator import EmulatorConfig, run_emulator

    n = 40 if quick else 300
    customers = 20
    store = Path(__file__).resolve().parent.parent / "firmware_config" / "examples" / "boutique.toml"
    with tempfile.TemporaryDirectory(prefix="bench-wa-") as tmp:
        emu = run_emulator(EmulatorConfig(app_secret=SECRET, webhook_delay_s=(0.01, 0.05), seed=1))
        db = open_db(Path(tmp) / "gw.db")
        now = time.time()
        for i in range(customers):
            add_customer(db, f"c{i}", f"Customer {i}", whatsapp=f"+4917000{i:05d}", now=now)
            record_consent(db, f"c{i}", "whatsapp_service", True, now=now)
        auth.create_staff(db, "bench", "bench-password", "associate", now=now)
        core = GatewayCore(load_store(store), db, clock=time.time)
        svc = whatsapp_service(
            core, parse_config(CONFIG.format(base=emu.url), environ=ENV), lookup=emulator_lookup(emu.url)
        )
        app = create_app(core)
        mount_whatsapp(app, svc)
        gw = _Server(app).start()
        emu.server.config.app.state.emulator.config.webhook_url = f"{gw.url}/whatsapp/webhook"
        http = httpx.Client(timeout=10)
        token = http.post(
            f"{gw.url}/api/login", json={"username": "bench", "password": "bench-password"}
        ).json()["token"]

        arrived: dict[str, float] = {}
        ready = threading.Event()
        stop = threading.Event()

        def follow() -> None:
            try:
                _follow()
            except httpx.HTTPError:  # the gateway stopping ends the stream
                pass

        def _follow() -> None:
            with httpx.stream(
                "GET", f"{gw.url}/api/stream", headers={"Authorization": f"Bearer {token}"}, timeout=None
            ) as r:
                for line in r.iter_lines():
                    if line.startswith(":"):
                        ready.set()
                    if stop.is_set():
                        return
                    if line.startswith("data:"):
                        data = json.loads(line[5:]).get("data", {})
                        if data.get("direction") == "in":
                            arrived[data["text"]] = time.perf_counter()

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        ready.wait(10)
        lat_ms: list[float] = []
        webhook_ms: list[float] = []
        for i in range(n):
            marker = f"bench message {i}"
            t0 = time.perf_counter()
            http.post(
                f"{emu.url}/_emulator/inbound", json={"from": f"4917000{i % customers:05d}", "text": marker}
            )
            webhook_ms.append((time.perf_counter() - t0) * 1000)
            deadline = time.monotonic() + 5
            while marker not in arrived and time.monotonic() < deadline:
                time.sleep(0.0005)
            if marker in arrived:
                lat_ms.append((arrived[marker] - t0) * 1000)
        stop.set()
        http.close()
        gw.stop()
        emu.stop()
        svc.close()
    lat_ms.sort()
    p95 = lat_ms[int(0.95 * (len(lat_ms) - 1))] if lat_ms else float("inf")
    return {
        "messages": n,
        "delivered_to_stream": len(lat_ms),
        "latency_p50_ms": round(statistics.median(lat_ms), 2) if lat_ms else None,
        "latency_p95_ms": round(p95, 2),
        "latency_max_ms": round(lat_ms[-1], 2) if lat_ms else None,
        "signed_webhook_roundtrip_p50_ms": round(statistics.median(webhook_ms), 2),
        "target": {"latency_p95_ms": f"< {TARGET_P95_MS:g}", "delivered_to_stream": f"== {n}"},
        "target_met": len(lat_ms) == n and p95 < TARGET_P95_MS,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
