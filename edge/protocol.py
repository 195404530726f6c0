"""The wire contract: MQTT topics and payloads, defined once for every process.

Topics and payloads carry the contract version (`instore/v1/...`, `v`), so old node software is
recognised rather than misread. Decoding is strict: a typed, immutable message, or a `WireError`
naming the field at fault, so the gateway counts the reject and carries on. Topics and payloads:
docs/wire.md.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails

VERSION: Final = 1
ROOT = f"instore/v{VERSION}"

MAX_PAYLOAD_BYTES = 512 * 1024  # a node with 40 antennas in a busy hour stays far below this
MAX_OBSERVATIONS = 2000  # per window: more distinct tags/beacons in one second means a broken node

MAX_CROSSINGS = 100  # per door message: a node sends each crossing at once, more means a replayed backlog

KINDS = ("ble", "rfid", "status", "config", "door")

_ID = r"^[a-z0-9][a-z0-9_-]{0,47}$"
Name = Annotated[str, Field(pattern=_ID)]
Rssi = Annotated[float, Field(ge=-127, le=20)]
Time = Annotated[float, Field(ge=0)]


class WireError(ValueError):
    """A payload or topic that does not follow the contract; `field` says where."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


# --- topics -----------------------------------------------------------------------------


def _check_segment(name: str, value: str) -> str:
    if not value or any(c in value for c in "+#/") or value != value.strip():
        raise WireError(name, f"invalid topic segment {value!r}")
    return value


def node_topic(store: str, node: str, kind: str) -> str:
    """Topic for one node's stream; `kind` is one of KINDS."""
    if kind not in KINDS:
        raise WireError("kind", f"unknown kind {kind!r}, expected one of {', '.join(KINDS)}")
    return f"{ROOT}/{_check_segment('store', store)}/node/{_check_segment('node', node)}/{kind}"


def node_filter(store: str, kind: str = "+", node: str = "+") -> str:
    """Subscription filter over the store's nodes (wildcards allowed here, never in publish)."""
    return f"{ROOT}/{store}/node/{node}/{kind}"


def event_topic(store: str, kind: str) -> str:
    return f"{ROOT}/{_check_segment('store', store)}/event/{_check_segment('kind', kind)}"


