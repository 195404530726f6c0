"""Shared parts of the MQTT benchmarks: a publisher process and a counting subscriber process.

Separate processes, as in production (node, broker and gateway never share an interpreter).
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

TOPIC_ROOT = "bench/v1"


def publisher(port: int, topics: list[str], payloads: list[bytes], qos: int, ready, go) -> None:  # noqa: ANN001
    """Publish every payload round-robin over the topics as fast as the client allows."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{time.monotonic_ns()}")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    ready.set()
    go.wait()
    infos = []
    for i, p in enumerate(payloads):
        infos.append(c.publish(topics[i % len(topics)], p, qos=qos))
        if qos == 0 and i % 2000 == 0:
            time.sleep(0)  # let the network thread breathe
    for info in infos[-100:]:
        info.wait_for_publish(timeout=60)
    time.sleep(0.5)
    c.disconnect()
    c.loop_stop()


def run_pair(
    port: int, sub_target: Callable, sub_args: tuple, topics: list[str], payloads: list[bytes], qos: int,
    timeout: float = 120.0,
) -> dict:
    """Start the subscriber, then the publisher; return what the subscriber reported."""
    ctx = mp.get_context("spawn")
    result = ctx.Queue()
    sub_ready, pub_ready, go = ctx.Event(), ctx.Event(), ctx.Event()
    sub = ctx.Process(target=sub_target, args=(port, *sub_args, len(payloads), qos, sub_ready, result))
    sub.start()
    if not sub_ready.wait(60):
        sub.kill()
        raise RuntimeError("subscriber did not start")
    pub = ctx.Process(target=publisher, args=(port, topics, payloads, qos, pub_ready, go))
    pub.start()
    pub_ready.wait(60)
    go.set()
    try:
        out = result.get(timeout=timeout)
    finally:
        pub.join(timeout=30)
        if pub.is_alive():
            pub.kill()
        sub.join(timeout=10)
        if sub.is_alive():
            sub.kill()
    return out


def counting_subscriber(port: int, topic_filter: str, expected: int, qos: int, ready, result) -> None:  # noqa: ANN001
    """Raw paho subscriber: counts messages, reports rate between first and last."""
    state = {"n": 0, "first": 0.0, "last": 0.0}

    def on_message(client, userdata, msg):  # noqa: ANN001, ANN202
        now = time.perf_counter()
        if state["n"] == 0:
            state["first"] = now
        state["n"] += 1
        state["last"] = now

    subscribe_and_wait(port, topic_filter, qos, on_message, state, expected, ready)
    result.put(rate(state))


def subscribe_and_wait(port, topic_filter, qos, on_message, state, expected, ready, idle_s: float = 3.0) -> None:  # noqa: ANN001
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{time.monotonic_ns()}")
    c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.subscribe(topic_filter, qos=qos)
    c.loop_start()
    time.sleep(0.5)
    ready.set()
    deadline = time.monotonic() + 300
    last_n, last_change = -1, time.monotonic()
    while state["n"] < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        if state["n"] != last_n:
            last_n, last_change = state["n"], time.monotonic()
        elif state["n"] > 0 and time.monotonic() - last_change > idle_s:
            break  # QoS 0 may lose messages under load: report what arrived
    c.disconnect()
    c.loop_stop()


def rate(state: dict) -> dict:
    span = max(state["last"] - state["first"], 1e-9)
    return {"received": state["n"], "seconds": span, "per_s": (state["n"] - 1) / span if state["n"] > 1 else 0.0}
