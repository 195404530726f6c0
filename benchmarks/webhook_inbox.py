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
import time
from typing import Any

from benchmarks._server import follow_stream, latency_ms, whatsapp_gateway

NAME = "webhook-inbox"
TARGET_P95_MS = 500.0


def run(quick: bool = False) -> dict[str, Any]:
    n = 40 if quick else 300
    customers = 20
    with whatsapp_gateway(customers, prefix="bench-wa-", emulator_webhooks=True) as gw:
        arrived: dict[str, float] = {}

        def on_event(ev: dict[str, Any]) -> None:
            data = ev.get("data", {})
            if data.get("direction") == "in":
                arrived[data["text"]] = time.perf_counter()

        stop = follow_stream(gw.url, gw.token, on_event)
        lat_ms: list[float] = []
        webhook_ms: list[float] = []
        for i in range(n):
            marker = f"bench message {i}"
            t0 = time.perf_counter()
            gw.http.post(
                f"{gw.emulator_url}/_emulator/inbound", json={"from": f"4917000{i % customers:05d}", "text": marker}
            )
            webhook_ms.append((time.perf_counter() - t0) * 1000)
            deadline = time.monotonic() + 5
            while marker not in arrived and time.monotonic() < deadline:
                time.sleep(0.0005)
            if marker in arrived:
                lat_ms.append((arrived[marker] - t0) * 1000)
        stop.set()
    latency, p95 = latency_ms(lat_ms)
    return {
        "messages": n,
        "delivered_to_stream": len(lat_ms),
        **latency,
        "signed_webhook_roundtrip_p50_ms": round(statistics.median(webhook_ms), 2),
        "target": {"latency_p95_ms": f"< {TARGET_P95_MS:g}", "delivered_to_stream": f"== {n}"},
        "target_met": len(lat_ms) == n and p95 < TARGET_P95_MS,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