def parse_node_topic(topic: str) -> tuple[str, str, str]:
    """Split a node topic into (store, node, kind) or raise WireError('topic')."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] != "instore" or parts[3] != "node":
        raise WireError("topic", f"not a node topic: {topic!r}")
    if parts[1] != f"v{VERSION}":
        raise WireError("topic", f"unsupported contract version {parts[1]!r} (this is v{VERSION})")
    if parts[5] not in KINDS:
        raise WireError("topic", f"unknown kind {parts[5]!r}")
    return parts[2], parts[4], parts[5]


# --- payloads ---------------------------------------------------------------------------


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Window(_Msg):
    v: Literal[1]
    store: Name
    node: Name
    seq: Annotated[int, Field(ge=0)]
    window: tuple[Time, Time]
    late: bool = False  # True when drained from the node's disk queue after an outage

    @field_validator("window")
    @classmethod
    def _ordered(cls, w: tuple[float, float]) -> tuple[float, float]:
        if w[1] < w[0]:
            raise ValueError("window end is before window start")
        return w


_OBS_ID = r"^(eid:[0-9a-f]{16}|uid:[0-9a-f]{32}|ibeacon:[0-9a-f-]{36}:\d{1,5}:\d{1,5})$"


class BleObservation(_Msg):
    """One identifier's sightings during a window.

    `id` is `eid:<16 hex>` (Eddystone-EID, resolved only by the gateway) or
    `ibeacon:<uuid>:<major>:<minor>` or `uid:<namespace><instance>` (Eddystone-UID in the
    store's namespace); nothing else ever leaves a node.
    """

    id: Annotated[str, Field(min_length=4, max_length=80, pattern=_OBS_ID)]
    n: Annotated[int, Field(ge=1)]
    rssi_mean: Rssi
    rssi_max: Rssi
    first: Time
    last: Time
    tx: Annotated[int, Field(ge=-127, le=20)] | None = None  # advertised calibration power


class Footfall(_Msg):
    """Anonymous counts: devices not of the store's beacons, counted and never identified."""

    devices: Annotated[int, Field(ge=0)] = 0
    adverts: Annotated[int, Field(ge=0)] = 0


class BleWindow(_Window):
    type: Literal["ble"] = "ble"
    observations: Annotated[list[BleObservation], Field(max_length=MAX_OBSERVATIONS)]
    anonymous: Footfall = Footfall()


class RfidObservation(_Msg):
    epc: Annotated[str, Field(min_length=4, max_length=124, pattern=r"^[0-9a-f]+$")]
    ant: Annotated[int, Field(ge=1, le=64)]
    n: Annotated[int, Field(ge=1)]
    rssi_mean: Rssi
    rssi_max: Rssi
    first: Time
    last: Time


class RfidWindow(_Window):
    type: Literal["rfid"] = "rfid"
    observations: Annotated[list[RfidObservation], Field(max_length=MAX_OBSERVATIONS)]
    reader: str = "ok"


Direction = Literal["in", "out"]
DoorSensorKind = Literal["beam", "tof", "thermal", "stereo"]  # the simulator also models thermal and stereo 3-D


class DoorCrossing(_Msg):
    """One person through the door: when (Unix s), which way, and how sure the sensor is."""

    t: Time
    direction: Direction
    confidence: Annotated[float, Field(ge=0, le=1)]


class DoorCrossings(_Msg):
    """A door sensor's crossings (edge/door), published the moment they are known.

    `door` is the store file's door id; `sensor` the kind of counter (the simulator also
    models thermal and stereo 3-D counters). Sequence numbers share the node's queue with
    its windows; `late` marks crossings drained from the queue after an outage.
    """

    v: Literal[1]
    type: Literal["door"] = "door"
    store: Name
    node: Name
    seq: Annotated[int, Field(ge=0)]
    ts: Time  # when the node sent it
    late: bool = False
    door: Name
    sensor: DoorSensorKind
    crossings: Annotated[list[DoorCrossing], Field(min_length=1, max_length=MAX_CROSSINGS)]

    @field_validator("crossings")
    @classmethod
    def _not_after_sending(cls, crossings: list[DoorCrossing], info: ValidationInfo) -> list[DoorCrossing]:
        ts = info.data.get("ts")  # absent when ts itself is invalid (reported on its own)
        for i, c in enumerate(crossings):
            if ts is not None and c.t > ts:
                raise ValueError(f"[{i}].t {c.t} is after the message time ts {ts}: a node cannot report the future")
        return crossings


class DoorHealth(_Msg):
    """The door sensor's state in the node status: a blocked beam, no readings, bus errors."""

    sensor: DoorSensorKind  # as in the door message (the simulator's counters report their health too)
    state: Literal["ok", "starting", "blocked", "no_data", "error"]
    detail: str = ""
    crossings: Annotated[int, Field(ge=0)] = 0  # since the node started
    errors: Annotated[int, Field(ge=0)] = 0  # bus errors since the node started


class NodeStatus(_Msg):
    v: Literal[1]
    type: Literal["status"] = "status"
    store: Name
    node: Name
    state: Literal["online", "offline"]
    ts: Time
    version: str = ""
    uptime_s: Annotated[float, Field(ge=0)] = 0.0
    config_version: int | None = None
    config_error: str | None = None
    scanner: str | None = None
    reader: dict | None = None
    door: DoorHealth | None = None  # a node with a door sensor ([door] in its file)
    queue_depth: Annotated[int, Field(ge=0)] = 0
    dropped: Annotated[int, Field(ge=0)] = 0
    disk_full: bool | None = None  # the queue's last write was refused (None: not reported)
    held_in_memory: Annotated[int, Field(ge=0)] = 0  # windows only in memory because of that
    cpu_temp_c: float | None = None
    disk_writes_per_day: Annotated[float, Field(ge=0)] | None = None  # SD card wear (docs/deploy.md)
    disk_bytes_per_day: Annotated[float, Field(ge=0)] | None = None
    clock_synced: bool | None = None  # the node's clock is NTP-synchronised (None: not reported)


class NodeConfig(_Msg):
    """What a node may change without a restart; retained on its config topic."""

    v: Literal[1]
    type: Literal["config"] = "config"
    store: Name
    node: Name
    version: Annotated[int, Field(ge=0)]
    settings: dict


class StoreEvent(_Msg):
    """A gateway event (entered, zone_changed, left...), bridged to the chain without raw presence."""

    v: Literal[1]
    type: Literal["event"] = "event"
    store: Name
    kind: Name
    ts: Time
    data: dict


Message = BleWindow | RfidWindow | DoorCrossings | NodeStatus | NodeConfig | StoreEvent
_MODELS: dict[str, type[Message]] = {
    "ble": BleWindow,
    "rfid": RfidWindow,
    "door": DoorCrossings,
    "status": NodeStatus,
    "config": NodeConfig,
    "event": StoreEvent,
}


def _field_of(err: ErrorDetails) -> str:
    out = ""
    for part in err["loc"]:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "payload"


def decode(kind: str, payload: bytes | str) -> Message:
    """Decode one payload of `kind` ('ble', 'rfid', 'door', 'status', 'config', 'event').

    Raises WireError naming the field: `payload` for size/JSON problems, `v` for a version
    we do not speak, otherwise the dotted path (`observations[3].rssi_max`).
    """
    model = _MODELS.get(kind)
    if model is None:
        raise WireError("kind", f"unknown kind {kind!r}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise WireError("payload", f"{len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise WireError("payload", f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WireError("payload", f"expected a JSON object, got {type(data).__name__}")
    if "v" not in data:
        raise WireError("v", "missing contract version")
    if data["v"] != VERSION:
        raise WireError("v", f"unsupported contract version {data['v']!r} (this is v{VERSION})")
    try:  # strict: JSON types as documented, no coercion ("seq": "7" is not a number)
        return model.model_validate_json(payload, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise WireError(_field_of(first), f"{first['msg']}{more}") from None


def decode_topic(topic: str, payload: bytes | str) -> tuple[str, Message]:
    """Decode a message received on a node topic; checks that the topic and payload agree."""
    store, node, kind = parse_node_topic(topic)
    msg = decode(kind, payload)
    if (got := getattr(msg, "store", store)) != store:
        raise WireError("store", f"payload store {got!r} does not match topic store {store!r}")
    if (got := getattr(msg, "node", node)) != node:
        raise WireError("node", f"payload node {got!r} does not match topic node {node!r}")
    return kind, msg


def encode(msg: Message) -> bytes:
    """Serialise a message; the inverse of `decode`."""
    return orjson.dumps(msg.model_dump(mode="json", exclude_none=True))


def json_schemas() -> dict[str, dict]:
    """JSON Schema of every payload, for docs/wire.md and for other languages' nodes."""
    return {kind: model.model_json_schema() for kind, model in _MODELS.items()}


def publish(client, topic: str, msg: Message, *, qos: int = 1, retain: bool = False):  # noqa: ANN001, ANN201
    """The one way to publish: refuses wildcard topics, encodes with `encode`.

    `client` is a paho-mqtt Client; returns paho's MQTTMessageInfo.
    """
    if "+" in topic or "#" in topic:
        raise WireError("topic", f"wildcards are not allowed in a publish topic: {topic!r}")
    return client.publish(topic, encode(msg), qos=qos, retain=retain)
