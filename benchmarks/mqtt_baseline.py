"""Raw paho-mqtt publisher -> Mosquitto -> subscriber: the message rate our ingest is compared with."""

from __future__ import annotations

import json

from benchmarks._mqttbench import TOPIC_ROOT, counting_subscriber, run_pair
from instore.broker import start_broker

NAME = "mqtt-baseline"


def sample_payloads(n: int) -> list[bytes]:
    """Payloads of a typical window's size, so the baseline moves the same bytes as ingest."""
    from benchmarks.ingest import window_payloads

    return [p for _, p in window_payloads(n, nodes=6)]


def measure(port: int, n: int, qos: int) -> dict:
    payloads = sample_payloads(n)
    topics = [f"{TOPIC_ROOT}/node/{i}/ble" for i in range(6)]
    return run_pair(port, counting_subscriber, (f"{TOPIC_ROOT}/#",), topics, payloads, qos)


def run(quick: bool = False) -> dict:
    n = 3000 if quick else 40000
    broker = start_broker("mosquitto")
    try:
        q0 = measure(broker.port, n, 0)
        q1 = measure(broker.port, n, 1)
    finally:
        broker.stop()
    size = sum(len(p) for p in sample_payloads(100)) / 100
    return {
        "messages": n,
        "payload_bytes_mean": round(size, 1),
        "qos0_msgs_per_s": round(q0["per_s"], 1),
        "qos0_received": q0["received"],
        "qos1_msgs_per_s": round(q1["per_s"], 1),
        "qos1_received": q1["received"],
    }


if __name__ == "__main__":
    print(json.dumps(run()))
