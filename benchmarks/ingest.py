"""Simulated edge windows -> Mosquitto -> gateway ingest (decode, resolve EIDs, visits).

Reports observations/s and messages/s through the real gateway core in its own process, and
the ratio of its message rate to the raw paho baseline measured in the same run (QoS 1, as
nodes publish). Target: at least 50 % of the baseline's message rate.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._mqttbench import run_pair, subscribe_and_wait
from edge import protocol
from edge.window import BleWindowAggregator
from instore.broker import start_broker

NAME = "ingest"
STORE = Path(__file__).resolve().parent.parent / "firmware_config" / "examples" / "boutique.toml"
NODES = ["entrance-1", "floor-west", "floor-east", "fr1", "fr2", "fr3"]
CUSTOMERS = 2000
OBS_PER_WINDOW = 20
T0 = 1_800_000_000.0


def _keys() -> list[bytes]:
    rng = np.random.default_rng(3)
    return [rng.bytes(16) for _ in range(CUSTOMERS)]


def window_payloads(n: int, nodes: int = 6) -> list[tuple[str, bytes]]:
    """(node, payload) pairs: windows of OBS_PER_WINDOW observations, half of enrolled customers."""
    from gateway.engines.eid import compute_eid

    rng = np.random.default_rng(5)
    keys = _keys()
    known = [f"eid:{compute_eid(k, 10, int(T0)).hex()}" for k in keys[:200]]
    aggs = [BleWindowAggregator("boutique", NODES[i % len(NODES)]) for i in range(nodes)]
    out = []
    for i in range(n):
        agg = aggs[i % nodes]
        t = T0 + i / nodes
        for j in range(OBS_PER_WINDOW):
            ident = known[int(rng.integers(len(known)))] if j % 2 == 0 else f"eid:{rng.bytes(8).hex()}"
            agg.add(ident, float(rng.integers(-95, -50)), t + j * 0.01)
        agg.count_anonymous(int(rng.integers(1 << 30)), t)
        out.append((agg.node, protocol.encode(agg.flush(t + 0.5))))
    return out


def gateway_subscriber(port: int, db_path: str, expected: int, qos: int, ready, result) -> None:  # noqa: ANN001
    """The gateway core behind a paho subscription, in its own process."""
    from firmware_config.store import load_store
    from gateway.ingest.core import GatewayCore
    from gateway.storage.customers import Identity, add_customer, link_identity, record_consent
    from gateway.storage.db import open_db

    db = open_db(db_path)
    with db.conn:
        for i, k in enumerate(_keys()):
            add_customer(db, f"c{i}", f"Customer {i}", now=T0)
            record_consent(db, f"c{i}", "recognition", True, now=T0)
            link_identity(db, Identity(f"c{i}", "eid", k.hex(), 10, 0))
    state = {"n": 0, "first": 0.0, "last": 0.0}
    # the gateway's clock follows the windows' (the i-th ends at T0 + i / nodes + 0.5): it rejects
    # windows stamped far from its own time, and these are generated faster than real time
    core = GatewayCore(load_store(STORE), db, clock=lambda: T0 + state["n"] / len(NODES) + 0.5)

    def on_message(client, userdata, msg):  # noqa: ANN001, ANN202
        now = time.perf_counter()
        if state["n"] == 0:
            state["first"] = now
        core.handle(msg.topic, msg.payload)
        state["n"] += 1
        state["last"] = time.perf_counter()

    subscribe_and_wait(port, protocol.node_filter("boutique", "ble"), qos, on_message, state, expected, ready)
    span = max(state["last"] - state["first"], 1e-9)
    result.put({
        "received": state["n"], "seconds": span, "per_s": (state["n"] - 1) / span if state["n"] > 1 else 0.0,
        "observations": int(core.metrics.observations._value.get()),
        "rejects": sum(s.value for m in core.metrics.rejects.collect() for s in m.samples if s.name.endswith("_total")),
        "entered": int(core.metrics.events.labels("entered")._value.get()),
    })


def run(quick: bool = False) -> dict:
    from benchmarks.mqtt_baseline import measure

    n = 3000 if quick else 30000
    pairs = window_payloads(n)
    broker = start_broker("mosquitto")
    try:
        baseline = measure(broker.port, n, 1)
        with tempfile.TemporaryDirectory() as tmp:
            topics = [protocol.node_topic("boutique", node, "ble") for node in NODES]
            # the publisher sends round-robin over topics in the same order the payloads were built
            got = run_pair(broker.port, gateway_subscriber, (str(Path(tmp) / "gw.db"),), topics,
                           [p for _, p in pairs], 1)
    finally:
        broker.stop()
    ratio = got["per_s"] / baseline["per_s"] if baseline["per_s"] else 0.0
    return {
        "messages": n,
        "observations_per_message": OBS_PER_WINDOW,
        "ingest_msgs_per_s": round(got["per_s"], 1),
        "ingest_observations_per_s": round(got["observations"] / got["seconds"], 1),
        "ingest_received": got["received"],
        "ingest_rejects": got["rejects"],
        "entered_events": got["entered"],
        "baseline_qos1_msgs_per_s": round(baseline["per_s"], 1),
        "ratio_to_baseline": round(ratio, 3),
        "target": {"ratio_to_baseline": ">= 0.5"},
        "target_met": ratio >= 0.5 and got["received"] == n and got["rejects"] == 0,
    }


if __name__ == "__main__":
    print(json.dumps(run()))
