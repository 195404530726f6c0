"""The wire contract: topics, round trips, and precise rejection of malformed payloads."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge import protocol as p

BLE = {
    "v": 1, "type": "ble", "store": "boutique", "node": "entrance-1", "seq": 7, "window": [100.0, 101.0],
    "observations": [
        {"id": "eid:0123456789abcdef", "n": 3, "rssi_mean": -61.5, "rssi_max": -58, "first": 100.1, "last": 100.9,
         "tx": -20},
        {"id": "ibeacon:f7826da6-4fa2-4e98-8024-bc5b71e0893e:1:2", "n": 1, "rssi_mean": -80, "rssi_max": -80,
         "first": 100.5, "last": 100.5},
    ],
    "anonymous": {"devices": 4, "adverts": 17},
}
RFID = {
    "v": 1, "type": "rfid", "store": "boutique", "node": "fr1", "seq": 0, "window": [5.0, 6.0],
    "observations": [{"epc": "3074257bf7194e4000001a85", "ant": 1, "n": 40, "rssi_mean": -55.2, "rssi_max": -50,
                      "first": 5.0, "last": 5.98}],
}
STATUS = {"v": 1, "type": "status", "store": "boutique", "node": "fr1", "state": "online", "ts": 10.0,
          "version": "0.1.0", "uptime_s": 3.5, "config_version": 2, "queue_depth": 0, "dropped": 0}
CONFIG = {"v": 1, "type": "config", "store": "boutique", "node": "fr1", "version": 3, "settings": {"window_s": 1.0}}
DOOR = {"v": 1, "type": "door", "store": "boutique", "node": "entrance-1", "seq": 12, "ts": 100.4, "door": "front",
        "sensor": "beam", "crossings": [{"t": 100.1, "direction": "in", "confidence": 0.95}]}
EVENT = {"v": 1, "type": "event", "store": "boutique", "kind": "entered", "ts": 11.0, "data": {"visit": 1}}
ALL = {"ble": BLE, "rfid": RFID, "door": DOOR, "status": STATUS, "config": CONFIG, "event": EVENT}


@pytest.mark.parametrize("kind", sorted(ALL))
def test_round_trip_every_message_type(kind: str) -> None:
    msg = p.decode(kind, json.dumps(ALL[kind]))
    again = p.decode(kind, p.encode(msg))
    assert again == msg
    assert orjson.loads(p.encode(msg))["v"] == 1


def test_topics_carry_the_version_and_parse_back() -> None:
    t = p.node_topic("boutique", "entrance-1", "ble")
    assert t == "instore/v1/boutique/node/entrance-1/ble"
    assert p.parse_node_topic(t) == ("boutique", "entrance-1", "ble")
    assert p.node_filter("boutique", "ble") == "instore/v1/boutique/node/+/ble"
    assert p.event_topic("boutique", "entered") == "instore/v1/boutique/event/entered"


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"),
    [
        (lambda d: "{not json", "payload", "not JSON"),
        (lambda d: [1, 2], "payload", "JSON object"),
        (lambda d: {**d, "v": 2}, "v", "unsupported contract version 2"),
        (lambda d: {k: v for k, v in d.items() if k != "v"}, "v", "missing"),
        (lambda d: {k: v for k, v in d.items() if k != "seq"}, "seq", "Field required"),
        (lambda d: {**d, "seq": "seven"}, "seq", "integer"),
        (lambda d: {**d, "window": [5.0, 4.0]}, "window", "window end is before window start"),
        (lambda d: {**d, "observations": [{**d["observations"][0], "rssi_max": "loud"}]},
         "observations[0].rssi_max", "number"),
        (lambda d: {**d, "observations": [{**d["observations"][0], "id": "mac:aa:bb:cc:dd:ee:ff"}]},
         "observations[0].id", "pattern"),
        (lambda d: {**d, "observations": [d["observations"][0]] * (p.MAX_OBSERVATIONS + 1)},
         "observations", "at most"),
        (lambda d: {**d, "extra": 1}, "extra", "Extra inputs"),
        # strict decoding (docs/wire.md): no type coercion
        (lambda d: {**d, "seq": "7"}, "seq", "integer"),
        (lambda d: {**d, "late": "true"}, "late", "boolean"),
        (lambda d: {**d, "window": ["100", "101"]}, "window[0]", "number"),
        (lambda d: {**d, "observations": [{**d["observations"][0], "n": 3.0}]}, "observations[0].n", "integer"),
    ],
)
def test_malformed_ble_payloads_name_the_field(mutate, field: str, fragment: str) -> None:  # noqa: ANN001
    raw = mutate(BLE)
    payload = raw if isinstance(raw, str) else json.dumps(raw)
    with pytest.raises(p.WireError) as exc:
        p.decode("ble", payload)
    assert exc.value.field == field
    assert fragment in str(exc.value)


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"),
    [
        (lambda d: {**d, "crossings": []}, "crossings", "at least 1"),
        (lambda d: {**d, "crossings": d["crossings"] * (p.MAX_CROSSINGS + 1)}, "crossings", "at most"),
        (lambda d: {**d, "crossings": [{**d["crossings"][0], "direction": "up"}]},
         "crossings[0].direction", "'in' or 'out'"),
        (lambda d: {**d, "crossings": [{**d["crossings"][0], "confidence": 1.5}]},
         "crossings[0].confidence", "less than or equal to 1"),
        (lambda d: {**d, "crossings": [{**d["crossings"][0], "t": "100.1"}]}, "crossings[0].t", "number"),
        (lambda d: {**d, "crossings": [{**d["crossings"][0], "t": 101.0}]}, "crossings", "after the message time"),
        (lambda d: {**d, "sensor": "camera"}, "sensor", "'beam', 'tof', 'thermal' or 'stereo'"),
        (lambda d: {**d, "door": "Front Door"}, "door", "pattern"),
        (lambda d: {k: v for k, v in d.items() if k != "door"}, "door", "Field required"),
        (lambda d: {**d, "seq": -1}, "seq", "greater than or equal to 0"),
        (lambda d: {**d, "late": 1}, "late", "boolean"),
        (lambda d: {**d, "window": [1.0, 2.0]}, "window", "Extra inputs"),
    ],
)
def test_malformed_door_payloads_name_the_field(mutate, field: str, fragment: str) -> None:  # noqa: ANN001
    with pytest.raises(p.WireError) as exc:
        p.decode("door", json.dumps(mutate(DOOR)))
    assert exc.value.field == field
    assert fragment in str(exc.value)


def test_door_crossings_travel_on_their_own_topic_and_round_trip_late() -> None:
    topic = p.node_topic("boutique", "entrance-1", "door")
    assert topic == "instore/v1/boutique/node/entrance-1/door"
    kind, msg = p.decode_topic(topic, json.dumps(DOOR))
    assert kind == "door" and isinstance(msg, p.DoorCrossings)
    assert msg.crossings[0].direction == "in" and msg.crossings[0].t == 100.1
    replayed = msg.model_copy(update={"late": True, "seq": 13})
    assert p.decode("door", p.encode(replayed)) == replayed
    with pytest.raises(p.WireError) as exc:
        p.decode_topic("instore/v1/boutique/node/floor-east/door", json.dumps(DOOR))
    assert exc.value.field == "node"


def test_status_carries_the_door_sensors_health() -> None:
    health = {"sensor": "beam", "state": "blocked", "detail": "beam b blocked for 180 s", "crossings": 4}
    msg = p.decode("status", json.dumps({**STATUS, "door": health}))
    assert isinstance(msg, p.NodeStatus) and msg.door is not None and msg.door.state == "blocked"
    with pytest.raises(p.WireError) as exc:
        p.decode("status", json.dumps({**STATUS, "door": {**health, "state": "broken"}}))
    assert exc.value.field == "door.state"


def test_status_carries_the_queues_full_disk_and_older_nodes_still_decode() -> None:
    msg = p.decode("status", json.dumps({**STATUS, "disk_full": True, "held_in_memory": 12}))
    assert isinstance(msg, p.NodeStatus) and msg.disk_full is True and msg.held_in_memory == 12
    older = p.decode("status", json.dumps(STATUS))  # a node from before the fields
    assert isinstance(older, p.NodeStatus) and older.disk_full is None and older.held_in_memory == 0
    for bad in ({"disk_full": "yes"}, {"held_in_memory": -1}, {"held_in_memory": "12"}):
        with pytest.raises(p.WireError) as exc:
            p.decode("status", json.dumps({**STATUS, **bad}))
        assert exc.value.field == next(iter(bad))


def test_oversized_payload_is_rejected_before_parsing() -> None:
    with pytest.raises(p.WireError) as exc:
        p.decode("ble", b" " * (p.MAX_PAYLOAD_BYTES + 1))
    assert exc.value.field == "payload" and "exceeds" in str(exc.value)


def test_topic_and_payload_must_agree() -> None:
    with pytest.raises(p.WireError) as exc:
        p.decode_topic("instore/v1/boutique/node/floor-east/ble", json.dumps(BLE))
    assert exc.value.field == "node"
    with pytest.raises(p.WireError) as exc:
        p.decode_topic("instore/v2/boutique/node/entrance-1/ble", json.dumps(BLE))
    assert exc.value.field == "topic" and "v2" in str(exc.value)


def test_publish_refuses_wildcards_and_bad_segments() -> None:
    class Client:
        def publish(self, *a, **k):  # noqa: ANN002, ANN003, ANN202
            raise AssertionError("must not be reached")

    msg = p.decode("status", json.dumps(STATUS))
    with pytest.raises(p.WireError):
        p.publish(Client(), "instore/v1/boutique/node/+/status", msg)
    with pytest.raises(p.WireError):
        p.node_topic("bou#tique", "n1", "ble")
    with pytest.raises(p.WireError):
        p.node_topic("boutique", "n1", "video")


def test_json_schemas_exist_for_every_payload() -> None:
    schemas = p.json_schemas()
    assert set(schemas) == set(ALL)
    assert "observations" in schemas["ble"]["properties"]


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_wire_error(data: bytes) -> None:
    for kind in ALL:
        try:
            p.decode(kind, data)
        except p.WireError:
            pass


def test_published_schemas_match_the_code() -> None:
    from pathlib import Path

    doc = Path(__file__).resolve().parent.parent / "docs" / "wire-schemas.json"
    assert json.loads(doc.read_text()) == json.loads(json.dumps(p.json_schemas())), (
        "docs/wire-schemas.json is stale: regenerate it from edge.protocol.json_schemas()"
    )
