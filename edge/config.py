"""The edge node's own TOML file: who it is, where the broker is, how to scan.

Settings that may change at run time (window, thresholds, filters) can also arrive on the
node's retained config topic; this file gives the values in force until then.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.protocol import NodeConfig
from firmware_config.node_config import NodeConfigError as NodeRuntimeConfigError
from firmware_config.node_config import NodeRuntimeConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSection(_Strict):
    store: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")]
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")]


class BrokerSection(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    tls: bool = False
    cafile: str | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=600)] = 30
    # Longest pause between reconnect attempts (paho doubles from 1 s): after an outage the
    # nodes of a store come back spread over this many seconds instead of all at once.
    reconnect_max_s: Annotated[int, Field(ge=1, le=300)] = 30

    def resolved_password(self) -> str | None:
        if self.password_file:
            return Path(self.password_file).read_text(encoding="utf-8").strip()
        return self.password


UUID128 = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class IphoneSection(_Strict):
    """iPhones with the store app in the background (edge/iphone.py, docs/carriers.md): the bit the
    app's service sets in Apple's overflow area (measured per iOS version), and what to read."""

    overflow_bit: Annotated[int, Field(ge=0, le=127)]
    service_uuid: Annotated[str, Field(pattern=UUID128)]  # the app's GATT service (what sets the bit)
    identity_uuid: Annotated[str, Field(pattern=UUID128)]  # its readable characteristic: the current EID


class BleSection(_Strict):
    enabled: bool = True
    # "bleak": the platform's radio (BlueZ on a Pi); else `module:Class`, another bleak scanner
    # backend, e.g. the simulator's "sim.bleak_backend:SimScanner" (imported only then).
    backend: Annotated[str, Field(pattern=r"^(bleak|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$")] = "bleak"
    sim_air: str | None = None  # tcp://host:port of the simulator's air server (a simulated backend)
    window_s: Annotated[float, Field(gt=0, le=10)] = 1.0
    scan_mode: Literal["active", "passive"] = "passive"
    # Where advertisements are read (the platform's backend only): "mgmt" the kernel's management
    # socket (needs CAP_NET_ADMIN), "dbus" bleak's D-Bus signals, "auto" mgmt where it can be used.
    source: Literal["auto", "mgmt", "dbus"] = "auto"
    ibeacon_uuids: list[str] = []
    eddystone_namespace: str | None = None
    iphone: IphoneSection | None = None  # unset: background iPhones are counted anonymously


class QueueSection(_Strict):
    """The durable outbox of windows (`edge.queue.DiskQueue`)."""

    # SQLite file; unset means `$STATE_DIRECTORY/queue-<node>.db` under systemd
    # (`StateDirectory=instore`), else memory only (a warning is logged: not durable).
    path: str | None = None
    max_windows: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000

    def resolved_path(self, node_id: str, environ: Mapping[str, str] | None = None) -> str:
        if self.path:
            return self.path
        state = (os.environ if environ is None else environ).get("STATE_DIRECTORY", "").split(":")[0]
        return str(Path(state) / f"queue-{node_id}.db") if state else ":memory:"


class HealthSection(_Strict):
    # The retained status is re-published this often (queue depth, temperature, scanner state);
    # connects, disconnects and config changes publish it at once anyway.
    status_interval_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    thermal_dir: str = "/sys/class/thermal"


class RfidReaderSection(_Strict):
    """One UHF reader on a serial port: `/dev/serial/by-id/...` (stable), a pty or `socket://`."""

    url: str
    antenna: Annotated[int, Field(ge=1, le=64)] = 1
    power_dbm: Annotated[float, Field(ge=0, le=33)] | None = 20.0


class RfidSection(_Strict):
    readers: list[RfidReaderSection] = []  # none: this node has no RFID reader
    window_s: Annotated[float, Field(gt=0, le=10)] = 1.0


_BEAM_KEYS = ("pin_a", "pin_b", "beam_broken")
_TOF_KEYS = (
    "bus", "address", "roi_centre_a", "roi_centre_b", "roi_width", "threshold_mm", "min_mm", "timing_budget_ms"
)


class DoorSection(_Strict):
    """A door-crossing sensor on this node (edge/door, docs/door.md); absent: none."""

    kind: Literal["beam", "tof"]
    door: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")]  # [[doors]] id, or a fitting room's: its curtain
    inside: Literal["a", "b"] = "b"  # which beam / zone is on the shop side (walk through once to check)
    debounce_s: Annotated[float, Field(ge=0, le=0.5)] = 0.03  # a change must hold this long to count
    blocked_after_s: Annotated[float, Field(gt=0, le=3600)] = 120.0  # occupied longer: reported as blocked
    # kind = "beam": BCM pin numbers of the two receivers, and the level a broken beam reads
    pin_a: Annotated[int, Field(ge=0, le=27)] | None = None
    pin_b: Annotated[int, Field(ge=0, le=27)] | None = None
    beam_broken: Literal["low", "high"] = "low"
    # kind = "tof": the VL53L1X's bus and address, its two ROIs (centre SPAD, width), the distances
    bus: Annotated[int, Field(ge=0, le=31)] = 1
    address: Annotated[int, Field(ge=0x08, le=0x77)] = 0x29
    roi_centre_a: Annotated[int, Field(ge=0, le=255)] = 167
    roi_centre_b: Annotated[int, Field(ge=0, le=255)] = 231
    roi_width: Annotated[int, Field(ge=4, le=8)] = 8
    threshold_mm: Annotated[int, Field(gt=0, le=4000)] = 1600  # below this someone is in the zone
    min_mm: Annotated[int, Field(ge=0, le=4000)] = 0  # above this (raise it if the door leaf swings through)
    timing_budget_ms: Literal[20, 33, 50, 100, 200, 500] = 33

    @model_validator(mode="after")
    def _kind_keys(self) -> DoorSection:
        other = _TOF_KEYS if self.kind == "beam" else _BEAM_KEYS
        for key in other:
            if key in self.model_fields_set:
                raise ValueError(f"{key}: not a setting of kind = {self.kind!r}")
        if self.kind == "beam":
            if self.pin_a is None or self.pin_b is None:
                raise ValueError(f"{'pin_a' if self.pin_a is None else 'pin_b'}: required for kind = 'beam'")
            if self.pin_a == self.pin_b:
                raise ValueError(f"pin_b: the two beams need two pins, both are {self.pin_a}")
        elif self.roi_centre_a == self.roi_centre_b:
            raise ValueError(f"roi_centre_b: the two zones need two ROI centres, both are {self.roi_centre_a}")
        elif self.min_mm >= self.threshold_mm:
            raise ValueError(f"min_mm: {self.min_mm} must be below threshold_mm {self.threshold_mm}")
        return self


class NodeFile(_Strict):
    node: NodeSection
    broker: BrokerSection = BrokerSection()
    ble: BleSection = BleSection()
    rfid: RfidSection = RfidSection()
    queue: QueueSection = QueueSection()
    health: HealthSection = HealthSection()
    door: DoorSection | None = None


class NodeConfigError(ValueError):
    pass


def load_node_config(path: str | Path) -> NodeFile:
    """Read and validate a node file; every problem is listed as `file: key: message`."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NodeConfigError(f"{path}: {exc}") from None
    try:
        return NodeFile.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: {_key_of(e['loc'], e['msg'])}" for e in exc.errors()]
        raise NodeConfigError("\n".join(lines)) from None


