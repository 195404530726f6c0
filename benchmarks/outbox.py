"""Benchmark ``outbox``: WhatsApp outbox throughput against the emulator over loopback HTTP.

1. Throughput: token bucket at 200/s (above Meta's 80/s default), emulator limit 1000/s, and
   each message drawing its three signed status webhooks (sent, delivered, read) over HTTP to
   the receiver, which writes each into the outbox DB, as Meta would: how many messages/s the
   worker (claim, send, record) sustains.  Target >= 80 msg/s.  For information, the same
   with the status webhooks off.  Emulator, receiver and worker share one process (and GIL).
2. Pacing: bucket at 20/s; the measured send rate (first to last ``sent_at``) must be within
   5 % of 20/s.
"""

from __future__ import annotations

import time
from typing import Any

from cloud_sync.outbox import OutboxWorker
from cloud_sync.ratelimit import TokenBucket
from sim.whatsapp_emulator import EmulatorConfig
from sim.whatsapp_harness import Stack, enqueue_templates, permissive_rules

NAME = "outbox"
TARGET_MSGS_PER_S = 80.0
PACED_RATE = 20.0
PACING_TOLERANCE = 0.05


def _throughput(n: int, rate: float, webhooks: bool) -> float:
    cfg = EmulatorConfig(throughput_per_s=1000.0, webhook_delay_s=(0.05, 0.3), auto_read=True)
    with Stack(cfg, webhooks=webhooks) as stack:
        enqueue_templates(stack, n)
        w = OutboxWorker(
            stack.db_path, stack.client(), permissive_rules(), bucket=TokenBucket(rate, 1.0, now=time.time())
        )
        t0 = time.perf_counter()
        w.run(until_idle=True)
        elapsed = time.perf_counter() - t0
        w.close()
        stack.settle()  # let in-flight status webhooks land before the servers stop
        assert w.sent_count == n, f"sent {w.sent_count} of {n}"
        return n / elapsed


def _paced(n: int) -> float:
    with Stack(EmulatorConfig(throughput_per_s=1000.0), webhooks=False) as stack:
        enqueue_templates(stack, n)
        w = OutboxWorker(
            stack.db_path,
            stack.client(),
            permissive_rules(),
            bucket=TokenBucket(PACED_RATE, 1.0, now=time.time()),
        )
        w.run(until_idle=True)
        w.close()
        sent = sorted(r[0] for r in stack.conn.execute("SELECT sent_at FROM wa_outbox"))
        return (len(sent) - 1) / (sent[-1] - sent[0])


def run(quick: bool = False) -> dict[str, Any]:
    n = 150 if quick else 1500
    tput_hooks = _throughput(n, 200.0, webhooks=True)
    tput = _throughput(n, 200.0, webhooks=False)
    paced = _paced(21 if quick else 101)
    err = abs(paced - PACED_RATE) / PACED_RATE
    return {
        "messages": n,
        "throughput_msgs_per_s": round(tput_hooks, 1),
        "throughput_without_status_webhooks_msgs_per_s": round(tput, 1),
        "paced_rate_configured_msgs_per_s": PACED_RATE,
        "paced_rate_measured_msgs_per_s": round(paced, 2),
        "paced_rate_error_pct": round(100 * err, 2),
        "target": {
            "throughput_msgs_per_s": f">= {TARGET_MSGS_PER_S:g}",
            "paced_rate_error_pct": f"<= {100 * PACING_TOLERANCE:g}",
        },
        "target_met": tput_hooks >= TARGET_MSGS_PER_S and err <= PACING_TOLERANCE,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
