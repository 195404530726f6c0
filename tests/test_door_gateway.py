"""Door crossings from the edge: queued by the node's link, accepted and counted by the gateway."""

from __future__ import annotations

from edge import protocol
from edge.config import BrokerSection
from edge.mqtt_link import NodeLink
from firmware_config.store import load_store
from gateway.ingest.core import GatewayCore
from gateway.storage.db import open_db
from tests.conftest import BOUTIQUE

STORE = load_store(BOUTIQUE)


def door(seq: int, *directions: str, t: float = 1000.0) -> protocol.DoorCrossings:
    crossings = [protocol.DoorCrossing(t=t, direction=d, confidence=0.95) for d in directions]  # type: ignore[arg-type]
    return protocol.DoorCrossings(
        v=1, store="boutique", node="entrance-1", seq=seq, ts=t + 0.3, door="front", sensor="beam", crossings=crossings
    )


def counted(core: GatewayCore, direction: str) -> float:
    return core.metrics.door_crossings.labels(direction)._value.get()


def test_gateway_counts_door_crossings_once_and_rejects_bad_ones_by_field() -> None:
    core = GatewayCore(STORE, open_db(":memory:"), clock=lambda: 1001.0)
    topic = protocol.node_topic("boutique", "entrance-1", "door")
    core.handle(topic, protocol.encode(door(5, "in", "in")))
    core.handle(topic, protocol.encode(door(9, "out")))
    core.handle(topic, protocol.encode(door(5, "in", "in")))  # re-delivered after an outage: once only
    bad = protocol.encode(door(10, "in")).replace(b'"in"', b'"sideways"')
    core.handle(topic, bad)
    core.handle(topic, protocol.encode(door(11, "in")))  # good data after the bad message still counts
    assert (counted(core, "in"), counted(core, "out")) == (3, 1)
    assert core.metrics.rejects.labels("crossings[0].direction")._value.get() == 1
    assert core.metrics.messages.labels("door")._value.get() == 4


def test_node_link_queues_crossings_for_the_door_topic() -> None:
    link = NodeLink("boutique", "entrance-1", BrokerSection(), clock=lambda: 1000.5)
    seq = link.send("door", door(0, "in"))
    (row,) = link.queue.after(-1, 10)
    assert (row.seq, row.kind, link._topic(row)) == (seq, "door", "instore/v1/boutique/node/entrance-1/door")
    sent = protocol.decode("door", row.payload)
    assert isinstance(sent, protocol.DoorCrossings) and sent.seq == seq and sent.late  # broker not connected yet