_NAMED = re.compile(r"^Value error, (\w+): (.*)$", re.DOTALL)  # a section validator names its key first


def _key_of(loc: tuple, msg: str) -> str:
    """`door.pin_b: message` for an error a section's validator raised about one of its keys."""
    key = ".".join(str(p) for p in loc)
    named = _NAMED.match(msg)
    return f"{key}.{named.group(1)}: {named.group(2)}" if named else f"{key}: {msg}"


def runtime_from_wire(msg: NodeConfig, store: str, node: str) -> NodeRuntimeConfig:
    """The runtime config carried by a config message for this node, or NodeRuntimeConfigError.

    `settings` is a `NodeRuntimeConfig` (its `version`, `store` and `node` may be left out:
    the envelope's are used); a message for another node or store, or whose settings disagree
    with the envelope, is refused like any invalid field, naming it.
    """
    if msg.store != store:
        raise NodeRuntimeConfigError("store", f"config is for store {msg.store!r}, this node is in {store!r}")
    if msg.node != node:
        raise NodeRuntimeConfigError("node", f"config is for node {msg.node!r}, this node is {node!r}")
    data = dict(msg.settings)
    for key, value in (("version", msg.version), ("store", msg.store), ("node", msg.node)):
        if data.setdefault(key, value) != value:
            message = f"{data[key]!r} disagrees with the envelope's {value!r}"
            raise NodeRuntimeConfigError(f"settings.{key}", message)
    return NodeRuntimeConfig.from_json(json.dumps(data))
