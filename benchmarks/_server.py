"""What the server benchmarks share: the real gateway app served by uvicorn on loopback, a staff
sign-in, a tablet's reader of the live stream, the WhatsApp gateway against our Cloud API
emulator, and the latency figures they report."""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn

STORE = Path(__file__).resolve().parent.parent / "firmware_config" / "examples" / "boutique.toml"
START_TIMEOUT_S = 15.0  # uvicorn, the gateway's lifespan included, is up well within this
STAFF = ("bench", "bench-password")
WA_SECRET = "bench-app-secret"
WA_ENV = {
    "INSTORE_WA_ACCESS_TOKEN": "test-access-token",
    "INSTORE_WA_APP_SECRET": WA_SECRET,
    "INSTORE_WA_VERIFY_TOKEN": "bench-verify-token",
}
WA_CONFIG = """
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


class Server:
    """uvicorn in a thread on a free loopback port, with the lifespan on (the gateway starts its
    worker and stream there)."""

    def __init__(self, app: Any, log_level: str = "warning") -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=0,
                log_level=log_level,
                lifespan="on",
                access_log=False,
                timeout_graceful_shutdown=1,
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def start(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_app(app: Any) -> Server:
    """`app` served and started (stop it with `.stop()`)."""
    return Server(app).start()


def login(url: str) -> str:
    """The bearer token of the benchmarks' staff member (create it with `STAFF`)."""
    r = httpx.post(f"{url}/api/login", json={"username": STAFF[0], "password": STAFF[1]})
    r.raise_for_status()
    return r.json()["token"]


def follow_stream(url: str, token: str, on_event: Callable[[dict[str, Any]], None]) -> threading.Event:
    """Read `/api/stream` in a thread like a tablet, handing each event to `on_event`; returns the
    event that stops it. Returns once the stream is open (or after 10 s)."""
    ready, stop = threading.Event(), threading.Event()

    def follow() -> None:
        try:
            with httpx.stream(
                "GET", f"{url}/api/stream", headers={"Authorization": f"Bearer {token}"}, timeout=None
            ) as r:
                for line in r.iter_lines():
                    if line.startswith(":"):
                        ready.set()
                    if stop.is_set():
                        return
                    if line.startswith("data:"):
                        on_event(json.loads(line[5:]))
        except httpx.HTTPError:  # the gateway stopping ends the stream
            pass

    threading.Thread(target=follow, daemon=True).start()
    ready.wait(10)
    return stop


@dataclass
class WhatsAppGateway:
    url: str  # the gateway
    emulator_url: str
    http: httpx.Client
    token: str  # a signed-in staff member's


@contextmanager
def whatsapp_gateway(
    customers: int, *, prefix: str, extra_config: str = "", emulator_webhooks: bool = False
) -> Iterator[WhatsAppGateway]:
    """The gateway with the WhatsApp channel mounted against the emulator (which reconciles with its
    by-key lookup), `customers` customers c0.. with WhatsApp numbers +4917000NNNNN and consent.
    `emulator_webhooks`: the emulator posts its webhooks (inbound, statuses) to this gateway."""
    from cloud_sync.config import parse_config
    from firmware_config.store import load_store
    from gateway.channels.whatsapp_host import whatsapp_service
    from gateway.ingest.core import GatewayCore
    from gateway.storage import auth
    from gateway.storage.customers import add_customer, record_consent
    from gateway.storage.db import open_db
    from gateway.web.app import create_app
    from gateway.web.routes_whatsapp import mount_whatsapp
    from sim.emulator_outbox import emulator_lookup
    from sim.whatsapp_emulator import EmulatorConfig, run_emulator

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        emu = run_emulator(EmulatorConfig(app_secret=WA_SECRET, webhook_delay_s=(0.01, 0.05), seed=1))
        db = open_db(Path(tmp) / "gw.db")
        now = time.time()
        for i in range(customers):
            add_customer(db, f"c{i}", f"Customer {i}", whatsapp=f"+4917000{i:05d}", now=now)
            record_consent(db, f"c{i}", "whatsapp_service", True, now=now)
        auth.create_staff(db, STAFF[0], STAFF[1], "associate", now=now)
        core = GatewayCore(load_store(STORE), db, clock=time.time)
        config = parse_config(WA_CONFIG.format(base=emu.url) + extra_config, environ=WA_ENV)
        svc = whatsapp_service(core, config, lookup=emulator_lookup(emu.url))
        app = create_app(core)
        mount_whatsapp(app, svc)
        gw = Server(app, log_level="critical").start()
        if emulator_webhooks:
            emu.server.config.app.state.emulator.config.webhook_url = f"{gw.url}/whatsapp/webhook"
        http = httpx.Client(timeout=10)
        token = http.post(f"{gw.url}/api/login", json={"username": STAFF[0], "password": STAFF[1]}).json()["token"]
        try:
            yield WhatsAppGateway(gw.url, emu.url, http, token)
        finally:
            http.close()
            gw.stop()
            emu.stop()
            svc.close()


def latency_ms(lat_ms: list[float]) -> tuple[dict[str, float | None], float]:
    """(p50, p95 and max of latencies in ms for the report, the p95 unrounded for the target);
    the p95 is infinite when none arrived."""
    lat_ms = sorted(lat_ms)
    p95 = lat_ms[int(0.95 * (len(lat_ms) - 1))] if lat_ms else float("inf")
    return {
        "latency_p50_ms": round(statistics.median(lat_ms), 2) if lat_ms else None,
        "latency_p95_ms": round(p95, 2),
        "latency_max_ms": round(lat_ms[-1], 2) if lat_ms else None,
    }, p95


def delay_stats(values: list[float], unit: str, digits: int) -> tuple[dict[str, float], float]:
    """(p50, p95 and max of delays keyed `delay_p50_<unit>` etc., rounded to `digits`; the p95 unrounded)."""
    s = np.asarray(values)
    p95 = float(np.percentile(s, 95))
    return {
        f"delay_p50_{unit}": round(float(np.percentile(s, 50)), digits),
        f"delay_p95_{unit}": round(p95, digits),
        f"delay_max_{unit}": round(float(s.max()), digits),
    }, p95
